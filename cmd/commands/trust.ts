import type { Command } from 'commander';
import { join } from 'node:path';
import { MosError, isMosError } from '../../src/base/index.js';
import { readFileLimited } from '../../src/host/index.js';
import type { SignerInfo } from '../../src/trust/index.js';
import { action, group } from '../common.js';

/** Loaded on first use, so that --help, --version and usage errors start without the heavy modules. */
const trust = () => import('../../src/trust/index.js');

/** The signed file may be any install.json; far larger than any real one, small enough to hold in memory. */
const MAX_SIGNED_BYTES = 64 * 1024 * 1024;

interface VerifyFlags {
  capath?: string;
  cert?: string;
  signature?: string;
  bundle?: string;
  tsaChain?: string;
}

async function readCa(path: string) {
  try {
    return await readFileLimited(path, (await trust()).MAX_PEM_BYTES);
  } catch (e) {
    // A missing CA file means "could not check", never "accepted".
    if (isMosError(e, 'NOT_FOUND')) {
      throw new MosError({ code: 'TRUST_CA_MISSING', subject: path, message: 'manifest CA file not found', hint: 'pass --capath FILE', cause: e });
    }
    if (isMosError(e, 'INPUT_INVALID')) throw new MosError({ code: 'TRUST_PEM_INVALID', subject: path, message: e.message, cause: e });
    throw e;
  }
}

async function readPem(path: string) {
  try {
    return await readFileLimited(path, (await trust()).MAX_PEM_BYTES);
  } catch (e) {
    if (isMosError(e, 'INPUT_INVALID')) throw new MosError({ code: 'TRUST_PEM_INVALID', subject: path, message: e.message, cause: e });
    throw e;
  }
}

/** Adds `mosctl verify`. */
export function registerMosctl(program: Command): void {
  program
    .command('verify')
    .description('verify a signed file (install.json) against the manifest CA: mos signature + cert, or a Sigstore bundle')
    .argument('<file>', 'the signed file')
    .option('--capath <file>', 'trusted manifest CA PEM (default <root>/factory/secure/manifestCA.pem)')
    .option('--cert <file>', 'signer certificate PEM (intermediates may follow the leaf)')
    .option('--signature <file>', 'raw signature (mos .signed form)')
    .option('--bundle <file>', 'Sigstore bundle v0.3 JSON instead of --signature')
    .option('--tsa-chain <file>', 'TSA certificate chain PEM (signing cert first) for certificate bundles')
    .action(
      action(async (ctx, file: string, flags: VerifyFlags) => {
        if (flags.bundle === undefined && (flags.cert === undefined || flags.signature === undefined)) {
          throw new MosError({ code: 'USAGE', message: 'give --cert and --signature, or --bundle', hint: 'mosctl verify --cert CERT --signature SIG FILE' });
        }
        if (flags.bundle !== undefined && flags.signature !== undefined) {
          throw new MosError({ code: 'USAGE', message: '--signature and --bundle exclude each other' });
        }
        const lib = await trust();
        const capath = flags.capath ?? join(ctx.globals.root, 'factory', 'secure', 'manifestCA.pem');
        const anchors = lib.parseCaBundle(await readCa(capath), capath);
        const data = await readFileLimited(file, MAX_SIGNED_BYTES);
        const now = new Date();
        let signer: SignerInfo;
        if (flags.bundle !== undefined) {
          const raw = await readFileLimited(flags.bundle, lib.MAX_PEM_BYTES);
          let bundle: unknown;
          try {
            bundle = JSON.parse(raw.toString('utf8'));
          } catch (e) {
            throw new MosError({ code: 'TRUST_BUNDLE_INVALID', subject: flags.bundle, message: 'not JSON', cause: e });
          }
          const tsaAnchors = flags.tsaChain !== undefined ? lib.parseCaBundle(await readPem(flags.tsaChain), flags.tsaChain) : undefined;
          signer = lib.verifySigstoreBundle({
            data,
            bundle,
            anchors,
            now,
            subject: file,
            ...(tsaAnchors ? { tsaAnchors } : {}),
            ...(flags.cert !== undefined ? { certPem: await readPem(flags.cert) } : {}),
          });
        } else {
          signer = lib.verifyInstallSignature({
            data,
            signature: await readFileLimited(flags.signature!, 64 * 1024),
            certPem: await readPem(flags.cert!),
            anchors,
            now,
            subject: file,
            certSubject: flags.cert!,
          });
        }
        ctx.log.debug(`chain: ${signer.chain.join(' <- ')}`);
        return { result: { file, verified: true, signer }, text: `verified ${file}: signed by "${signer.subject}"` };
      }),
    );
}

/** Adds `mosb keyset add` and `mosb project add`. */
export function registerMosb(program: Command): void {
  group(program, 'keyset', 'manifest signing keysets ($XDG_DATA_HOME/machine/trust/keys)')
    .command('add')
    .description('create a keyset with a self-signed manifest CA (RSA-3072)')
    .argument('<name>', 'keyset name')
    .action(
      action(async (_ctx, name: string) => {
        const paths = await (await trust()).createKeyset({ name });
        return { result: paths, text: `created keyset ${name}\nmanifest CA: ${paths.caCert}` };
      }),
    );
  group(program, 'project', 'signing projects inside a keyset')
    .command('add')
    .description('create a project signing certificate issued by the keyset CA')
    .argument('<keyset:project>', 'KEYSET:PROJECT')
    .action(
      action(async (_ctx, spec: string) => {
        const lib = await trust();
        const paths = await lib.createProject(lib.parseProjectSpec(spec));
        return { result: paths, text: `created project ${spec}\ncert: ${paths.cert}\nkey:  ${paths.key}` };
      }),
    );
}
