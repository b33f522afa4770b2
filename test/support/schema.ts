import { Ajv2020 } from 'ajv/dist/2020.js';
import openapi from '../../src/serve/openapi.json' with { type: 'json' };

// One validator over the OpenAPI document (JSON Schema 2020-12, as OpenAPI 3.1 specifies): the API's
// answers and the CLIs' --json documents share its schemas.
export const ajv = new Ajv2020({ strict: false, allErrors: true });
ajv.addSchema(openapi as object, 'openapi.json');

/** Problems of `value` against `openapi.json#/components/schemas/NAME` ([] when it conforms). */
export function schemaErrors(name: string, value: unknown): string[] {
  const validate = ajv.getSchema(`openapi.json#/components/schemas/${name}`);
  if (!validate) return [`no schema ${name}`];
  return validate(value) ? [] : (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
}

/**
 * The schema a CLI --json document must follow, by its shape: an error document, or a versioned
 * document of a known kind. Undefined for documents the OpenAPI file does not describe.
 */
export function cliDocumentSchema(doc: unknown): string | undefined {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const d = doc as Record<string, unknown>;
  if ('error' in d && Object.keys(d).length === 1) return 'Error';
  if (d['apiVersion'] === 'mosctl/v1' && d['kind'] === 'Status') return 'Status';
  return undefined;
}

/** Keys copied from mos's install manifest (manifest.yaml, install.json), spelled as there. */
const MANIFEST_KEYS = new Set(['service_name', 'service_type', 'update_type', 'nsgroup', 'network', 'ports', 'storage', 'host', 'container']);
/** Keys whose value is someone else's document or a map of names: their keys are data, not ours. */
const FOREIGN = new Set(['annotations', 'labels', 'config', 'imageConfig', 'manifestJson', 'document']);

/**
 * The JSON naming convention of README "JSON output", checked on a whole document: every key of ours is
 * camelCase; keys copied from the install manifest keep its spelling. Returns the offending paths.
 */
export function namingProblems(doc: unknown, path = ''): string[] {
  if (Array.isArray(doc)) return doc.flatMap((v, i) => namingProblems(v, `${path}[${i}]`));
  if (doc === null || typeof doc !== 'object') return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    if (!/^[a-z][a-zA-Z0-9]*$/.test(k) && !MANIFEST_KEYS.has(k)) out.push(`${path}.${k}`);
    if (!FOREIGN.has(k)) out.push(...namingProblems(v, `${path}.${k}`));
  }
  return out;
}

/** A CLI document without the envelope the CLI adds (`apiVersion`, `kind` of a command result), as the API sends it. */
export function apiBody(doc: unknown): unknown {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return doc;
  const { apiVersion: _v, kind, ...rest } = doc as Record<string, unknown>;
  return typeof kind === 'string' && kind.endsWith('Result') ? rest : doc;
}

/** The schema of a CLI command's --json document where the OpenAPI file has one (the remote commands). */
export function commandSchema(args: readonly string[]): string | undefined {
  const cmd = args.find((a) => ['history', 'audit', 'pin', 'unpin'].includes(a));
  return cmd === 'history' ? 'Generations' : cmd === 'audit' ? 'AuditList' : cmd === 'pin' || cmd === 'unpin' ? 'PinResult' : undefined;
}
