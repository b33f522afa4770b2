import { t } from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildImage } from '../../src/build/index.js';
import { openLayout } from '../../src/oci/index.js';
import { TEST_DOWNLOADER_UID, childEnv, cliPath, plainNode } from '../support/cli.js';
import { needs } from '../support/env.js';
import { mintPki } from '../support/pki.js';
import { startRegistry } from '../support/registry.js';
import { startSlowProxy } from '../support/slow-proxy.js';
import { makeSystemRoot, manifestYaml, placeCa, publishYaml } from '../support/system.js';

// What a person sees: a 200 MiB pull in a real terminal (tmux, 80 columns), Ctrl-C in the middle of
// one, and SIGTERM to one whose stderr is a pipe. The registry is a real docker-registry behind a
// proxy that paces it to 40 MiB/s, so the pull lasts about 5 s.
const skip = needs({ root: true, programs: ['tmux', 'mksquashfs', 'docker-registry'] });
const MiB = 1024 * 1024;

t.test('progress on a terminal, on a pipe, and stopping by signal', { skip }, async (t) => {
  const work = makeSystemRoot(t, 'mosctl-tty-');
  const pki = await mintPki(t);
  const rootfs = join(work, 'big');
  mkdirSync(rootfs);
  writeFileSync(join(rootfs, 'blob.bin'), randomBytes(200 * MiB));
  const layout = join(work, 'images');
  await buildImage({ rootfs, dst: await openLayout(layout, { create: true }), tag: 'big-1.0' });
  const reg = await startRegistry(t);
  const target = `  - {service_name: hostfs, source: "oci:${layout}:big-1.0", version: "1.0.0", service_type: hostfs, network: {type: host}, nsgroup: ""}`;
  await publishYaml({ dir: work, yaml: manifestYaml({ targets: [target] }), repo: reg.host, name: 'machine/install:1', pki });
  const proxy = await startSlowProxy(t, reg.host, 100 * MiB);
  const source = `${proxy.host}/machine/install:1`;
  const freshRoot = () => {
    const root = makeSystemRoot(t);
    placeCa(root, pki);
    return root;
  };

  // One tmux server on its own socket, stopped by its PID in teardown.
  const sock = `mosctl-test-${process.pid}`;
  const tmux = (...args: string[]) => spawnSync('tmux', ['-L', sock, ...args], { encoding: 'utf8' });
  t.equal(tmux('new-session', '-d', '-x', '80', '-y', '30', '-s', 'main', 'sleep 600').status, 0, 'tmux started');
  const serverPid = Number(tmux('display-message', '-p', '-t', 'main', '#{pid}').stdout.trim());
  t.teardown(() => {
    if (serverPid > 0) {
      try {
        process.kill(serverPid, 'SIGTERM');
      } catch {}
    }
  });
  const [node, nodeArgs] = plainNode([cliPath('mosctl')]);
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  /** Runs mosctl in a new 80-column window; returns every distinct screen seen until it exits. */
  const inTerminal = async (win: string, args: string[], onScreen?: (screen: string) => void): Promise<string[]> => {
    // tmux starts the window with its own environment, not childEnv(): name the downloader's uid here too.
    const line = `MOSCTL_DOWNLOADER_USER=${TEST_DOWNLOADER_UID} ` + [node, ...nodeArgs, ...args].map(quote).join(' ');
    t.equal(tmux('new-window', '-d', '-t', 'main', '-n', win, `${line}; echo EXIT=$?; sleep 600`).status, 0, `${win}: window opened`);
    tmux('resize-window', '-t', `main:${win}`, '-x', '80', '-y', '30');
    const screens: string[] = [];
    const deadline = Date.now() + 120_000;
    for (;;) {
      // -J joins a line the terminal wrapped: a line wider than 80 columns shows as one long line.
      const screen = tmux('capture-pane', '-p', '-J', '-t', `main:${win}`).stdout;
      if (screen !== screens[screens.length - 1]) {
        screens.push(screen);
        onScreen?.(screen);
      }
      if (/EXIT=\d+/.test(screen) || Date.now() > deadline) return screens;
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  // 1. A whole pull at 80 columns.
  const root1 = freshRoot();
  const screens = await inTerminal('pull', ['--root', root1, 'install', source]);
  const last = screens[screens.length - 1]!;
  t.match(last, /EXIT=0/, 'the install succeeded', { diag: last });
  const bars = screens.flatMap((s) => s.split('\n')).filter((l) => /ETA|MiB\/s/.test(l));
  t.ok(bars.length >= 3, `the bar was redrawn as the pull went on (${bars.length} distinct states seen)`);
  const full = bars.find((l) => /^hostfs #*-* +\d+%  [\d.]+ MiB\/20\d(\.\d)? MiB  [\d.]+ MiB\/s  ETA \d+s$/.test(l));
  t.ok(full, 'one line: the target, a bar, percent, done/total in MiB, rate and ETA', { diag: bars.slice(0, 5) });
  t.same(bars.filter((l) => l.length > 79), [], 'every progress line fits 80 columns');
  t.notMatch(last, /ETA|MiB\/s/, 'the bar is gone when the result is printed');
  t.match(last, /generation 1/, "the command's own output follows");

  // 2. Ctrl-C in the middle of a pull: one line, exit 130, no partial file, no config.
  const root2 = freshRoot();
  let pressed = false;
  const cut = await inTerminal('cut', ['--root', root2, 'install', source], (screen) => {
    const m = /(\d+)%  [\d.]+ MiB\/20\d/.exec(screen);
    if (!pressed && m && Number(m[1]) >= 10) {
      pressed = true;
      tmux('send-keys', '-t', 'main:cut', 'C-c');
    }
  });
  const end = cut[cut.length - 1]!;
  t.ok(pressed, 'Ctrl-C was pressed mid-pull');
  t.match(end, /EXIT=130/, 'exit 130', { diag: end });
  t.equal(end.split('\n').filter((l) => /interrupted/.test(l)).length, 1, 'one line says so', { diag: end });
  t.match(end, /^mosctl: interrupted by SIGINT: stopped cleanly, temporary files removed$/m);
  t.same(readdirSync(join(root2, 'atomfs-store', 'mos', 'ingest')), [], 'no partial file in ingest/');
  t.notOk(existsSync(join(root2, 'config')), 'no config/');

  // 3. stderr a pipe: a plain line every 10 s once 5 s have passed; SIGTERM: exit 143, one line.
  const root3 = freshRoot();
  const child = spawn(...plainNode([cliPath('mosctl'), '--root', root3, 'install', source]), { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
  t.teardown(() => {
    if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  });
  let stderr = '';
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  await new Promise<void>((resolve) => {
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      if (/^\[mosctl \d+s\] .*\n/m.test(stderr)) resolve();
    });
    child.on('close', () => resolve());
  });
  t.match(stderr, /^\[mosctl [5-9]s\] pull: hostfs: [\d.]+ MiB\/20\d(\.\d)? MiB \(\d+%\)(, [\d.]+ MiB\/s)?(, ETA \d+s)?$/m, 'a plain progress line, no escape codes', { diag: stderr });
  t.notMatch(stderr, /\x1b/, 'no terminal control sequences on a pipe');
  process.kill(child.pid!, 'SIGTERM');
  t.equal(await exited, 143, 'SIGTERM: exit 143');
  t.match(stderr, /mosctl: interrupted by SIGTERM: stopped cleanly, temporary files removed\n$/);
  t.same(readdirSync(join(root3, 'atomfs-store', 'mos', 'ingest')), [], 'no partial file in ingest/');
  t.notOk(existsSync(join(root3, 'config')), 'no config/');
});
