import type { Command } from 'commander';

/** Finds or creates the subcommand group `name` under `parent` (e.g. `mosb image`). */
export function group(parent: Command, name: string, description: string): Command {
  const found = parent.commands.find((c) => c.name() === name);
  if (found) return found;
  return parent.command(name).description(description).exitOverride();
}
