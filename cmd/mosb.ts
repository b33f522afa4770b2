#!/usr/bin/env node
import { registerDocs } from './shared/docs.js';
import { makeProgram, runProgram } from './shared/run.js';
import * as bundle from './mosb/bundle.js';
import * as keysetRotate from './mosb/keyset-rotate.js';
import * as imageBuild from './mosb/image-build.js';
import * as imageCopy from './mosb/image-copy.js';
import * as imageInspect from './mosb/image-inspect.js';
import * as keysetAdd from './mosb/keyset-add.js';
import * as keysetBootkit from './mosb/keyset-bootkit.js';
import * as keysetUefi from './mosb/keyset-uefi.js';
import * as manifestPublish from './mosb/manifest-publish.js';
import * as manifestValidate from './mosb/manifest-validate.js';
import * as projectAdd from './mosb/project-add.js';
import * as initrd from './mosb/initrd.js';
import * as uki from './mosb/uki.js';
import * as mkboot from './mosb/mkboot.js';

const program = makeProgram('mosb', 'Build and publish signed machine install manifests and squashfs images');
for (const sub of [manifestValidate, keysetAdd, keysetRotate, keysetBootkit, keysetUefi, projectAdd, imageCopy, imageInspect, imageBuild, manifestPublish, initrd, uki, mkboot, bundle]) sub.register(program);
registerDocs(program);
await runProgram(program, process.argv);
