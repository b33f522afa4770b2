// Public surface of src/config: config/manifest.git (generations of the system state) and its lock.
export { configPaths, type ConfigPaths } from './paths.js';
export { lockConfig, type LockConfigOptions } from './lock.js';
export { createConfigRepo, type CreateConfigRepoOptions } from './create.js';
export { commitGeneration, type CommitGenerationOptions } from './commit.js';
export { readGeneration, currentGeneration, listHistory, type Generation, type GenerationInfo, type ReadGenerationOptions } from './read.js';
