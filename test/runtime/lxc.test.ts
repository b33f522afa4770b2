import { t, type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { needs } from '../support/env.js';
import { buildBusyboxRootfs, lxcSandbox, allowIdRange, procUids, childPids, createTestBridge } from '../support/lxc.js';
import {
  renderLxcConfig, resolveSpecUser, startContainer, stopContainer, containerState, shiftOwnership, prepareVolumes,
  volumeMounts, probeHostFeatures, idmappedMountSupported, applyPortForwards, removePortForwards, portForwardTag,
  type ContainerSpec,
} from '../../src/runtime/index.js';

const skip = needs({ root: true, programs: ['lxc-execute', 'lxc-info', 'lxc-stop', 'chroot', 'nsenter'] });
// Names and id ranges unique to this file and run: other suites may run containers at the same time.
const tag = `rt${process.pid}`;
const HOSTID = 65536 * 21;
const RANGE = 65536;

function setup(t: Test, name: string) {
  const box = lxcSandbox(t);
  box.track(name);
  const { dir, lxcPath } = box;
  const rootfs = buildBusyboxRootfs(join(dir, 'rootfs'));
  const base: ContainerSpec = { name, rootfs, command: ['/bin/sleep', '1000'], env: [], network: { type: 'none' }, mounts: [], logFile: join(dir, 'log', `${name}.log`) };
  return { dir, rootfs, lxcPath, base };
}

function cmdline(pid: number): string[] {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
}

t.test('a container runs our exact argv under lxc-init, as the image user, with a volume; stops cleanly', { skip }, async (t) => {
  const name = `${tag}-a`;
  const { dir, lxcPath, base } = setup(t, name);
  const storageDir = join(dir, 'storage');
  const items = [{ label: 'data', persistent: true }];
  await prepareVolumes({ storageDir, items, idmaps: [], boot: true });
  spawnSync('chmod', ['0777', join(storageDir, 'data')]);
  const argv = ['/bin/sh', '-c', 'echo "$0|$1|$2|$HOME|$(pwd)" > /data/out; exec sleep 1000', 'arg zero', 'x "quoted" y', "it's"];
  const spec = await resolveSpecUser({
    ...base,
    command: argv,
    env: ['GREETING=hello world'],
    user: 'app',
    workingDir: '/home/app',
    mounts: volumeMounts(storageDir, [{ dest: '/data', label: 'data' }], items, name),
  });
  t.equal(spec.user, '1000:1001');
  const config = renderLxcConfig(spec, await probeHostFeatures());
  const st = await startContainer({ name, lxcPath, config });
  t.equal(st.state, 'RUNNING');
  t.type(st.pid, 'number');
  t.equal(readFileSync(join(lxcPath, name, 'config'), 'utf8'), config, 'config written where LXC reads it');
  const init = st.pid!;
  t.match(cmdline(init)[0] ?? '', /init/, 'PID 1 of the container is lxc-init');
  const [child] = childPids(init);
  t.ok(child, 'the command runs under lxc-init');
  t.same(cmdline(child!), ['sleep', '1000'], 'our command, after exec');
  t.same(procUids(child!).slice(0, 2), [1000, 1000], 'runs as the image user');
  const environ = readFileSync(`/proc/${child}/environ`, 'utf8').split('\0');
  t.ok(environ.includes('GREETING=hello world'));
  t.notOk(environ.some((e) => e.startsWith('SUDO_') || e.startsWith('TAP')), 'no host environment leaks in');
  // the shell wrote before exec; wait for it only as long as it takes (no timing assertion)
  for (let i = 0; i < 100 && !existsSync(join(storageDir, 'data', 'out')); i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(readFileSync(join(storageDir, 'data', 'out'), 'utf8'), `arg zero|x "quoted" y|it's|/home/app|/home/app\n`, 'argv, HOME and cwd exact');

  await t.rejects(startContainer({ name, lxcPath, config }), { code: 'ALREADY_EXISTS' }, 'a running container is not started twice');
  t.same(await stopContainer({ name, lxcPath, timeoutS: 5 }), { wasRunning: true });
  t.same(await containerState({ name, lxcPath }), { name, state: 'STOPPED' });
  t.same(await stopContainer({ name, lxcPath }), { wasRunning: false }, 'idempotent');
  t.notOk(existsSync(`/sys/fs/cgroup/pids/lxc.payload.${name}`), 'payload cgroup removed');
  t.notOk(existsSync(`/sys/fs/cgroup/pids/lxc.monitor.${name}`), 'monitor cgroup removed');
  t.same(await containerState({ name: `${tag}-none`, lxcPath }), { name: `${tag}-none`, state: 'ABSENT' });
});

t.test('a command that exits at once is reported, not called RUNNING', { skip }, async (t) => {
  const name = `${tag}-x`;
  const { lxcPath, base } = setup(t, name);
  const config = renderLxcConfig({ ...base, command: ['/no/such/binary'] });
  await t.rejects(startContainer({ name, lxcPath, config }), { code: 'RUNTIME_LXC_FAILED', subject: `container ${name}` });
});

t.test('with an idmap the container root is hostid on the host (chown shift, and idmapped rootfs)', { skip }, async (t) => {
  await allowIdRange(t, { hostid: HOSTID, range: RANGE });
  const name = `${tag}-u`;
  const { dir, rootfs, lxcPath, base } = setup(t, name);
  const record = join(dir, 'shift.json');
  const shifted = await shiftOwnership({ dir: rootfs, hostid: HOSTID, range: RANGE, recordFile: record });
  t.ok(shifted.changed > 200, 'busybox tree shifted');
  t.equal(lstatSync(join(rootfs, 'bin', 'busybox')).uid, HOSTID);
  t.equal(lstatSync(join(rootfs, 'home', 'app')).uid, HOSTID);
  t.same(await shiftOwnership({ dir: rootfs, hostid: HOSTID, range: RANGE, recordFile: record }), { skipped: true, changed: 0, from: HOSTID }, 'a re-activation does not walk again');
  const command = ['/bin/sh', '-c', 'touch /tmp/by-root; exec sleep 1000'];
  const st = await startContainer({ name, lxcPath, config: renderLxcConfig({ ...base, command, idmap: { hostid: HOSTID, range: RANGE } }) });
  t.equal(procUids(st.pid!)[0], HOSTID, 'container init runs as hostid on the host');
  const [child] = childPids(st.pid!);
  t.equal(procUids(child!)[0], HOSTID);
  for (let i = 0; i < 100 && !existsSync(join(rootfs, 'tmp', 'by-root')); i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(lstatSync(join(rootfs, 'tmp', 'by-root')).uid, HOSTID, 'files the container root writes are hostid on disk');
  await stopContainer({ name, lxcPath, timeoutS: 5 });

  // The same image, unshifted, on a filesystem that allows idmapped mounts: LXC idmaps the rootfs instead.
  const name2 = `${tag}-m`;
  const s2 = setup(t, name2);
  if (!(await idmappedMountSupported(s2.rootfs))) {
    t.comment('test dir filesystem has no idmapped mounts; chown shift covered above');
    return;
  }
  const st2 = await startContainer({ name: name2, lxcPath: s2.lxcPath, config: renderLxcConfig({ ...s2.base, command, idmap: { hostid: HOSTID, range: RANGE }, idmappedRootfs: true }) });
  t.equal(procUids(st2.pid!)[0], HOSTID);
  for (let i = 0; i < 100 && !existsSync(join(s2.rootfs, 'tmp', 'by-root')); i++) await new Promise((r) => setTimeout(r, 50));
  t.equal(lstatSync(join(s2.rootfs, 'tmp', 'by-root')).uid, 0, 'idmapped: written as container root, stored as image root');
  t.equal(lstatSync(join(s2.rootfs, 'bin', 'busybox')).uid, 0, 'image files left unshifted');
  await stopContainer({ name: name2, lxcPath: s2.lxcPath, timeoutS: 5 });
});

t.test('simple network: a missing bridge fails before anything starts; a real bridge gets the veth and address', { skip: skip || needs({ programs: ['ip', 'iptables'] }) }, async (t) => {
  const name = `${tag}-n`;
  const bridge = `brmt${process.pid % 100000}`;
  const { lxcPath, base } = setup(t, name);
  const network = { type: 'simple' as const, bridge, ipv4: '10.213.77.2/24', ports: [{ host: 38080, container: 80 }] };
  const config = renderLxcConfig({ ...base, network });
  await t.rejects(startContainer({ name, lxcPath, config }), { code: 'RUNTIME_NETWORK', subject: `container ${name}: bridge ${bridge}`, message: `bridge ${bridge} does not exist` });
  t.same(readdirSync(lxcPath), [], 'nothing written');
  t.same(await containerState({ name, lxcPath }), { name, state: 'ABSENT' });

  createTestBridge(t, bridge);
  const st = await startContainer({ name, lxcPath, config });
  t.equal(st.state, 'RUNNING');
  t.equal(readdirSync(`/sys/class/net/${bridge}/brif`).length, 1, 'a veth is attached to the bridge');
  const addr = spawnSync('nsenter', ['-t', String(st.pid), '-n', 'ip', '-4', '-o', 'addr', 'show', 'eth0'], { encoding: 'utf8' });
  t.match(addr.stdout, /inet 10\.213\.77\.2\/24/, 'the container has its address');

  t.teardown(() => removePortForwards({ name }).then(() => undefined));
  await applyPortForwards({ name, network });
  await applyPortForwards({ name, network }); // idempotent: replaces, does not duplicate
  const rules = spawnSync('iptables', ['-t', 'nat', '-S', 'PREROUTING'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.includes(portForwardTag(name)));
  t.equal(rules.length, 1);
  t.match(rules[0], /--dport 38080 .*--to-destination 10\.213\.77\.2:80/);
  t.equal(await removePortForwards({ name }), 1);
  t.equal(await removePortForwards({ name }), 0);
  await stopContainer({ name, lxcPath, timeoutS: 5 });
  t.equal(readdirSync(`/sys/class/net/${bridge}/brif`).length, 0, 'veth gone with the container');
});

t.test('an idmapped container whose rootfs sits under a private dir is refused with a clear error', { skip }, async (t) => {
  const name = `${tag}-p`;
  const { dir, lxcPath, base } = setup(t, name);
  chmodSync(dir, 0o700);
  t.teardown(() => chmodSync(dir, 0o755));
  await t.rejects(startContainer({ name, lxcPath, config: renderLxcConfig({ ...base, idmap: { hostid: HOSTID, range: RANGE } }) }), { code: 'RUNTIME_LXC_FAILED', message: `${dir} is not searchable by others, so the idmapped container root cannot reach its rootfs` });
  t.same(readdirSync(lxcPath), [], 'nothing written');
});
