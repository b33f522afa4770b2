import { MosError, describeSystemError } from '../../base/index.js';
import { readFileLimited } from '../../host/index.js';

/** A registry CA bundle is a few KiB; 1 MiB (like every PEM input) refuses a mistaken or endless file. */
const MAX_CA_FILE_BYTES = 1024 * 1024;

/**
 * The PEM text of registry CA files (each at most 1 MiB): HOST_IO naming an unreadable one,
 * INPUT_INVALID naming one that holds no certificate. Read by whoever has the right to read them
 * (root, for the unprivileged downloader, which gets the text).
 */
export async function readCaFiles(files: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const file of files) {
    let pem: string;
    try {
      pem = (await readFileLimited(file, MAX_CA_FILE_BYTES)).toString('utf8');
    } catch (e) {
      if (e instanceof MosError) throw e;
      throw new MosError({ code: 'HOST_IO', subject: file, message: `cannot read registry CA file: ${describeSystemError(e)}`, cause: e });
    }
    checkPem(pem, file);
    out.push(pem);
  }
  return out;
}

/** INPUT_INVALID naming `subject` unless `pem` holds a PEM certificate block. */
export function checkPem(pem: string, subject: string): void {
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new MosError({ code: 'INPUT_INVALID', subject, message: 'registry CA file holds no PEM certificate', hint: 'pass a PEM file with one or more CERTIFICATE blocks' });
  }
}

/**
 * The site bundle's transport CAs (README "Site bundles"; mosctl writes them from the bundle in force), trusted
 * for registry TLS besides the system's. Same path as SITE_FILES.caBundle in src/machine. Absent: none.
 */
export const SITE_CA_FILE = '/etc/mosctl/site/ca.pem';

/** The PEM text of {@link SITE_CA_FILE} as a list (empty when there is none). */
export async function siteCaPems(): Promise<string[]> {
  try {
    return await readCaFiles([SITE_CA_FILE]);
  } catch (e) {
    if (e instanceof MosError && e.code === 'NOT_FOUND') return [];
    throw e;
  }
}
