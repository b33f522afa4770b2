// `mosb mkboot`: a hybrid UEFI ISO (volume label OCI-BOOT) that boots a UKI and carries releases as one
// OCI layout (`oci/`): the live manifest whose `livecd` target the initrd mounts as the root, and the
// releases the live system installs, each with its certificate, signature and every target image, so
// neither booting nor installing needs a network. Unlike mos's mkboot, every manifest is verified
// against the manifest CA before anything is written (mos republishes them unverified).
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { MosError, silentLogger, type Logger, type OnProgress } from '../base/index.js';
import { exec, readFileLimited, requirePrograms } from '../host/index.js';
import { parseInstallManifest } from '../manifest/index.js';
import { copy, openLayout, openReference, type ContentStore, type Descriptor, type RegistryAccess } from '../oci/index.js';
import { TARGET_REPOSITORY, addReferrer, readInstallArtifact, targetTag } from '../protocol/index.js';
import { MAX_PEM_BYTES, parseCaBundle, verifyInstallSignature, type TrustAnchors } from '../trust/index.js';
import { buildUki, type BuildUkiResult } from './uki.js';
import { checkSiteBundleFile } from './site-bundle.js';

/** The ISO 9660 volume label the initrd looks for (mos's). */
export const ISO_LABEL = 'OCI-BOOT';
/** The installed machine's root= (the boot flow of its initrd: partitions by GPT label). */
export const MACHINE_ROOT = 'root=soci:name=mosboot,repo=local';
/** The target of the live manifest the initrd mounts as the live root. */
export const LIVE_TARGET = 'livecd';

export interface MkbootOptions extends RegistryAccess {
  /** The live manifest (install manifest with a `livecd` target): what the medium boots. */
  readonly live: string;
  /** Releases to carry for installing (install manifest references). */
  readonly install?: readonly string[];
  /** The manifest CA every manifest must verify against (the one inside the initrd). */
  readonly ca: string;
  /** A ready UKI, or the parts to build one. */
  readonly uki?: string;
  readonly kernel?: string;
  readonly initrd?: string;
  /** Extra kernel command line (after the `root=soci:` that names the live manifest). */
  readonly cmdline?: string;
  /**
   * The installed machine's UKI, carried at `boot/mosctl.efi` for the installer to put on the ESP: a
   * ready file, or built from the same kernel and initrd with `root=soci:name=mosboot,repo=local` and
   * `machineCmdline` after it.
   */
  readonly machineUki?: string;
  readonly machineCmdline?: string;
  readonly sign?: { readonly key: string; readonly cert: string };
  /** A site bundle carried as `site-bundle.json` (the live system takes it; the installer puts it on the ESP). */
  readonly siteBundle?: string;
  readonly out: string;
  readonly log?: Logger;
  readonly onProgress?: OnProgress;
  readonly signal?: AbortSignal;
  readonly now?: Date;
}

export interface MkbootResult {
  readonly out: string;
  readonly bytes: number;
  readonly sha256: string;
  /** The tag of each carried manifest in the medium's layout, in order (live first). */
  readonly tags: readonly string[];
  readonly images: number;
  readonly cmdline?: string;
  readonly machineCmdline?: string;
  /** The medium carries boot/mosctl.efi for the installer. */
  readonly machineUki: boolean;
  /** The site bundle the medium carries. */
  readonly siteBundle?: { readonly site: string; readonly version: number };
  readonly uki: { readonly bytes: number; readonly built: boolean; readonly signed: boolean };
  readonly seconds: number;
}

/** The layout tag a manifest reference gets on the medium: its repository path and tag (`machine/livecd:1.0`). */
export function mediumTag(source: string, reference: string): string {
  const m = /^oci:(.*):([^:/]+)$/.exec(source);
  const name = m ? (m[2] ?? reference) : source.replace(/^[^/]+\//, '').replace(/[@:].*$/, '').replace(/\//g, '-');
  const tag = m ? name : `${name}-${reference.replace(/^sha256:/, '').slice(0, 12)}`;
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(tag)) {
    throw new MosError({ code: 'OCI_REFERENCE_INVALID', subject: source, message: `gives the layout tag ${JSON.stringify(tag)}, which is not a valid OCI tag` });
  }
  return tag;
}

interface Release {
  readonly source: string;
  readonly tag: string;
  readonly store: ContentStore;
  readonly artifact: Descriptor;
  readonly referrers: readonly Descriptor[];
  readonly images: readonly { readonly store: ContentStore; readonly reference: string; readonly digest: string; readonly name: string }[];
  readonly targets: readonly string[];
}

/**
 * Builds the ISO at `out`. Every manifest is fetched and verified against `ca` first; a manifest that
 * does not verify, a live manifest without a `livecd` target, or a missing tool is an error before
 * anything is written. The ISO appears by one rename.
 */
export async function mkboot(opts: MkbootOptions): Promise<MkbootResult> {
  const t0 = Date.now();
  const log = opts.log ?? silentLogger;
  const step = (s: string, detail?: string) => opts.onProgress?.({ kind: 'step', step: s, ...(detail !== undefined ? { detail } : {}) });
  if (opts.uki === undefined && (opts.kernel === undefined || opts.initrd === undefined)) {
    throw new MosError({ code: 'USAGE', subject: 'mkboot', message: 'needs --uki FILE, or --kernel FILE and --initrd FILE to build one' });
  }
  if (opts.uki !== undefined && (opts.kernel !== undefined || opts.initrd !== undefined || opts.cmdline !== undefined || opts.machineCmdline !== undefined)) {
    throw new MosError({ code: 'USAGE', subject: 'mkboot', message: '--uki is a finished image: --kernel, --initrd and --cmdline only build one' });
  }
  if (opts.uki === undefined && opts.machineUki !== undefined) {
    throw new MosError({ code: 'USAGE', subject: 'mkboot', message: '--machine-uki goes with --uki; with --kernel and --initrd both images are built' });
  }
  await requirePrograms(['xorriso', 'mkfs.vfat', 'mmd', 'mcopy'], 'apt-get install xorriso dosfstools mtools');
  const anchors = parseCaBundle(await readFileLimited(opts.ca, MAX_PEM_BYTES), opts.ca);

  step('verify', 'manifests against the manifest CA');
  const live = await readRelease(opts.live, anchors, opts);
  if (!live.targets.includes(LIVE_TARGET)) {
    throw new MosError({ code: 'SYSTEM_TARGET_UNKNOWN', subject: `${opts.live}: target ${LIVE_TARGET}`, message: 'is not in the live manifest', hint: `targets: ${live.targets.join(', ')}; the medium boots the livecd target` });
  }
  const site = opts.siteBundle !== undefined ? await checkSiteBundleFile(opts.siteBundle, anchors, opts.now ?? new Date()) : undefined;
  const releases = [live];
  for (const src of opts.install ?? []) releases.push(await readRelease(src, anchors, opts));
  const tags = releases.map((r) => r.tag);
  const dup = tags.find((x, i) => tags.indexOf(x) !== i);
  if (dup !== undefined) throw new MosError({ code: 'INPUT_INVALID', subject: `tag ${dup}`, message: 'two manifests would get the same tag on the medium' });

  const work = await mkdtemp(join(dirname(opts.out), '.mkboot-'));
  try {
    const tree = join(work, 'iso');
    step('copy', 'releases into the medium layout');
    const dst = await openLayout(join(tree, 'oci'), { create: true, log });
    const images = new Set<string>();
    for (const r of releases) {
      for (const img of r.images) {
        if (images.has(img.digest)) continue;
        await copy({ src: img.store, dst, reference: img.reference, tag: targetTag(img.digest), ...(opts.signal ? { signal: opts.signal } : {}), ...(opts.onProgress ? { onProgress: opts.onProgress } : {}), log });
        images.add(img.digest);
      }
      for (const ref of r.referrers) {
        await copy({ src: r.store, dst, reference: ref, log });
        await addReferrer(dst, r.artifact, ref);
      }
      await copy({ src: r.store, dst, reference: r.artifact, tag: r.tag, log });
    }

    let uki = opts.uki;
    let built: BuildUkiResult | undefined;
    const cmdline = `root=soci:name=${live.tag},dev=LABEL=${ISO_LABEL}${opts.cmdline ? ` ${opts.cmdline.trim()}` : ''}`;
    if (uki === undefined) {
      step('uki', 'kernel + initrd + command line');
      uki = join(work, 'uki.efi');
      built = await buildUki({ kernel: opts.kernel!, initrd: opts.initrd!, cmdline, out: uki, ...(opts.sign ? { sign: opts.sign } : {}) });
    }
    const ukiBytes = (await stat(uki)).size;
    const machineUki = join(tree, 'boot', 'mosctl.efi');
    await mkdir(dirname(machineUki), { recursive: true });
    const machineCmdline = `${MACHINE_ROOT}${opts.machineCmdline ? ` ${opts.machineCmdline.trim()}` : ''}`;
    if (opts.machineUki !== undefined) await copyFile(opts.machineUki, machineUki);
    else if (opts.kernel !== undefined) await buildUki({ kernel: opts.kernel, initrd: opts.initrd!, cmdline: machineCmdline, out: machineUki, ...(opts.sign ? { sign: opts.sign } : {}) });

    if (site) await writeFile(join(tree, 'site-bundle.json'), site.bytes);

    step('esp', 'El Torito EFI image');
    // The ESP is appended as GPT partition 2 (EFI type) and El Torito points at that same partition: a
    // CD boots it through El Torito, a USB stick the ISO was written to boots it through the GPT.
    const esp = join(work, 'efi.img');
    await mkdir(tree, { recursive: true });
    // FAT sized for the UKI plus 5% and 2 MiB of FAT overhead; mtools writes it without a mount.
    const kib = Math.ceil((ukiBytes * 1.05 + 2 * 1024 * 1024) / 1024);
    await exec(['mkfs.vfat', '-C', '-n', 'EFIBOOT', '-i', '4d4f5342', esp, String(kib)]);
    await exec(['mmd', '-i', esp, '::/EFI', '::/EFI/BOOT']);
    await exec(['mcopy', '-m', '-i', esp, uki, '::/EFI/BOOT/BOOTX64.EFI']);

    step('iso', `xorriso, label ${ISO_LABEL}`);
    const iso = join(work, 'out.iso');
    const epoch = process.env['SOURCE_DATE_EPOCH'];
    await exec([
      'xorriso', '-abort_on', 'FAILURE', '-compliance', 'iso_9660_level=3',
      ...(epoch !== undefined && /^\d+$/.test(epoch) ? ['-volume_date', 'all_file_dates', `=${epoch}`] : []),
      '-as', 'mkisofs', '-quiet', '-o', iso, '-V', ISO_LABEL, '-R', '-J', '-partition_offset', '16',
      '-append_partition', '2', 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B', esp, '-appended_part_as_gpt',
      '-e', '--interval:appended_partition_2:all::', '-no-emul-boot', tree,
    ]);
    await rename(iso, opts.out);
    const bytes = (await stat(opts.out)).size;
    const sha256 = await fileSha256(opts.out);
    return {
      out: opts.out, bytes, sha256, tags, images: images.size,
      ...(built ? { cmdline, machineCmdline } : {}),
      machineUki: opts.machineUki !== undefined || opts.kernel !== undefined,
      ...(site ? { siteBundle: { site: site.site, version: site.version } } : {}),
      uki: { bytes: ukiBytes, built: built !== undefined, signed: built?.signed ?? false },
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function readRelease(source: string, anchors: TrustAnchors, opts: MkbootOptions): Promise<Release> {
  const t = { ...(opts.signal ? { signal: opts.signal } : {}) };
  const opened = await openReference(source, { ...opts, create: false });
  if (opened.reference === undefined) throw new MosError({ code: 'OCI_REFERENCE_INVALID', subject: source, message: 'names no tag or digest' });
  const store = opened.store;
  const { artifact, raw, certs, signatures } = await readInstallArtifact(store, opened.reference, source, t);
  let verified: Descriptor[] | undefined;
  let firstError: unknown;
  for (const c of certs) {
    for (const s of signatures) {
      try {
        verifyInstallSignature({ data: raw, signature: s.payload, certPem: c.payload, anchors, ...(opts.now ? { now: opts.now } : {}), subject: `${source}: install.json`, certSubject: `${source}: signer certificate` });
        verified = [c.descriptor, s.descriptor];
      } catch (e) {
        firstError ??= e;
      }
      if (verified) break;
    }
    if (verified) break;
  }
  if (!verified) throw firstError;
  const manifest = parseInstallManifest(raw, `${source}: install.json`);
  const images = await Promise.all(
    manifest.value.targets.map(async (tg) => {
      if (opened.ref.kind !== 'registry') return { store, reference: targetTag(tg.digest), digest: tg.digest, name: tg.service_name };
      const repo = await openReference(`${opened.ref.host}/${TARGET_REPOSITORY}@${tg.digest}`, { ...opts, create: false });
      return { store: repo.store, reference: tg.digest, digest: tg.digest, name: tg.service_name };
    }),
  );
  return { source, tag: mediumTag(source, opened.reference), store, artifact, referrers: verified, images, targets: manifest.value.targets.map((x) => x.service_name) };
}

async function fileSha256(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(file)) h.update(c as Buffer);
  return h.digest('hex');
}

