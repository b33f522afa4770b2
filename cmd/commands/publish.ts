import type { Command } from 'commander';

/** Adds this area's mosctl subcommands. */
export function registerMosctl(_program: Command): void {}

/** Adds this area's mosb subcommands. */
export function registerMosb(_program: Command): void {}
