#!/usr/bin/env node
import { registerDocs } from './shared/docs.js';
import { makeProgram, runProgram } from './shared/run.js';
import * as bundle from './mosctl/bundle.js';
import * as activate from './mosctl/activate.js';
import * as audit from './mosctl/audit.js';
import * as boot from './mosctl/boot.js';
import * as createBootFs from './mosctl/create-boot-fs.js';
import * as assess from './mosctl/assess.js';
import * as deactivate from './mosctl/deactivate.js';
import * as downloader from './mosctl/downloader.js';
import * as fsck from './mosctl/fsck.js';
import * as gc from './mosctl/gc.js';
import * as history from './mosctl/history.js';
import * as install from './mosctl/install.js';
import * as mount from './mosctl/mount.js';
import * as operations from './mosctl/operations.js';
import * as pin from './mosctl/pin.js';
import * as rollback from './mosctl/rollback.js';
import * as serve from './mosctl/serve.js';
import * as status from './mosctl/status.js';
import * as umount from './mosctl/umount.js';
import * as update from './mosctl/update.js';
import * as upgrade from './mosctl/upgrade.js';
import * as verify from './mosctl/verify.js';

if (process.argv[2] === downloader.DOWNLOADER_MODE) downloader.runDownloaderChild();
else main();

function main(): void {
  const program = makeProgram('mosctl', 'Install, update, verify and boot a machine from signed OCI install manifests', { remote: true });
  downloader.register(program);
  for (const sub of [status, history, verify, fsck, gc, mount, createBootFs, umount, install, update, upgrade, rollback, activate, deactivate, boot, assess, serve, operations, audit, pin, bundle]) sub.register(program);
  registerDocs(program);
  // runProgram never rejects (it reports and sets the exit code): no top-level await, so the program
  // also bundles as CommonJS (the initramfs loads it through a V8 code cache).
  void runProgram(program, process.argv);
}
