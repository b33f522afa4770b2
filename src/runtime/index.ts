// src/runtime: container targets under LXC. Pure rendering and planning (config, idmaps, port forwards,
// systemd unit) plus thin apply steps (start, stop, state, ownership shift, volumes) through src/host.
export type { ContainerSpec, NetworkSpec, MountSpec, PortForward, UidMap, HostFeatures, LxcLogLevel, ContainerStateName, ContainerStatus } from './types.js';
export { renderLxcConfig, DEFAULT_PATH } from './lxc-config.js';
export { quoteLxcArgv, splitLxcQuoted } from './lxc-quote.js';
export { resolveSpecUser, resolveUser, parsePasswd, parseGroup, type ResolvedUser } from './user.js';
export { allocateIdmaps, idmapFor, isHostNsgroup, IDMAP_DEFAULTS, type AllocateIdmapsOptions } from './idmap.js';
export { probeHostFeatures, idmapDefaults, idmappedMountSupported } from './host-features.js';
export { ensureSubordinateIds, removeSubordinateIds, subIdCovered, type SubIdOptions } from './subid.js';
export { shiftOwnership, type ShiftOptions, type ShiftResult } from './shift.js';
export { startContainer, stopContainer, removeContainer, containerState, cleanupCgroups, parseLxcInfo, configValues, type ContainerRef, type StartOptions, type StopOptions } from './lxc.js';
export { checkBridges, planPortForwards, applyPortForwards, removePortForwards, portForwardTag } from './network.js';
export { prepareVolumes, volumeMounts, checkVolumeLabel, type VolumeItem, type VolumeResult, type PrepareVolumesOptions } from './volumes.js';
export { renderSystemdUnit } from './systemd.js';
