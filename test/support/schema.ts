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
