import { t } from 'tap';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  checkImportFile,
  checkInstallFile,
  checkManifestFile,
  installFileFromImport,
  parseImportFile,
  parseInstallManifest,
  parseSource,
  parseSysManifest,
  serializeInstallFile,
  serializeSysManifest,
  type InstallFile,
} from '../../src/manifest/index.js';

const D1 = `sha256:${'a'.repeat(64)}`;
const D2 = `sha256:${'b'.repeat(64)}`;
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

// A valid manifest.yaml; each case replaces one line (or appends) to break exactly one rule.
const GOOD = `version: 1
product: de6c82c5-2e01-4c92-949b-a6545d30fc06
update_type: complete
storage:
  - label: data
    persistent: true
    nsgroup: c1
    size: 30
targets:
  - service_name: hostfs
    source: oci:build/oci:hostfs-1.0
    version: 1.0.0
    service_type: hostfs
    network:
      type: host
  - service_name: web
    source: docker://127.0.0.1:5000/machine/web:1.0
    version: "1.0"
    service_type: container
    nsgroup: c1
    digest: ${D1}
    size: 1234
    network:
      type: simple
      ipv4: 10.0.3.5/24
      ipv6: fd00::5/64
      ports:
        - host: 8080
          container: 80
    storage:
      - dest: /data
        label: data
`;

t.test('the good manifest parses to the expected value', async (t) => {
  const v = parseImportFile(GOOD, 'm.yaml');
  t.equal(v.targets.length, 2);
  t.equal(v.targets[1]!.version, '1.0', 'versions stay strings as written');
  t.same(v.targets[1]!.network, { type: 'simple', ipv4: '10.0.3.5/24', ipv6: 'fd00::5/64', ports: [{ host: 8080, container: 80 }] });
  t.same(v.storage, [{ label: 'data', persistent: true, nsgroup: 'c1', size: 30 }]);
  t.equal(v.targets[0]!.digest, undefined);
  t.equal(v.targets[1]!.size, 1234);
});

const yamlCases: { name: string; from: string | RegExp; to: string; field: string; code?: string }[] = [
  { name: 'version 2', from: 'version: 1\n', to: 'version: 2\n', field: 'version', code: 'MANIFEST_UNSUPPORTED' },
  { name: 'version missing', from: 'version: 1\n', to: '', field: 'version' },
  { name: 'version not a number', from: 'version: 1\n', to: 'version: one\n', field: 'version' },
  { name: 'product empty', from: /product: .*\n/, to: 'product: ""\n', field: 'product' },
  { name: 'update_type unknown', from: 'update_type: complete', to: 'update_type: full', field: 'update_type' },
  { name: 'update_type missing', from: 'update_type: complete\n', to: '', field: 'update_type' },
  { name: 'unknown top key', from: 'version: 1\n', to: 'version: 1\nprodcut: x\n', field: 'prodcut' },
  { name: 'unknown target key', from: '    version: 1.0.0\n', to: '    version: 1.0.0\n    servce_type: x\n', field: 'targets[0].servce_type' },
  { name: 'targets missing', from: /targets:[^]*$/, to: '', field: 'targets' },
  { name: 'targets empty', from: /targets:[^]*$/, to: 'targets: []\n', field: 'targets' },
  { name: 'target name uppercase', from: 'service_name: web', to: 'service_name: Web', field: 'targets[1].service_name' },
  { name: 'target name with ..', from: 'service_name: web', to: 'service_name: a..b', field: 'targets[1].service_name' },
  { name: 'target name with slash', from: 'service_name: web', to: 'service_name: a/b', field: 'targets[1].service_name' },
  { name: 'target name too long', from: 'service_name: web', to: `service_name: ${'a'.repeat(64)}`, field: 'targets[1].service_name' },
  { name: 'duplicate target name', from: 'service_name: web', to: 'service_name: hostfs', field: 'targets[1].service_name' },
  { name: 'second hostfs', from: 'service_type: container', to: 'service_type: hostfs', field: 'targets[1].service_type' },
  { name: 'hostfs under another name', from: 'service_name: hostfs', to: 'service_name: root', field: 'targets[0].service_name' },
  { name: 'target version missing', from: '    version: 1.0.0\n', to: '', field: 'targets[0].version' },
  { name: 'service_type unknown', from: 'service_type: container', to: 'service_type: vm', field: 'targets[1].service_type' },
  { name: 'service_type missing', from: '    service_type: hostfs\n', to: '', field: 'targets[0].service_type' },
  { name: 'network type unknown', from: 'type: simple', to: 'type: bridge', field: 'targets[1].network.type' },
  { name: 'network missing', from: '    network:\n      type: host\n', to: '', field: 'targets[0].network' },
  { name: 'addresses on host network', from: '      type: host\n', to: '      type: host\n      ipv4: 10.0.3.9\n', field: 'targets[0].network' },
  { name: 'bad ipv4', from: 'ipv4: 10.0.3.5/24', to: 'ipv4: 10.0.3.500/24', field: 'targets[1].network.ipv4' },
  { name: 'ipv4 prefix too long', from: 'ipv4: 10.0.3.5/24', to: 'ipv4: 10.0.3.5/33', field: 'targets[1].network.ipv4' },
  { name: 'ipv6 in ipv4', from: 'ipv4: 10.0.3.5/24', to: 'ipv4: fd00::1', field: 'targets[1].network.ipv4' },
  { name: 'bad ipv6', from: 'ipv6: fd00::5/64', to: 'ipv6: fd00::g/64', field: 'targets[1].network.ipv6' },
  { name: 'port 70000', from: 'host: 8080', to: 'host: 70000', field: 'targets[1].network.ports[0].host' },
  { name: 'port 65536', from: 'host: 8080', to: 'host: 65536', field: 'targets[1].network.ports[0].host' },
  { name: 'port 0', from: 'container: 80', to: 'container: 0', field: 'targets[1].network.ports[0].container' },
  { name: 'port negative', from: 'container: 80', to: 'container: -1', field: 'targets[1].network.ports[0].container' },
  { name: 'port missing', from: '          container: 80\n', to: '', field: 'targets[1].network.ports[0].container' },
  { name: 'port forwarded twice', from: '          container: 80\n', to: '          container: 80\n        - {host: 8080, container: 81}\n', field: 'targets[1].network.ports[1].host' },
  { name: 'unknown port key', from: '          container: 80\n', to: '          container: 80\n          proto: udp\n', field: 'targets[1].network.ports[0].proto' },
  { name: 'digest not sha256', from: `digest: ${D1}`, to: 'digest: md5:abc', field: 'targets[1].digest' },
  { name: 'digest uppercase', from: `digest: ${D1}`, to: `digest: ${D1.toUpperCase()}`, field: 'targets[1].digest' },
  { name: 'size zero', from: 'size: 1234', to: 'size: 0', field: 'targets[1].size' },
  { name: 'size not integer', from: 'size: 1234', to: 'size: 12.5', field: 'targets[1].size' },
  { name: 'size too large', from: 'size: 1234', to: 'size: 99999999999999999', field: 'targets[1].size' },
  { name: 'source missing', from: '    source: oci:build/oci:hostfs-1.0\n', to: '', field: 'targets[0].source' },
  { name: 'source http', from: 'docker://127.0.0.1:5000/machine/web:1.0', to: 'http://127.0.0.1:5000/machine/web:1.0', field: 'targets[1].source' },
  { name: 'source no tag', from: 'docker://127.0.0.1:5000/machine/web:1.0', to: 'docker://127.0.0.1:5000/machine/web', field: 'targets[1].source' },
  { name: 'source uppercase repo', from: 'docker://127.0.0.1:5000/machine/web:1.0', to: 'docker://127.0.0.1:5000/Machine/web:1.0', field: 'targets[1].source' },
  { name: 'source bad digest', from: 'docker://127.0.0.1:5000/machine/web:1.0', to: '127.0.0.1:5000/machine/web@sha256:abc', field: 'targets[1].source' },
  { name: 'source bad port', from: 'docker://127.0.0.1:5000/machine/web:1.0', to: 'docker://127.0.0.1:99999/machine/web:1.0', field: 'targets[1].source' },
  { name: 'source oci without tag', from: 'oci:build/oci:hostfs-1.0', to: 'oci:build', field: 'targets[0].source' },
  { name: 'nsgroup invalid', from: 'nsgroup: c1\n    digest', to: 'nsgroup: C 1\n    digest', field: 'targets[1].nsgroup' },
  { name: 'storage label reserved', from: '  - label: data', to: '  - label: machine-config', field: 'storage[0].label' },
  { name: 'storage label esp', from: '  - label: data', to: '  - label: esp', field: 'storage[0].label' },
  { name: 'storage label duplicate', from: '    size: 30\n', to: '    size: 30\n  - {label: data, size: 1}\n', field: 'storage[1].label' },
  { name: 'storage size missing', from: '    size: 30\n', to: '', field: 'storage[0].size' },
  { name: 'storage size zero', from: 'size: 30', to: 'size: 0', field: 'storage[0].size' },
  { name: 'storage persistent not bool', from: 'persistent: true', to: 'persistent: maybe', field: 'storage[0].persistent' },
  { name: 'storage unknown key', from: 'persistent: true', to: 'persistant: true', field: 'storage[0].persistant' },
  { name: 'storage undeclared label', from: '        label: data', to: '        label: other', field: 'targets[1].storage[0].label' },
  { name: 'storage dest relative', from: 'dest: /data', to: 'dest: data', field: 'targets[1].storage[0].dest' },
  { name: 'storage dest with ..', from: 'dest: /data', to: 'dest: /a/../etc', field: 'targets[1].storage[0].dest' },
  { name: 'storage dest with space', from: 'dest: /data', to: 'dest: "/my data"', field: 'targets[1].storage[0].dest' },
  { name: 'storage list not a list', from: /storage:\n  - label[^]*?size: 30\n/, to: 'storage: data\n', field: 'storage' },
  { name: 'target not a mapping', from: /targets:\n/, to: 'targets:\n  - hostfs\n', field: 'targets[0]' },
];

for (const c of yamlCases) {
  t.test(`manifest.yaml: ${c.name}`, async (t) => {
    const text = GOOD.replace(c.from, c.to);
    t.not(text, GOOD, 'the case changes the manifest');
    const { value, problems } = checkImportFile(text, 'm.yaml');
    t.equal(value, undefined);
    t.ok(problems.length >= 1);
    t.match(problems[0], { code: c.code ?? 'MANIFEST_INVALID', subject: `m.yaml: ${c.field}` }, problems.map((p) => `${p.subject}: ${p.message}`).join('\n'));
    t.throws(() => parseImportFile(text, 'm.yaml'), { code: c.code ?? 'MANIFEST_INVALID', subject: `m.yaml: ${c.field}` });
  });
}

t.test('messages say what is wrong; unknown keys suggest the right one', async (t) => {
  const p = checkImportFile(GOOD.replace('host: 8080', 'host: 70000'), 'm.yaml').problems[0]!;
  t.equal(`${p.subject}: ${p.message}`, 'm.yaml: targets[1].network.ports[0].host: 70000 is not a port (1-65535)');
  const u = checkImportFile(GOOD.replace('persistent: true', 'persistant: true'), 'm.yaml').problems[0]!;
  t.equal(u.hint, 'did you mean "persistent"?');
  const n = checkImportFile(GOOD.replace('service_name: web', 'name: web'), 'm.yaml').problems[0]!;
  t.equal(n.hint, 'did you mean "service_name"?');
});

t.test('a partial manifest may use storage labels declared by an earlier one, and needs no hostfs', async (t) => {
  const text = `version: 1\nproduct: p\nupdate_type: partial\ntargets:\n  - {service_name: web, source: "oci:d:t", version: "2", service_type: container, network: {type: none}, storage: [{dest: /d, label: old}]}\n`;
  t.same(checkImportFile(text, 'p.yaml').problems, []);
});

t.test('every problem is reported, not just the first', async (t) => {
  const text = GOOD.replace('version: 1\n', 'version: 3\n').replace('host: 8080', 'host: 0').replace('type: simple', 'type: x');
  const subjects = checkImportFile(text, 'm.yaml').problems.map((p) => p.subject);
  t.same(subjects, ['m.yaml: version', 'm.yaml: targets[1].network.type', 'm.yaml: targets[1].network.ports[0].host']);
});

t.test('YAML hazards: syntax, duplicate keys, alias bombs, size, non-UTF-8, tags', async (t) => {
  const one = (text: string | Uint8Array) => checkImportFile(text, 'm.yaml').problems[0];
  t.match(one('version: [1'), { code: 'MANIFEST_INVALID', subject: 'm.yaml', message: /not valid YAML/ });
  t.match(one('version: 1\nversion: 1\n'), { subject: 'm.yaml', message: /duplicated mapping key/ });
  const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 12; i++) bomb.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill('*' + String.fromCharCode(96 + i)).join(', ')}]`);
  t.match(one(bomb.join('\n')), { subject: 'm.yaml', message: /aliases exceeded/ });
  t.match(one('a: ' + 'x'.repeat(1024 * 1024)), { code: 'MANIFEST_TOO_LARGE', subject: 'm.yaml' });
  t.match(one(new Uint8Array([0x76, 0x3a, 0xff, 0xfe])), { subject: 'm.yaml', message: /UTF-8/ });
  t.match(one('version: !!int 1'), { subject: 'm.yaml', message: /not valid YAML/ });
  t.match(one('- 1\n- 2\n'), { subject: 'm.yaml', message: /must be a mapping/ });
  t.match(one('__proto__: {x: 1}\n'), { subject: 'm.yaml: __proto__', message: 'unknown key' });
});

t.test('examples in manifests/ are valid', async (t) => {
  const dir = fileURLToPath(new URL('../../manifests/', import.meta.url));
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  t.ok(files.length >= 4);
  for (const f of files) t.same(checkImportFile(readFileSync(dir + f), f).problems, [], f);
});

const INSTALL: InstallFile = {
  version: 1,
  product: 'p<&>\u2028',
  storage: null,
  targets: [
    {
      service_name: 'hostfs',
      version: '1.0.0',
      service_type: 'hostfs',
      network: { type: 'host', ipv4: '', ipv6: '', ports: null },
      nsgroup: '',
      digest: D1,
      storage: null,
      size: 541,
    },
  ],
  update_type: 'complete',
};

t.test('serializeInstallFile writes Go json.Marshal bytes in mos key order', async (t) => {
  const want =
    '{"version":1,"product":"p\\u003c\\u0026\\u003e\\u2028","storage":null,"targets":[{"service_name":"hostfs","version":"1.0.0",' +
    '"service_type":"hostfs","network":{"type":"host","ipv4":"","ipv6":"","ports":null},"nsgroup":"","digest":"' +
    D1 +
    '","storage":null,"size":541}],"update_type":"complete"}';
  t.equal(dec(serializeInstallFile(INSTALL)), want);
  const full: InstallFile = {
    ...INSTALL,
    product: 'q\b\f\u0001"\\\n\t',
    storage: [{ label: 'data', persistent: false, nsgroup: 'c1', size: 5 }],
    targets: [{ ...INSTALL.targets[0]!, network: { type: 'simple', ipv4: '10.0.3.2', ipv6: '', ports: [{ host: 80, container: 8080 }] }, storage: [{ dest: '/d', label: 'data' }] }],
    update_type: '',
  };
  t.equal(
    dec(serializeInstallFile(full)),
    '{"version":1,"product":"q\\u0008\\u000c\\u0001\\"\\\\\\n\\t","storage":[{"label":"data","persistent":false,"nsgroup":"c1","size":5}],' +
      '"targets":[{"service_name":"hostfs","version":"1.0.0","service_type":"hostfs","network":{"type":"simple","ipv4":"10.0.3.2","ipv6":"",' +
      '"ports":[{"host":80,"container":8080}]},"nsgroup":"","digest":"' +
      D1 +
      '","storage":[{"dest":"/d","label":"data"}],"size":541}],"update_type":""}',
  );
});

t.test('install.json: raw bytes kept, sha of them, round trip of a serialized file', async (t) => {
  const raw = serializeInstallFile(INSTALL);
  const m = parseInstallManifest(raw, 'i.json');
  t.equal(m.raw, raw, 'the very bytes');
  t.match(m.sha, /^[0-9a-f]{64}$/);
  t.same(m.value, INSTALL);
  // mos-made files may carry keys we do not know: accepted (lenient like mos).
  const extra = enc(dec(raw).replace('"version":1,', '"version":1,"x-extra":{"a":1},'));
  t.same(parseInstallManifest(extra, 'i.json').value, INSTALL);
});

const installCases: { name: string; edit: (o: any) => void; field: string; code?: string }[] = [
  { name: 'version 0', edit: (o) => (o.version = 0), field: 'version', code: 'MANIFEST_UNSUPPORTED' },
  { name: 'version string', edit: (o) => (o.version = '1'), field: 'version' },
  { name: 'product missing', edit: (o) => delete o.product, field: 'product' },
  { name: 'update_type unknown', edit: (o) => (o.update_type = 'full'), field: 'update_type' },
  { name: 'no targets', edit: (o) => (o.targets = null), field: 'targets' },
  { name: 'digest missing', edit: (o) => delete o.targets[0].digest, field: 'targets[0].digest' },
  { name: 'digest bad', edit: (o) => (o.targets[0].digest = 'sha256:xyz'), field: 'targets[0].digest' },
  { name: 'size missing', edit: (o) => delete o.targets[0].size, field: 'targets[0].size' },
  { name: 'size negative', edit: (o) => (o.targets[0].size = -4), field: 'targets[0].size' },
  { name: 'size fractional', edit: (o) => (o.targets[0].size = 4.5), field: 'targets[0].size' },
  { name: 'service_type unknown', edit: (o) => (o.targets[0].service_type = 'vm'), field: 'targets[0].service_type' },
  { name: 'port 65536 (mos accepts it)', edit: (o) => ((o.targets[0].network = { type: 'simple', ports: [{ host: 65536, container: 1 }] }), (o.targets[0].service_name = 'c'), (o.targets[0].service_type = 'container')), field: 'targets[0].network.ports[0].host' },
  { name: 'duplicate names', edit: (o) => o.targets.push({ ...o.targets[0] }), field: 'targets[1].service_name' },
  { name: 'name unsafe', edit: (o) => (o.targets[0].service_name = '../x'), field: 'targets[0].service_name' },
  { name: 'reserved storage label', edit: (o) => (o.storage = [{ label: 'machine-store', size: 1 }]), field: 'storage[0].label' },
  { name: 'target not an object', edit: (o) => (o.targets[0] = 7), field: 'targets[0]' },
];

for (const c of installCases) {
  t.test(`install.json: ${c.name}`, async (t) => {
    const o = JSON.parse(dec(serializeInstallFile(INSTALL)));
    c.edit(o);
    const raw = enc(JSON.stringify(o));
    t.match(checkInstallFile(raw, 'i.json').problems[0], { code: c.code ?? 'MANIFEST_INVALID', subject: `i.json: ${c.field}` });
    t.throws(() => parseInstallManifest(raw, 'i.json'), { code: c.code ?? 'MANIFEST_INVALID', subject: `i.json: ${c.field}` });
  });
}

t.test('install.json that is not JSON or not an object', async (t) => {
  t.match(checkInstallFile(enc('{"version":'), 'i.json').problems[0], { subject: 'i.json', message: /not valid JSON/ });
  t.match(checkInstallFile(enc('[]'), 'i.json').problems[0], { subject: 'i.json', message: /must be a mapping/ });
});

t.test('installFileFromImport pins targets and refuses contradictions', async (t) => {
  const imp = parseImportFile(GOOD, 'm.yaml');
  const pins = new Map([
    ['hostfs', { digest: D2, size: 99 }],
    ['web', { digest: D1, size: 1234 }],
  ]);
  const f = installFileFromImport(imp, pins);
  t.same(f.targets.map((x) => [x.service_name, x.digest, x.size]), [['hostfs', D2, 99], ['web', D1, 1234]]);
  t.notOk('source' in f.targets[0]!, 'source dropped');
  t.equal(parseInstallManifest(serializeInstallFile(f), 'i.json').value.targets.length, 2, 'what publish signs is valid');
  t.throws(() => installFileFromImport(imp, new Map([...pins, ['web', { digest: D2, size: 1234 }]])), { code: 'OCI_DIGEST_MISMATCH', subject: 'targets[1].digest', message: /target "web"/ });
  t.throws(() => installFileFromImport(imp, new Map([...pins, ['web', { digest: D1, size: 1 }]])), { code: 'OCI_SIZE_MISMATCH', subject: 'targets[1].size', message: /target "web"/ });
  t.throws(() => installFileFromImport(imp, new Map([['web', { digest: D1, size: 1234 }]])), { code: 'MANIFEST_INVALID', subject: 'targets[0].source', message: /hostfs/ });
  t.throws(() => installFileFromImport(imp, new Map([...pins, ['hostfs', { digest: 'sha256:1', size: 1 }]])), { code: 'MANIFEST_INVALID', subject: 'targets[0].digest' });
});

t.test('system manifest: mos fields read and kept, written in mos order', async (t) => {
  const sha = 'c'.repeat(64);
  const goMade = `{"uidmaps":[{"idmap-name":"c1","hostid":100000}],"targets":[{"name":"hostfs","source":"${sha}.json","OCIManifest":{"schemaVersion":0,"config":{"mediaType":"","digest":"","size":0},"layers":null},"OCIConfig":{"architecture":"","os":"","rootfs":{"type":"","diff_ids":null}}}],"storage":null,"DefaultNic":"","UsedPorts":{},"IpAddrs":{}}`;
  const m = parseSysManifest(enc(goMade), 'manifest.json');
  t.same(m.uidmaps, [{ 'idmap-name': 'c1', hostid: 100000 }]);
  t.equal(m.targets![0]!.source, `${sha}.json`);
  t.ok(m.targets![0]!.OCIManifest, 'Go-only fields kept');
  t.same(m.UsedPorts, {});
  const again = parseSysManifest(serializeSysManifest(m), 'manifest.json');
  t.same(again, m, 'round trip');
  t.same(Object.keys(JSON.parse(dec(serializeSysManifest(m)))), ['uidmaps', 'targets', 'storage', 'DefaultNic', 'UsedPorts', 'IpAddrs']);
  const updated = parseSysManifest(enc(`{"uidmaps":null,"targets":[{"name":"a","source":"${sha}.json"}],"storage":null,"UsedPorts":null,"IpAddrs":null}`), 'manifest.json');
  t.same(JSON.parse(dec(serializeSysManifest(updated))).UsedPorts, {}, 'null maps (mos after update) written as {}');
  t.throws(() => parseSysManifest(enc('{"targets":[{"name":"a","source":"x.json"}]}'), 'manifest.json'), { code: 'MANIFEST_INVALID', subject: 'manifest.json: targets[0].source' });
  t.throws(() => parseSysManifest(enc(`{"targets":[{"name":"a","source":"${sha}.json"},{"name":"a","source":"${sha}.json"}]}`), 'manifest.json'), { code: 'MANIFEST_INVALID', subject: 'manifest.json: targets[1].name' });
  t.throws(() => parseSysManifest(enc('nope'), 'manifest.json'), { code: 'MANIFEST_INVALID', subject: 'manifest.json' });
});

t.test('sources', async (t) => {
  t.same(parseSource('oci:build/oci:hostfs-1.0'), { kind: 'layout', dir: 'build/oci', tag: 'hostfs-1.0' });
  t.same(parseSource('docker://127.0.0.1:5000/mos/x:1.0'), { kind: 'registry', host: '127.0.0.1:5000', name: 'mos/x', tag: '1.0' });
  t.same(parseSource(`zothub.io/machine/b@${D1}`), { kind: 'registry', host: 'zothub.io', name: 'machine/b', digest: D1 });
  t.throws(() => parseSource('docker://host/name', 's'), { code: 'MANIFEST_INVALID', subject: 's' });
});

t.test('checkManifestFile picks the format by content', async (t) => {
  t.equal(checkManifestFile(enc(GOOD), 'a').kind, 'manifest.yaml');
  t.equal(checkManifestFile(serializeInstallFile(INSTALL), 'a').kind, 'install.json');
  t.equal(checkManifestFile(enc('{"uidmaps":[],"targets":[]}'), 'a').kind, 'manifest.json');
  t.same(checkManifestFile(serializeInstallFile(INSTALL), 'a').problems, []);
});

t.test('validation reports every fault in one run, cross-target rules included', async (t) => {
  // A bad port in one target used to hide the duplicate name and the undeclared label of others.
  const yaml = GOOD.replace('host: 8080', 'host: 70000')
    .replace('service_name: web', 'service_name: hostfs')
    .replace('        label: data\n', '        label: data\n      - dest: /x\n        label: nope\n');
  const { value, problems } = checkImportFile(yaml, 'm.yaml');
  t.equal(value, undefined);
  const subjects = problems.map((p) => p.subject);
  t.ok(subjects.some((s) => /ports\[0\]\.host$/.test(s ?? '')), 'the bad port');
  t.ok(problems.some((p) => /already defined by targets\[0\]/.test(p.message)), 'the duplicate name');
  t.ok(problems.some((p) => /storage label "nope" is not declared/.test(p.message)), 'the undeclared label');
  // The same in install.json: a bad digest in one target, a duplicate name in another.
  const inst = (digest: string) => ({ service_name: 'app', source: 'x', version: '1', service_type: 'fs-only', network: { type: 'none' }, nsgroup: '', digest, size: 10 });
  const raw = enc(JSON.stringify({ version: 1, product: 'p', update_type: 'complete', targets: [inst('sha256:nothex'), inst(D1)] }));
  const ip = checkInstallFile(raw, 'install.json').problems;
  t.ok(ip.some((p) => /targets\[0\]\.digest$/.test(p.subject ?? '')), 'the bad digest');
  t.ok(ip.some((p) => /already defined by targets\[0\]/.test(p.message)), 'the duplicate name, although targets[0] had a bad field');
});

t.test('a null where a value is needed is an error naming the field, never a dropped target', async (t) => {
  const yaml = GOOD.replace('host: 8080', 'host: null');
  const { value, problems } = checkImportFile(yaml, 'm.yaml');
  t.equal(value, undefined, 'no manifest comes out');
  t.match(problems.map((p) => `${p.subject}: ${p.message}`), [/targets\[1\]\.network\.ports\[0\]\.host: is missing/]);
  const inst = enc(JSON.stringify({ version: 1, product: 'p', update_type: 'complete', targets: [{ service_name: 'app', source: 'x', version: '1', service_type: 'container', network: { type: 'simple', ports: [{ host: null, container: 80 }] }, nsgroup: '', digest: D1, size: 10 }] }));
  const ip = checkInstallFile(inst, 'install.json');
  t.equal(ip.value, undefined);
  t.match(ip.problems.map((p) => p.subject), [/targets\[0\]\.network\.ports\[0\]\.host$/]);
});
