#!/usr/bin/env node
import { makeProgram, runProgram } from './common.js';
import * as manifest from './commands/manifest.js';
import * as trust from './commands/trust.js';
import * as oci from './commands/oci.js';
import * as image from './commands/image.js';
import * as system from './commands/system.js';
import * as publish from './commands/publish.js';

const program = makeProgram('mosb', 'Build and publish signed machine install manifests and squashfs images');
for (const area of [manifest, trust, oci, image, publish, system]) area.registerMosb(program);
await runProgram(program, process.argv);
