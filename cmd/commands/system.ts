import type { Command } from 'commander';
import type { BootResult, InstallResult, UpdateResult } from '../../src/system/index.js';
import { MosError } from '../../src/base/index.js';
import { action } from '../common.js';
import { collect, short, table } from '../format.js';

/** Loaded on first use, so that --help, --version and usage errors start without the heavy modules. */
const system = () => import('../../src/system/index.js');

interface AccessFlags {
  capath?: string;
  insecureRegistry?: string[];
  registryCa?: string[];
  authFile?: string;
  wait?: boolean;
}

function withAccess(cmd: Command): Command {
  return cmd
    .option('--capath <file>', 'manifest CA bundle (default <root>/factory/secure/manifestCA.pem)')
    .option('--insecure-registry <host>', 'allow plain HTTP to this registry host (repeatable)', collect)
    .option('--registry-ca <file>', 'extra CA certificate for registry TLS (repeatable)', collect)
    .option('--auth-file <file>', 'registry credentials (default $REGISTRY_AUTH_FILE, then ~/.docker/config.json)')
    .option('--wait', 'wait for a busy config lock instead of failing', false);
}

function access(o: AccessFlags) {
  return {
    ...(o.capath ? { capath: o.capath } : {}),
    ...(o.insecureRegistry ? { insecureHosts: o.insecureRegistry } : {}),
    ...(o.registryCa ? { caFiles: o.registryCa } : {}),
    ...(o.authFile ? { authFile: o.authFile } : {}),
    wait: o.wait === true,
  };
}

/** Adds the lifecycle subcommands: install, update, rollback, activate, deactivate, boot. */
export function registerMosctl(program: Command): void {
  withAccess(program.command('install').argument('<source>', 'host[:port]/name:tag, host/name@sha256:…, or oci:DIR:TAG'))
    .description('verify a signed install manifest, pull its images and create config/manifest.git')
    .action(
      action(async (ctx, source: string, o: AccessFlags) => {
        const r = await (await system()).install({ root: ctx.globals.root, source, ...access(o), log: ctx.log, onProgress: ctx.onProgress });
        return { result: r, text: installText(r) };
      }),
    );
  withAccess(program.command('update').argument('<source>', 'install manifest reference'))
    .description('verify and apply an update (partial: named targets; complete: all), as a new generation')
    .option('--allow-downgrade', 'accept an older version of a target', false)
    .option('--dry-run', 'show what would change; write nothing', false)
    .action(
      action(async (ctx, source: string, o: AccessFlags & { allowDowngrade: boolean; dryRun: boolean }) => {
        const r = await (await system()).update({ root: ctx.globals.root, source, ...access(o), allowDowngrade: o.allowDowngrade, dryRun: o.dryRun, log: ctx.log, onProgress: ctx.onProgress });
        return { result: r, text: updateText(r) };
      }),
    );
  program
    .command('rollback')
    .description('make an earlier generation current again (as a new generation)')
    .option('--to <n>', 'generation number (default: the one before the current)')
    .option('--capath <file>', 'manifest CA bundle')
    .option('--wait', 'wait for a busy config lock', false)
    .action(
      action(async (ctx, o: { to?: string; capath?: string; wait: boolean }) => {
        const to = o.to === undefined ? undefined : parseGeneration(o.to);
        const r = await (await system()).rollback({ root: ctx.globals.root, ...(to !== undefined ? { to } : {}), ...(o.capath ? { capath: o.capath } : {}), wait: o.wait, log: ctx.log });
        return { result: r, text: `rolled back to generation ${r.to}: now generation ${r.generation} (${r.commit.slice(0, 12)})` };
      }),
    );
  program
    .command('activate')
    .description('start a target, or restart it when its image changed (fs-only: mount; container: LXC)')
    .requiredOption('-t, --target <name>', 'target name')
    .option('--capath <file>', 'manifest CA bundle')
    .option('--require-verity', 'refuse layers without a verity root hash', false)
    .option('--systemd', 'also write <root>/etc/systemd/system/<target>.service for a container', false)
    .action(
      action(async (ctx, o: { target: string; capath?: string; requireVerity: boolean; systemd: boolean }) => {
        const r = await (await system()).activate({ root: ctx.globals.root, target: o.target, ...(o.capath ? { capath: o.capath } : {}), requireVerity: o.requireVerity, systemd: o.systemd, log: ctx.log, onProgress: ctx.onProgress });
        return { result: r, text: `${r.target}: ${r.action}${r.state ? ` (${r.state})` : ''} at ${r.path}` };
      }),
    );
  program
    .command('deactivate')
    .description('stop a container target or unmount an fs-only target')
    .requiredOption('-t, --target <name>', 'target name')
    .action(
      action(async (ctx, o: { target: string }) => {
        const r = await (await system()).deactivate({ root: ctx.globals.root, target: o.target, log: ctx.log });
        return { result: r, text: `${r.target}: ${r.stopped ? 'stopped' : r.unmounted ? 'unmounted' : 'was not active'}` };
      }),
    );
  program
    .command('boot')
    .description('verify the system, set up storage and activate every target')
    .option('--capath <file>', 'manifest CA bundle')
    .option('--require-verity', 'refuse layers without a verity root hash', false)
    .option('--systemd', 'also write systemd units for container targets', false)
    .action(
      action(async (ctx, o: { capath?: string; requireVerity: boolean; systemd: boolean }) => {
        const r = await (await system()).boot({ root: ctx.globals.root, ...(o.capath ? { capath: o.capath } : {}), requireVerity: o.requireVerity, systemd: o.systemd, log: ctx.log, onProgress: ctx.onProgress });
        return { result: r, text: bootText(r), ...(r.failed > 0 ? { exitCode: 9 } : {}) };
      }),
    );
}

/** Adds this area's mosb subcommands. */
export function registerMosb(_program: Command): void {}

function parseGeneration(s: string): number {
  if (!/^[1-9][0-9]{0,8}$/.test(s)) throw new MosError({ code: 'USAGE', subject: '--to', message: `${JSON.stringify(s)} is not a generation number` });
  return Number(s);
}

function installText(r: InstallResult): string {
  return [
    `installed ${r.product} (manifest ${r.manifest.slice(0, 12)}, signed by ${r.signer}) as generation 1`,
    table(['TARGET', 'VERSION', 'DIGEST'], r.targets.map((t) => [t.name, t.version, short(t.digest)])),
  ].join('\n');
}

function updateText(r: UpdateResult): string {
  if (r.noop) return `already up to date (generation ${r.generation})`;
  const rows = [
    ...r.added.map((n) => ['added', n, '']),
    ...r.changed.map((c) => ['changed', c.name, `${c.from} -> ${c.to}`]),
    ...r.removed.map((n) => ['removed', n, '']),
  ];
  const head = r.dryRun ? `would update (dry run; nothing written):` : `updated to generation ${r.generation} (${r.commit.slice(0, 12)}); fetched ${r.blobBytes} blob bytes`;
  return [head, table(['CHANGE', 'TARGET', 'VERSION'], rows)].join('\n');
}

function bootText(r: BootResult): string {
  const rows = r.targets.map((t) => (t.ok ? [t.target, 'ok', `${t.action}${t.state ? ` ${t.state}` : ''}`] : [t.target, 'FAILED', `${t.error.code}: ${t.error.message}`]));
  return [`generation ${r.generation}: ${r.targets.length - r.failed} of ${r.targets.length} targets active`, table(['TARGET', 'RESULT', 'DETAIL'], rows)].join('\n');
}
