import { t } from 'tap';
import { parseReference, formatReference } from '../../src/base/index.js';

const HEX = 'a'.repeat(64);
const D = `sha256:${HEX}`;

const good = [
  { in: 'docker://127.0.0.1:5000/mos/test:1', want: { kind: 'registry', host: '127.0.0.1:5000', name: 'mos/test', tag: '1' } },
  { in: '127.0.0.1:5000/mos/test:1', want: { kind: 'registry', host: '127.0.0.1:5000', name: 'mos/test', tag: '1' } },
  { in: `zothub.io/machine/install@${D}`, want: { kind: 'registry', host: 'zothub.io', name: 'machine/install', digest: D } },
  { in: `localhost/a:v1@${D}`, want: { kind: 'registry', host: 'localhost', name: 'a', tag: 'v1', digest: D } },
  { in: 'localhost:5000/a', want: { kind: 'registry', host: 'localhost:5000', name: 'a' } },
  { in: '[::1]:5000/a/b-c__d.e:T_1.2-x', want: { kind: 'registry', host: '[::1]:5000', name: 'a/b-c__d.e', tag: 'T_1.2-x' } },
  { in: 'busybox', want: { kind: 'registry', host: 'docker.io', name: 'library/busybox' } },
  { in: 'busybox:1.36', want: { kind: 'registry', host: 'docker.io', name: 'library/busybox', tag: '1.36' } },
  { in: 'library/busybox:1', want: { kind: 'registry', host: 'docker.io', name: 'library/busybox', tag: '1' } },
  { in: 'index.docker.io/library/busybox', want: { kind: 'registry', host: 'docker.io', name: 'library/busybox' } },
  { in: 'docker.io/alpine', want: { kind: 'registry', host: 'docker.io', name: 'library/alpine' } },
  { in: 'oci:/tmp/layout:v1', want: { kind: 'layout', dir: '/tmp/layout', tag: 'v1' } },
  { in: 'oci:/tmp/layout', want: { kind: 'layout', dir: '/tmp/layout' } },
  { in: 'oci:relative/dir:my/tag', want: { kind: 'layout', dir: 'relative/dir', tag: 'my/tag' } },
  { in: `oci:/tmp/layout:${D}`, want: { kind: 'layout', dir: '/tmp/layout', tag: D } },
  { in: `oci:/a:b/layout:${D}`, want: { kind: 'layout', dir: '/a:b/layout', tag: D } },
  { in: `oci:/tmp/layout@${D}`, want: { kind: 'layout', dir: '/tmp/layout', digest: D } },
  { in: 'oci:/tmp/x:y:z', want: { kind: 'layout', dir: '/tmp/x:y', tag: 'z' } },
];
for (const c of good) {
  t.test(`parses ${c.in}`, async (t) => {
    t.strictSame(parseReference(c.in), c.want);
    // formatting gives a string that parses back to the same reference
    t.strictSame(parseReference(formatReference(parseReference(c.in))), c.want);
  });
}

const bad = [
  { in: '', why: /empty/ },
  { in: 'oci:', why: /missing layout directory/ },
  { in: 'oci::tag', why: /missing layout directory/ },
  { in: 'oci:/tmp/x:', why: /empty tag/ },
  { in: 'oci:/tmp/x:bad tag', why: /whitespace/ },
  { in: `oci:/tmp/x:t@${D}`, why: /tag or a digest/ },
  { in: 'host.io/Upper/case:1', why: /not a valid repository name/ },
  { in: 'host.io/a:bad!tag', why: /not a valid tag/ },
  { in: `host.io/a:${'x'.repeat(129)}`, why: /not a valid tag/ },
  { in: 'host.io/a@sha256:abc', why: /not a digest/ },
  { in: `host.io/a@sha256:${'A'.repeat(64)}`, why: /not a digest/ },
  { in: '127.0.0.1:5000', why: /missing repository name/ },
  { in: 'host.io/', why: /missing repository name/ },
  { in: 'host.io:99999/a', why: /out of range/ },
  { in: 'ho_st.io/a', why: /not a valid registry host/ },
  { in: 'http://host.io/a', why: /unsupported transport "http"/ },
  { in: `host.io/${'a'.repeat(260)}`, why: /longer than 255/ },
  { in: 'host.io//a', why: /not a valid repository name/ },
];
for (const c of bad) {
  t.test(`rejects ${JSON.stringify(c.in)}`, async (t) => {
    t.throws(() => parseReference(c.in), { code: 'OCI_REFERENCE_INVALID', subject: c.in, message: c.why });
  });
}
