export { exec, hasProgram, type ExecOptions, type ExecResult } from './exec.js';
export { writeFileAtomic, fsyncDir, ensureDir, exists, readFileLimited, tempPathFor } from './fs.js';
export { acquireLock, lockHolder, type FileLock, type LockOptions } from './lock.js';
