import { MosError } from '../base/index.js';
import { readFileLimited } from '../host/index.js';
import { parseCaBundle, verifyInstallSignature, MAX_PEM_BYTES, type SignerInfo, type TrustAnchors } from '../trust/index.js';
import { readGeneration } from '../config/index.js';
import { systemPaths } from './paths.js';
import { loadSystem, type InstallFiles, type InstallVerifier, type LoadedSystem } from './load-system.js';

/** The manifest CA path in effect: `--capath`, else `<root>/factory/secure/manifestCA.pem`. */
export function caPathFor(root: string, capath?: string): string {
  return capath ?? systemPaths(root).manifestCa;
}

/**
 * Loads the trusted manifest CA bundle. A missing file is TRUST_CA_MISSING ("could not check"), kept
 * apart from a rejected signature; garbage is TRUST_PEM_INVALID.
 */
export async function loadAnchors(root: string, capath?: string): Promise<TrustAnchors> {
  const path = caPathFor(root, capath);
  let pem: Buffer;
  try {
    pem = await readFileLimited(path, MAX_PEM_BYTES);
  } catch (e) {
    if (e instanceof MosError && e.code === 'NOT_FOUND') {
      throw new MosError({
        code: 'TRUST_CA_MISSING',
        subject: path,
        message: 'the manifest CA is missing',
        hint: 'the initrd puts it at factory/secure/manifestCA.pem under the root; or pass --capath FILE',
        cause: e,
      });
    }
    throw e;
  }
  return parseCaBundle(pem, path);
}

/** Verifies one signed install-manifest triple; throws TRUST_* naming the failed check. */
export function verifyTriple(files: InstallFiles, anchors: TrustAnchors, now: Date, label = `${files.sha}.json`): SignerInfo {
  if (files.signature === undefined || files.cert === undefined) {
    throw new MosError({
      code: 'TRUST_SIGNATURE_INVALID',
      subject: label,
      message: `has no ${files.signature === undefined ? 'signature' : 'signer certificate'}`,
      hint: 'the install manifest must be published with its certificate and signature',
    });
  }
  return verifyInstallSignature({ data: files.raw, signature: files.signature, certPem: files.cert, anchors, now, subject: label, certSubject: `${label.replace(/\.json$/, '')}.pem` });
}

/** An InstallVerifier for loadSystem: every committed install manifest is checked against the CA. */
export function installVerifier(anchors: TrustAnchors, now: Date = new Date()): InstallVerifier {
  return (files) => {
    verifyTriple(files, anchors, now);
  };
}

/** Loads the current generation and verifies every install manifest in it against the manifest CA. */
export async function loadVerifiedSystem(root: string, capath?: string, now?: Date): Promise<LoadedSystem> {
  const anchors = await loadAnchors(root, capath);
  return loadSystem(await readGeneration({ root }), { verify: installVerifier(anchors, now ?? new Date()) });
}
