// Site bundles at boot (QEMU, TCG, the minimal initramfs, direct kernel boot; the ESP is a vfat GPT
// partition the initrd mounts at /boot/efi). One generic signed OS disk: with site alpha's bundle on its
// ESP the booted host has alpha's CA in the trust-store path and alpha's env, registries.conf and auth;
// a fresh copy of the same disk with site beta's bundle gets beta's (the OS is not re-signed). An
// uninstalled disk (mos's partitions, empty filesystems) whose bundle names an oci: provisioning source
// on a second disk (ext4, found by its label) installs itself in the initrd and boots the installed
// system in the same boot; a bundle of another site put on its ESP afterwards is ignored and logged.
// With nothing to install from, the initrd waits in a maintenance state that says what it waits for.
// Before any boot, the initrd's shell helpers read what the real `mosctl bundle inject` prints. To keep the
// suite short, boots that only check what the initrd decided stop at its hand-over (switch_root).
import { t, type Test } from 'tap';
import { execFile } from 'node:child_process';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { childEnv, cliPath, plainNode, runCli } from '../support/cli.js';
import { needs } from '../support/env.js';
import { copyDisk, runVm, VM_PROGRAMS, type VmRun } from '../support/vm.js';
import { vmSystem, type VmSystem } from '../support/vm-system.js';
import { ESP_BUNDLE, putOnEsp, SITE_PROGRAMS, siteCa, siteDisk, siteRegistryFiles, type SiteDisk } from '../support/vm-site.js';

const execFileP = promisify(execFile);
const LIB = fileURLToPath(new URL('../../dracut/90mosctl/mosctl-lib.sh', import.meta.url));
const skip = needs({ root: true, programs: [...VM_PROGRAMS, ...SITE_PROGRAMS, 'busybox'] });
t.setTimeout(45 * 60_000);

/** The provisioning medium of the VM system (sys.usb): ext4 labelled MOS-USB, release 1.1 at /rel. */
const PROVISION_LABEL = 'MOS-USB';
/** The initrd's last site step before switch_root: boots that only check the initrd's decision stop here. */
const WRITTEN = /mosctl-boot: site bundle \S+ version \d+: [^\n]*written into the new root[^\n]*\n|mosctl-boot: FAILED[^\n]*\n|Kernel panic/;
/** How long the maintenance boot waits before it gives up (mos.provision.timeout). */
const MAINTENANCE_BOUND = 12;

interface Site {
  readonly name: string;
  readonly ca: string;
  readonly registriesConf: string;
  readonly auth: string;
  readonly env: readonly string[];
}

interface Sites {
  readonly dir: string;
  readonly xdg: string;
  readonly alpha: Site;
  readonly beta: Site;
  /** Site bundles: alpha v1, beta v1, alpha v1 naming the provisioning source, beta v7 (after commissioning). */
  readonly bundles: { readonly alpha: string; readonly beta: string; readonly alphaProvision: string; readonly betaLate: string };
}

const top = t.testdir({});
let sitesP: Promise<Sites> | undefined;
let sysP: Promise<VmSystem> | undefined;

const system = (tt: Test) => (sysP ??= vmSystem((s) => tt.comment(s)));

/** The site keys (issued by the VM system's manifest CA: the one in the initrd) and the bundles, made once. */
function sites(sys: VmSystem): Promise<Sites> {
  sitesP ??= (async () => {
    const dir = join(top, 'sites');
    await mkdir(dir, { recursive: true });
    // A copy of the keyset: the cached fixture stays as it was built.
    const xdg = join(dir, 'xdg');
    await cp(sys.xdg, xdg, { recursive: true });
    const env = { XDG_DATA_HOME: xdg };
    const mosb = async (args: string[]) => {
      const r = await runCli('mosb', args, { env });
      if (r.code !== 0) throw new Error(`mosb ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
      return r;
    };
    const site = async (name: string, proxy: string): Promise<Site> => {
      await mosb(['project', 'add', `vm:${name}`, '--site']);
      const ca = await siteCa(dir, `${name}-ca`, `Site ${name} orchestrator CA`);
      return { name, ca, ...(await siteRegistryFiles(dir, name)), env: [`SITE=${name}`, `HTTPS_PROXY=${proxy}`, `ORCH_URL=https://orch.${name}.example.net`] };
    };
    const alpha = await site('alpha', 'http://proxy.alpha.example.net:3128');
    const beta = await site('beta', 'http://proxy.beta.example.net:8080');
    const bundle = async (s: Site, version: number, out: string, extra: string[] = []) => {
      const file = join(dir, out);
      await mosb(['bundle', 'create', '--project', `vm:${s.name}`, '--site', s.name, '--bundle-version', String(version), '--ca', s.ca,
        ...s.env.flatMap((e) => ['--env', e]), '--registries-conf', s.registriesConf, '--auth', s.auth, ...extra, file]);
      return file;
    };
    return {
      dir, xdg, alpha, beta,
      bundles: {
        alpha: await bundle(alpha, 1, 'alpha-1.json'),
        beta: await bundle(beta, 1, 'beta-1.json'),
        alphaProvision: await bundle(alpha, 1, 'alpha-1-provision.json', ['--provision', 'oci:/rel:1.1', '--provision-device', `LABEL=${PROVISION_LABEL}`]),
        betaLate: await bundle(beta, 7, 'beta-7.json'),
      },
    };
  })();
  return sitesP;
}

/** What the guest prints about the site files (into out.log on the 9p share). */
const SITE_SCRIPT = `
d=/usr/local/share/ca-certificates/mosctl-site
echo "--- anchors"; ls "$d"
echo "--- anchor content"; cat "$d"/*.crt
echo "--- ca.pem"; cat /etc/mosctl/site/ca.pem
echo "--- env"; cat /etc/mosctl/site/env
echo "--- registries"; cat /etc/containers/registries.conf.d/50-mosctl-site.conf
echo "--- auth"; stat -c '%a %U' /etc/mosctl/site/auth.json; cat /etc/mosctl/site/auth.json
echo "--- status"; mosctl bundle status; echo "rc=$?"
echo "--- end"
`;

async function boot(tt: Test, sys: VmSystem, name: string, o: { disks: { file: string; readonly?: boolean }[]; script?: string; append?: string; until?: RegExp; timeoutMs?: number }): Promise<{ run: VmRun; out: string }> {
  const share = join(top, `share-${name}`);
  await mkdir(share, { recursive: true });
  await writeFile(join(share, 'run.sh'), o.script ?? SITE_SCRIPT);
  const run = await runVm(tt, {
    kernel: sys.kernel.vmlinux,
    initrd: sys.initrd,
    append: `${sys.append}${o.append ?? ''}`,
    disks: o.disks,
    shares: [{ path: share, tag: 'vmtest' }],
    timeoutMs: o.timeoutMs ?? 400_000,
    until: o.until ?? /VMTEST-DONE|mosctl-boot: FAILED[^\n]*\n|Kernel panic/,
    logFile: join(top, `console-${name}.log`),
  });
  const out = await readFile(join(share, 'out.log'), 'utf8').catch(() => '(no out.log)');
  // The initrd's site steps, from the host's arrival time of each console line (TCG, a shared host).
  const at = (re: RegExp) => run.lines.find((l) => re.test(l.text))?.atMs;
  const span = (a: RegExp, b: RegExp) => {
    const x = at(a);
    const y = at(b);
    return x !== undefined && y !== undefined ? `${((y - x) / 1000).toFixed(1)} s` : '-';
  };
  tt.comment(`boot ${name}: ${(run.durationMs / 1000).toFixed(1)} s; inject+write ${span(/mosctl-boot: mounted hostfs/, /mosctl-boot: site bundle .* written/)}; install ${span(/mosctl-boot: commissioning:/, /mosctl-boot: commissioned/)}; to the marker ${at(/VMTEST-BOOTED/) !== undefined ? `${(at(/VMTEST-BOOTED/)! / 1000).toFixed(1)} s` : '-'}`);
  return { run, out };
}

function explain(run: VmRun, out = ''): string {
  return `--- console (${(run.durationMs / 1000).toFixed(1)} s) ---\n${run.console.slice(-12000)}\n--- guest script output ---\n${out.slice(-6000)}`;
}

/** The base64 body of a PEM file, without whitespace (to find it in what the guest printed). */
const pemBody = async (file: string) => (await readFile(file, 'utf8')).replace(/-----[A-Z ]+-----/g, '').replace(/\s/g, '');
const section = (out: string, name: string) => new RegExp(`--- ${name}\\n([\\s\\S]*?)\\n--- `).exec(out)?.[1] ?? '';

/** Checks that the booted host carries `site`'s settings and none of `other`'s. */
async function checkSite(tt: Test, out: string, site: Site, other: Site, diag: string): Promise<void> {
  const flat = out.replace(/\s/g, '');
  tt.match(section(out, 'anchors'), /\.crt/, `${site.name}: a CA anchor in /usr/local/share/ca-certificates/mosctl-site/`, { diag });
  tt.ok(section(out, 'anchor content').replace(/\s/g, '').includes(await pemBody(site.ca)), `${site.name}: the anchor is ${site.name}'s CA`, { diag: out });
  tt.ok(section(out, 'ca.pem').replace(/\s/g, '').includes(await pemBody(site.ca)), `${site.name}: /etc/mosctl/site/ca.pem holds it`);
  tt.notOk(flat.includes(await pemBody(other.ca)), `${site.name}: ${other.name}'s CA is nowhere`);
  const env = section(out, 'env');
  for (const e of site.env) tt.match(env, new RegExp(`^${e.split('=')[0]}=["']?${e.slice(e.indexOf('=') + 1).replace(/[.:/]/g, '\\$&')}["']?$`, 'm'), `${site.name}: env ${e}`);
  tt.notMatch(env, other.name, `${site.name}: nothing of ${other.name} in the env file`);
  tt.match(section(out, 'registries'), `mirror.${site.name}.example.net:5000`, `${site.name}: its registries.conf`);
  tt.match(section(out, 'auth'), `mirror.${site.name}.example.net:5000`, `${site.name}: its registry credentials in /etc/mosctl/site/auth.json`);
  tt.comment(`${site.name}: auth.json mode/owner ${section(out, 'auth').split('\n')[0]}`);
}

t.test("the initrd's shell reads what `mosctl bundle inject --json` prints", { skip }, async (t) => {
  const sys = await system(t);
  const s = await sites(sys);
  const root = join(top, 'host-root');
  await mkdir(join(root, 'config'), { recursive: true });
  // Run directly, not through runCli: its --json naming check refuses the env map's KEY names (reported).
  const [cmd, argv] = plainNode([cliPath('mosctl'), 'bundle', 'inject', '--root', root, '--capath', sys.ca, '--candidate', s.bundles.alphaProvision, '--json']);
  const r = await execFileP(cmd, argv, { env: childEnv() }).then((x) => ({ code: 0, ...x }), (e: { code: number; stdout: string; stderr: string }) => e);
  t.equal(r.code, 0, 'inject accepts alpha\'s provisioning bundle on an empty root', { diag: r.stderr });
  const doc = JSON.parse(r.stdout) as { bundle: { site: string; version: number }; provision: { source: string; device: string } };
  const j = { site: doc.bundle.site, version: doc.bundle.version, provision: doc.provision };
  // The lib's helpers, under busybox sh as in the initrd; mos_site_inject itself, with mosctl on the host
  // standing in for the initrd's (its --root / pointed at the test root) and mos_fail that returns.
  const shell = async (body: string) => (await execFileP('busybox', ['sh', '-c', `
. '${LIB}'
mos_fail() { echo "mosctl-boot: FAILED: $*"; exit 1; }
mosctl_host() { _a=$1; _b=$2; shift 4; env -u NODE_OPTIONS '${process.execPath}' '${fileURLToPath(new URL('../../dist/cmd/mosctl.js', import.meta.url))}' "$_a" "$_b" --root '${root}' "$@"; }
MOS_MOSCTL=mosctl_host MOS_CA='${sys.ca}'
${body}`], { maxBuffer: 16 * 1024 * 1024 })).stdout;
  await writeFile(join(top, 'inject.json'), r.stdout);
  const parsed = await shell(`f='${join(top, 'inject.json')}'
echo "site=$(mos_json_get "$f" site)"; echo "version=$(mos_json_get "$f" version)"
mos_json_object "$f" provision > /tmp/mosctl-test-prov.json; echo "source=$(mos_json_get /tmp/mosctl-test-prov.json source)"; echo "device=$(mos_json_get /tmp/mosctl-test-prov.json device)"
echo "label=$(mos_ext4_label '${sys.usb}')"; echo "path=$(mos_provision_source "$(mos_json_get /tmp/mosctl-test-prov.json source)" /run/mosctl/provision)"
rm -f /tmp/mosctl-test-prov.json`);
  t.match(parsed, `site=${j.site}\nversion=${j.version}\nsource=${j.provision.source}\ndevice=${j.provision.device}\n`, 'site, version and the provisioning source as the JSON says', { diag: r.stdout });
  t.same([j.site, j.version, j.provision.source, j.provision.device], ['alpha', 1, 'oci:/rel:1.1', `LABEL=${PROVISION_LABEL}`], 'which is what the bundle was made with');
  t.match(parsed, `label=${PROVISION_LABEL}\npath=oci:/run/mosctl/provision/rel:1.1\n`, "the ext4 label read from the superblock; the source taken relative to the medium");
  // A later bundle of another site: the recorded one is used, the candidate ignored and said so.
  const again = await shell(`MOS_SITE_CANDS="--candidate ${s.bundles.betaLate}"; mos_site_inject ""; echo "site=$MOS_SITE version=$MOS_SITE_VERSION source=$MOS_PROV_SRC"`);
  t.match(again, /mosctl-boot: ignored \S*beta-7\.json: machine already commissioned with site alpha version 1[^\n]*\n/, 'the ignored candidate is one console line naming it and why', { diag: again });
  t.match(again, /site=alpha version=1 source=oci:\/rel:1\.1/, 'and the recorded bundle stays');
});

t.test("one generic OS disk: site alpha's bundle on the ESP gives alpha's settings, a copy with beta's gives beta's", { skip }, async (t) => {
  const sys = await system(t);
  const s = await sites(sys);
  const generic = await siteDisk(sys, join(top, 'generic.img'), { installed: true });
  const withBundle = async (name: string, bundle: string): Promise<SiteDisk> => {
    const file = join(top, `${name}.img`);
    await copyDisk(generic.file, file);
    const d = { file, offsets: generic.offsets };
    await putOnEsp(d, ESP_BUNDLE, bundle);
    return d;
  };
  // Suite time: alpha's copy is followed to the initrd's hand-over (its settings in a booted host are checked
  // after commissioning below); beta's boots all the way and is checked in the running host.
  for (const [site, other, bundle, full] of [[s.alpha, s.beta, s.bundles.alpha, false], [s.beta, s.alpha, s.bundles.beta, true]] as const) {
    const disk = await withBundle(site.name, bundle);
    const { run, out } = await boot(t, sys, `generic-${site.name}`, { disks: [{ file: disk.file }], ...(full ? {} : { until: WRITTEN }) });
    const diag = explain(run, out);
    t.match(run.console, `mosctl-boot: mounted hostfs (${sys.hostfs['1.0'].digest}) of generation 1 `, `${site.name}: the generic OS (release 1.0) was assembled`, { diag });
    t.match(run.console, new RegExp(`mosctl-boot: site bundle ${site.name} version 1: .*written into the new root`), `${site.name}: the initrd says it wrote the site files`, { diag });
    t.notMatch(run.console, /commissioning/, `${site.name}: an installed machine is not commissioned again`);
    t.notMatch(run.console, new RegExp(`site bundle ${other.name}`), `${site.name}: nothing of ${other.name}`);
    if (!full) continue;
    t.match(run.console, /VMTEST-BOOTED hostfs=1\.0 boot=active/, `${site.name}: systemd came up`, { diag });
    t.match(run.console, /VMTEST-RC=0/, `${site.name}: the guest script ran`, { diag });
    await checkSite(t, out, site, other, diag);
    t.match(section(out, 'status'), site.name, `${site.name}: mosctl bundle status in the booted host names the site`, { diag: out });
  }
});

t.test('an uninstalled disk commissions itself from the medium its bundle names; a later bundle of another site is ignored', { skip }, async (t) => {
  const sys = await system(t);
  const s = await sites(sys);
  const disk = await siteDisk(sys, join(top, 'uninstalled.img'), { installed: false, esp: { [ESP_BUNDLE]: s.bundles.alphaProvision } });

  const first = await boot(t, sys, 'commission', { disks: [{ file: disk.file }, { file: sys.usb, readonly: true }] });
  const c = first.run.console;
  const diag = explain(first.run, first.out);
  t.match(c, /mosctl-boot: no installed system \(no \/config\/manifest\.git\)/, 'the initrd saw nothing installed', { diag });
  t.match(c, /mosctl-boot: site bundle alpha version 1: verified and recorded/, "it accepted alpha's bundle from the ESP", { diag });
  t.match(c, new RegExp(`mosctl-boot: commissioning: site alpha version 1: mosctl install oci:/run/mosctl/provision/rel:1\\.1 \\(/dev/vdb, LABEL=${PROVISION_LABEL}`), 'and installed the provisioning source from the labelled disk', { diag });
  t.match(c, /mosctl-boot: commissioned: continuing this boot into create-boot-fs \(no reboot needed\)/, 'no reboot needed', { diag });
  t.match(c, `mosctl-boot: mounted hostfs (${sys.hostfs['1.1'].digest}) of generation 1 writable at /newroot (layers through dm-verity: 2)`, 'the same boot assembled the installed release (1.1) through dm-verity', { diag });
  t.equal(c.match(/mosctl-boot: initrd start/g)?.length, 1, 'in one boot');
  t.match(c, /VMTEST-BOOTED hostfs=1\.1 boot=active/, 'systemd runs the installed system and mosctl boot succeeded', { diag });
  await checkSite(t, first.out, s.alpha, s.beta, diag);

  // Commissioned. Beta's bundle (a higher version) on the ESP, the provisioning disk gone: ignored.
  await putOnEsp(disk, ESP_BUNDLE, s.bundles.betaLate);
  // Followed to the hand-over: what the initrd decides is the point (the booted host was checked above).
  const second = await boot(t, sys, 'after', { disks: [{ file: disk.file }], until: WRITTEN });
  const c2 = second.run.console;
  const diag2 = explain(second.run, second.out);
  t.match(c2, /mosctl-boot: ignored \/boot\/efi\/EFI\/mosctl\/site-bundle\.json: machine already commissioned with site alpha version 1/, "beta's bundle is ignored and the console says why", { diag: diag2 });
  t.notMatch(c2, /commissioning/, 'nothing is installed again');
  t.match(c2, `mosctl-boot: mounted hostfs (${sys.hostfs['1.1'].digest}) of generation 1 `, 'the installed system boots', { diag: diag2 });
  t.match(c2, /mosctl-boot: site bundle alpha version 1: .*written into the new root/, "alpha's recorded bundle is the one written", { diag: diag2 });
  t.notMatch(c2, /site bundle beta/, "beta's is not");
});

t.test('maintenance: nothing installed and nothing to install from; the console says what it waits for, until the bound', { skip }, async (t) => {
  const sys = await system(t);
  const disk = await siteDisk(sys, join(top, 'empty.img'), { installed: false });
  const { run } = await boot(t, sys, 'maintenance', { disks: [{ file: disk.file }], append: ` mos.provision.timeout=${MAINTENANCE_BOUND}`, until: /mosctl-boot: FAILED[^\n]*\n|switch_root|Kernel panic/, timeoutMs: 180_000 });
  const c = run.console;
  t.match(c, new RegExp(`mosctl-boot: maintenance: waiting for a site bundle naming a provisioning source \\(EFI/mosctl/site-bundle\\.json on the ESP, or site-bundle\\.json on a medium labelled MOS-SITE\\); rescanning every 5 s, giving up after ${MAINTENANCE_BOUND} s`), 'it says what it waits for, how often it looks and for how long', { diag: explain(run) });
  t.match(c, new RegExp(`mosctl-boot: FAILED: maintenance: still waiting for .* after \\d+ s \\(\\d+ rescans\\); gave up \\(mos.provision.timeout=${MAINTENANCE_BOUND}\\)`), 'and gives up at the bound with one line', { diag: explain(run) });
  const waited = run.lines.find((l) => /maintenance: waiting/.test(l.text));
  const failed = run.lines.find((l) => /FAILED: maintenance/.test(l.text));
  if (waited && failed) t.ok(failed.atMs - waited.atMs >= MAINTENANCE_BOUND * 1000 - 1500, `it waited about ${MAINTENANCE_BOUND} s (${((failed.atMs - waited.atMs) / 1000).toFixed(1)} s)`);
  t.notMatch(c, /switch_root uptime/, 'and never switch_roots');
});
