export { exec, hasProgram, requirePrograms, processAlive, type ExecOptions, type ExecResult } from './exec.js';
export { writeFileAtomic, fsyncDir, ensureDir, exists, statOrAbsent, lstatOrAbsent, readFileLimited, openRegular, tempPathFor, fileError, refuseOutwardSymlinks, type OpenRegularOptions } from './fs.js';
export { acquireLock, lockHolder, tryFlock, type FileLock, type LockOptions } from './lock.js';
export { parseMountInfo, readMountInfo, mountOption, overlayLowerDirs, mountAt, type MountInfoEntry } from './mountinfo.js';
export { mountSquashfs, mountSquashfuse, mountOverlay, unmount, openVerityDevice, closeVerityDevice, isHostRoot, hasDeviceMapper, type MountCallOptions } from './mount.js';
export { listLoopDevices, loopDevice, detachLoop, type LoopDevice } from './loop.js';
