export { MosError, isMosError, asMosError, exitCodeOf, isRetryable, errorDocument, describeSystemError, ERROR_EXIT_CODES, type ErrorCode, type MosErrorInit } from './errors.js';
export { isDigest, parseDigest, splitDigest, sha256Digest, sha256Hex, type Digest } from './digest.js';
export { silentLogger, stderrLogger, type Logger } from './log.js';
export type { ProgressEvent, OnProgress } from './progress.js';
export { parseReference, formatReference, isTag, isLayoutTag, isRepositoryName, isTargetName, DOCKER_HUB, MAX_LAYOUT_TAG_LENGTH, type Reference } from './reference.js';
export { DOWNLOADER_USER, type RegistryAccess, type RegistryLimits } from './registry-access.js';
