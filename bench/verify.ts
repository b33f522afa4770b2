// Median time of one install.json verification (RSA-3072 leaf + RSA-3072 CA, mos's shape), against a
// bare node:crypto chain+signature check (no policy) measured in the same run, plus openssl CLI for context.
import { execFileSync } from 'node:child_process';
import { X509Certificate, constants, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseCaBundle, verifyInstallSignature } from '../src/trust/index.js';

const N = 1000;
const dir = mkdtempSync(join(tmpdir(), 'mosctl-bench-verify-'));
const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
try {
  ssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072', '-out', 'ca.key');
  ssl('genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:3072', '-out', 'leaf.key');
  writeFileSync(join(dir, 'ca.ext'), '[e]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\nsubjectKeyIdentifier=hash\n');
  writeFileSync(join(dir, 'leaf.ext'), '[e]\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\nauthorityKeyIdentifier=keyid\n');
  ssl('req', '-new', '-key', 'ca.key', '-subj', '/CN=bench CA', '-out', 'ca.csr');
  ssl('x509', '-req', '-in', 'ca.csr', '-signkey', 'ca.key', '-days', '30', '-extfile', 'ca.ext', '-extensions', 'e', '-out', 'ca.pem');
  ssl('req', '-new', '-key', 'leaf.key', '-subj', '/CN=bench signer', '-out', 'leaf.csr');
  ssl('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '30', '-extfile', 'leaf.ext', '-extensions', 'e', '-out', 'leaf.pem');
  // A typical install.json: a handful of targets, ~2 KiB.
  const targets = Array.from({ length: 8 }, (_, i) => ({
    service_name: `svc${i}`,
    version: '1.0.0',
    service_type: i === 0 ? 'hostfs' : 'container',
    network: { type: 'host' },
    nsgroup: '',
    digest: `sha256:${String(i).repeat(64).slice(0, 64)}`,
    size: 1234 + i,
  }));
  const install = Buffer.from(JSON.stringify({ version: 1, product: 'de0f2c1c-3a55-4f5e-9d3c-1f2e3d4c5b6a', update_type: 'complete', targets, storage: [] }));
  writeFileSync(join(dir, 'install.json'), install);
  ssl('dgst', '-sha256', '-sign', 'leaf.key', '-out', 'install.json.signed', 'install.json');
  const signature = readFileSync(join(dir, 'install.json.signed'));
  const certPem = readFileSync(join(dir, 'leaf.pem'), 'utf8');
  const caPem = readFileSync(join(dir, 'ca.pem'), 'utf8');

  // Ours: the CA bundle is parsed once (as a boot or a long-running server does); the cert each time.
  const anchors = parseCaBundle(caPem, 'ca.pem');
  const ours = () => verifyInstallSignature({ data: install, signature, certPem, anchors });
  // Peer: what a bare node:crypto check does, without KU/EKU/pathLen/critical-extension/weak-algorithm policy.
  const ca = new X509Certificate(caPem);
  const peer = () => {
    const leaf = new X509Certificate(certPem);
    const now = Date.now();
    if (!leaf.checkIssued(ca) || !leaf.verify(ca.publicKey)) throw new Error('chain');
    if (Date.parse(leaf.validTo) < now || Date.parse(leaf.validFrom) > now) throw new Error('validity');
    if (!verify('sha256', install, { key: leaf.publicKey, padding: constants.RSA_PKCS1_PADDING }, signature)) throw new Error('sig');
  };

  const median = (fn: () => unknown, n: number): number => {
    for (let i = 0; i < 100; i++) fn(); // warm
    const times: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      fn();
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(n / 2)]!;
  };
  const oursMs = median(ours, N);
  const peerMs = median(peer, N);
  const opensslMs = median(() => {
    ssl('verify', '-CAfile', 'ca.pem', 'leaf.pem');
    ssl('x509', '-in', 'leaf.pem', '-pubkey', '-noout', '-out', 'leaf.pub');
    ssl('dgst', '-sha256', '-verify', 'leaf.pub', '-signature', 'install.json.signed', 'install.json');
  }, 20);

  console.log(`install.json ${install.length} bytes, RSA-3072 leaf + RSA-3072 CA, ${N} verifications each (warm)`);
  console.log(`mosctl verifyInstallSignature   median ${oursMs.toFixed(3)} ms  (goal < 5 ms)`);
  console.log(`bare node:crypto chain+sig      median ${peerMs.toFixed(3)} ms`);
  console.log(`ratio ours / bare node:crypto   ${(oursMs / peerMs).toFixed(2)}x`);
  console.log(`openssl CLI (verify + x509 + dgst, 3 processes) median ${opensslMs.toFixed(1)} ms per verification (context; 20 runs)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
