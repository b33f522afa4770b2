// Run by crash.test.ts: applies the mount plan given as JSON in argv[2] and freezes right before the
// overlay step (after every layer is mounted), so the parent can SIGKILL it at that exact point.
import { mountImage, type MountPlan } from '../../src/atomfs/index.js';

const plan = JSON.parse(process.argv[2]!) as MountPlan;
await mountImage(plan, {
  onProgress: (ev) => {
    if (ev.kind === 'step' && ev.step === 'overlay') {
      process.stdout.write('READY\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 60_000); // blocks the whole process
    }
  },
});
process.stdout.write('DONE\n');
