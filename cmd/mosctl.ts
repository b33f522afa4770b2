#!/usr/bin/env node
import { makeProgram, runProgram } from './common.js';
import * as config from './commands/config.js';
import * as trust from './commands/trust.js';
import * as oci from './commands/oci.js';
import * as mount from './commands/mount.js';
import * as system from './commands/system.js';

const program = makeProgram('mosctl', 'Install, update, verify and boot a machine from signed OCI install manifests');
for (const area of [config, trust, oci, mount, system]) area.registerMosctl(program);
await runProgram(program, process.argv);
