// Public surface of src/serve: the upgrade API (`mosctl serve`) over the operation engine of
// src/machine, and its client (`mosctl --server`). Above src/machine; only cmd/mosctl imports it.
export { startServer, serveUntilSignal, DEFAULT_LIMITS, type ServeOptions, type ServeLimits, type RunningServer } from './server.js';
export { ApiClient, type ClientOptions } from './client.js';
export { type Role } from './roles.js';
export { systemdUnit, systemdSocket } from './systemd.js';
