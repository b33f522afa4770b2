import { t } from 'tap';
import { cliDocumentSchema, commandSchema, namingProblems, schemaErrors } from '../support/schema.js';

// The checks runCli applies to every --json document of the suite's CLI runs must themselves catch what
// they are for (a check that cannot fail proves nothing).
t.test('the naming check finds keys that are not ours to spell', async (t) => {
  t.same(namingProblems({ blobBytes: 1, targets: [{ name: 'a', service_type: 'hostfs' }], update_type: 'complete' }), []);
  t.same(namingProblems({ install_sha: 'x', targets: [{ Name: 'a' }], nested: { 'bad-key': 1 } }), ['.install_sha', '.targets[0].Name', '.nested.bad-key']);
  t.same(namingProblems({ annotations: { 'org.opencontainers.image.ref.name': 'x' }, config: { Entrypoint: ['/bin/sh'] } }), [], "someone else's documents and maps are data");
});

t.test('documents are matched to their schemas and checked', async (t) => {
  t.equal(cliDocumentSchema({ error: { code: 'USAGE', message: 'm', retryable: false } }), 'Error');
  t.equal(cliDocumentSchema({ apiVersion: 'mosctl/v1', kind: 'Status' }), 'Status');
  t.equal(commandSchema(['--json', 'history', '--root', '/r']), 'Generations');
  t.same(schemaErrors('Error', { error: { code: 'USAGE', message: 'm', retryable: false } }), []);
  t.ok(schemaErrors('Error', { error: { code: 'USAGE', message: 'm' } }).length > 0, 'an error without retryable is refused');
  t.ok(schemaErrors('Generations', [{ number: 1 }]).length > 0, 'a bare array is not the generations document');
});
