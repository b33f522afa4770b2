import { MosError, isMosError } from '../base/index.js';
import { readFileLimited } from '../host/index.js';
import { MAX_PEM_BYTES, MAX_SIGNATURE_BYTES, parseCaBundle, verifyInstallSignature, verifySigstoreBundle, type SignerInfo } from '../trust/index.js';
import { loadAnchors } from './trust-policy.js';

/** The signed file may be any install.json; far larger than any real one, small enough to hold in memory. */
const MAX_SIGNED_BYTES = 64 * 1024 * 1024;

/** Options of `verifyFile` (`mosctl verify`): a mos signature + cert, or a Sigstore bundle. */
export interface VerifyFileOptions {
  readonly root: string;
  /** The signed file. */
  readonly file: string;
  /** Manifest CA; default `<root>/factory/secure/manifestCA.pem`. */
  readonly capath?: string;
  /** Signer certificate PEM (leaf first, intermediates after); with a bundle, its intermediates. */
  readonly cert?: string;
  /** Raw signature (mos's `.signed` form). */
  readonly signature?: string;
  /** Sigstore bundle v0.3 JSON instead of `signature`. */
  readonly bundle?: string;
  /** TSA chain PEM (signing cert first) for certificate bundles. */
  readonly tsaChain?: string;
  readonly now?: Date;
}

/** What `verifyFile` found: the file and who signed it. */
export interface VerifyFileResult {
  readonly file: string;
  readonly verified: true;
  readonly signer: SignerInfo;
}

/**
 * Verifies `file` against the manifest CA; reads only. Throws USAGE for a wrong flag combination,
 * TRUST_CA_MISSING when the CA cannot be found ("could not check"), TRUST_* naming the failed check.
 */
export async function verifyFile(opts: VerifyFileOptions): Promise<VerifyFileResult> {
  if (opts.bundle === undefined && (opts.cert === undefined || opts.signature === undefined)) {
    throw new MosError({ code: 'USAGE', message: 'give --cert and --signature, or --bundle', hint: 'mosctl verify --cert CERT --signature SIG FILE' });
  }
  if (opts.bundle !== undefined && opts.signature !== undefined) {
    throw new MosError({ code: 'USAGE', message: '--signature and --bundle exclude each other' });
  }
  const anchors = await loadAnchors(opts.root, opts.capath);
  const data = await readFileLimited(opts.file, MAX_SIGNED_BYTES);
  const now = opts.now ?? new Date();
  if (opts.bundle !== undefined) {
    const raw = await readFileLimited(opts.bundle, MAX_PEM_BYTES);
    let bundle: unknown;
    try {
      bundle = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      throw new MosError({ code: 'TRUST_BUNDLE_INVALID', subject: opts.bundle, message: 'not JSON', cause: e });
    }
    const tsaAnchors = opts.tsaChain !== undefined ? parseCaBundle(await readPem(opts.tsaChain), opts.tsaChain) : undefined;
    const signer = verifySigstoreBundle({
      data,
      bundle,
      anchors,
      now,
      subject: opts.file,
      ...(tsaAnchors ? { tsaAnchors } : {}),
      ...(opts.cert !== undefined ? { certPem: await readPem(opts.cert) } : {}),
    });
    return { file: opts.file, verified: true, signer };
  }
  const signer = verifyInstallSignature({
    data,
    signature: await readFileLimited(opts.signature!, MAX_SIGNATURE_BYTES),
    certPem: await readPem(opts.cert!),
    anchors,
    now,
    subject: opts.file,
    certSubject: opts.cert!,
  });
  return { file: opts.file, verified: true, signer };
}

async function readPem(path: string): Promise<Buffer> {
  try {
    return await readFileLimited(path, MAX_PEM_BYTES);
  } catch (e) {
    if (isMosError(e, 'INPUT_INVALID')) throw new MosError({ code: 'TRUST_PEM_INVALID', subject: path, message: e.message, cause: e });
    throw e;
  }
}
