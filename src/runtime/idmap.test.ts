import { t } from 'tap';
import { allocateIdmaps, idmapFor } from './idmap.js';
import { subIdCovered } from './subid.js';
import { planPortForwards } from './network.js';
import { parseLxcInfo, configValues } from './lxc.js';
import { volumeMounts, checkVolumeLabel } from './volumes.js';
import type { UidMap } from './types.js';

const R = 65536;
const m = (name: string, hostid: number): UidMap => ({ 'idmap-name': name, hostid });
const disjoint = (maps: UidMap[], range: number) =>
  maps.every((a, i) => maps.every((b, j) => i === j || a.hostid + range <= b.hostid || b.hostid + range <= a.hostid));

const cases: { name: string; groups: string[]; previous: UidMap[]; opts?: { start: number; range: number }; want: UidMap[] }[] = [
  { name: 'host namespace groups get no map', groups: ['', 'none'], previous: [], want: [] },
  { name: 'fresh groups get consecutive disjoint ranges', groups: ['c1', '', 'c2', 'c1', 'none', 'c3'], previous: [], want: [m('c1', 100000), m('c2', 165536), m('c3', 231072)] },
  { name: 'nested defaults', groups: ['a', 'b'], previous: [], opts: { start: 40000, range: 2000 }, want: [m('a', 40000), m('b', 42000)] },
  { name: 'stable across an update', groups: ['c2', 'c1'], previous: [m('c1', 100000), m('c2', 165536)], want: [m('c2', 165536), m('c1', 100000)] },
  { name: 'a new group avoids kept ranges', groups: ['c1', 'c4'], previous: [m('c1', 165536)], want: [m('c1', 165536), m('c4', 100000)] },
  { name: 'a removed group range is not handed to a new group', groups: ['c1', 'new'], previous: [m('c1', 100000), m('gone', 165536)], want: [m('c1', 100000), m('new', 231072)] },
  { name: 'Go mos gave everyone the same range: first keeps it, the others move', groups: ['c1', 'c2', 'c3'], previous: [m('c1', 100000), m('c2', 100000), m('c3', 100000)], want: [m('c1', 100000), m('c2', 165536), m('c3', 231072)] },
  { name: 'an unaligned previous range is kept and avoided', groups: ['a', 'b'], previous: [m('a', 120000)], want: [m('a', 120000), m('b', 231072)] },
  { name: 'a previous hostid below the range is reallocated', groups: ['a'], previous: [m('a', 0)], want: [m('a', 100000)] },
];
for (const c of cases) {
  t.test(`allocateIdmaps: ${c.name}`, async (t) => {
    const got = allocateIdmaps(c.groups, c.previous, c.opts);
    t.same(got, c.want);
    t.ok(disjoint(got, c.opts?.range ?? R), 'ranges are disjoint');
  });
}

t.test('allocateIdmaps: many add/remove rounds keep survivors stable and all disjoint', async (t) => {
  let maps: UidMap[] = [];
  let groups: string[] = [];
  for (let round = 0; round < 30; round++) {
    groups = [...groups.filter((_, i) => (i + round) % 3 !== 0), `g${round}`, `h${round}`];
    const next = allocateIdmaps(groups, maps);
    for (const p of maps) {
      const n = next.find((x) => x['idmap-name'] === p['idmap-name']);
      if (n) t.equal(n.hostid, p.hostid, `round ${round}: ${p['idmap-name']} kept`);
    }
    t.ok(disjoint(next, R), `round ${round}: disjoint`);
    t.same(next.map((x) => x['idmap-name']).sort(), [...groups].sort());
    maps = next;
  }
});

t.test('allocateIdmaps and idmapFor reject bad input', async (t) => {
  t.throws(() => allocateIdmaps(['a'], [], { start: 0 }), { code: 'INPUT_INVALID' });
  t.equal(idmapFor('none', [], 's'), undefined);
  t.equal(idmapFor('c1', [m('c1', 100000)], 's'), 100000);
  t.throws(() => idmapFor('c9', [m('c1', 100000)], 'targets[1].nsgroup'), { code: 'INPUT_INVALID', subject: 'targets[1].nsgroup' });
});

t.test('subIdCovered', async (t) => {
  const text = 'lxd:1000000:1000000000\nroot:100000:65536\nroot:300000:200000\n';
  t.ok(subIdCovered(text, 'root', { hostid: 100000, range: 65536 }));
  t.ok(subIdCovered(text, 'root', { hostid: 365536, range: 65536 }), 'inside a larger line');
  t.notOk(subIdCovered(text, 'root', { hostid: 165536, range: 65536 }));
  t.notOk(subIdCovered(text, 'root', { hostid: 1000000, range: 65536 }), 'another user line');
});

t.test('planPortForwards', async (t) => {
  t.same(planPortForwards('web', { type: 'simple', ipv4: '10.0.3.9/24', ports: [{ host: 8080, container: 80 }] }, 'eth0'), [
    ['iptables', '-t', 'nat', '-A', 'PREROUTING', '-p', 'tcp', '-i', 'eth0', '--dport', '8080', '-m', 'comment', '--comment', 'mosctl:web', '-j', 'DNAT', '--to-destination', '10.0.3.9:80'],
  ]);
  t.same(planPortForwards('web', { type: 'host', ports: [{ host: 1, container: 1 }] }), [], 'host network: nothing to forward');
  t.throws(() => planPortForwards('web', { type: 'simple', ports: [{ host: 80, container: 80 }] }), { code: 'INPUT_INVALID', subject: 'container web: network.ports' });
  t.throws(() => planPortForwards('web', { type: 'simple', ipv4: '10.0.0.2', ports: [{ host: 0, container: 80 }] }), { code: 'INPUT_INVALID', subject: 'container web: network.ports[0].host' });
});

t.test('parseLxcInfo and configValues', async (t) => {
  t.same(parseLxcInfo('c', 'State:          RUNNING\nPID:            8078\n'), { name: 'c', state: 'RUNNING', pid: 8078 });
  t.same(parseLxcInfo('c', 'State:          STOPPED\n'), { name: 'c', state: 'STOPPED' });
  t.throws(() => parseLxcInfo('c', 'garbage'), { code: 'RUNTIME_LXC_FAILED' });
  t.same(configValues('# lxc.net.0.link = x\nlxc.net.0.link = br0\nlxc.net.1.link=br1\nlxc.net.0.type = veth\n', /^lxc\.net\.\d+\.link$/), ['br0', 'br1']);
});

t.test('volume labels and mounts', async (t) => {
  for (const bad of ['', '.', '..', '../x', 'a/b', 'a b', '-x']) t.throws(() => checkVolumeLabel(bad, 'storage[0].label'), { code: 'INPUT_INVALID', subject: 'storage[0].label' }, JSON.stringify(bad));
  const items = [{ label: 'data', persistent: true }];
  t.same(volumeMounts('/r/storage', [{ dest: '/var/data', label: 'data' }], items, 'web'), [{ source: '/r/storage/data', dest: '/var/data', kind: 'dir' }]);
  t.throws(() => volumeMounts('/r/storage', [{ dest: '/v', label: 'nope' }], items, 'web'), { code: 'INPUT_INVALID', subject: 'web: storage[0].label' });
  t.throws(() => volumeMounts('/r/storage', [{ dest: 'v/../..', label: 'data' }], items, 'web'), { code: 'INPUT_INVALID', subject: 'web: storage[0].dest' });
});
