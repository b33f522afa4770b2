// Child process for concurrency.test.ts: commits N generations under the config lock.
// argv: ROOT NAME COUNT. COUNT 0 means "until killed".
import { commitGeneration, lockConfig, readGeneration } from '../../src/config/index.js';

const [root, name, countS] = process.argv.slice(2) as [string, string, string];
const count = Number(countS);
for (let i = 1; count === 0 || i <= count; i++) {
  const lock = await lockConfig(root, { wait: true });
  try {
    const head = await readGeneration({ root });
    const files = new Map(head.files);
    files.set('manifest.json', new TextEncoder().encode(JSON.stringify({ by: name, i })));
    files.set(`${name}.json`, new TextEncoder().encode(String(i)));
    await commitGeneration({ root, files, message: `${name} ${i}`, parent: head.oid });
  } finally {
    await lock.release();
  }
  if (count === 0) process.stdout.write(`${i}\n`);
}
