/**
 * How to reach the registries a SOURCE or DEST names: what the CLIs' registry flags (`--insecure-registry`,
 * `--registry-ca`, `--authfile`, the limits, `--registries-conf`) become. Types only; here so that both
 * the registry client (src/oci) and the thin CLI (cmd/shared) speak them.
 */
export interface RegistryAccess {
  readonly insecureHosts?: readonly string[];
  readonly caFiles?: readonly string[];
  readonly authFile?: string;
  readonly limits?: RegistryLimits;
  /** registries.conf to read mirrors and blocked registries from (default: $CONTAINERS_REGISTRIES_CONF, else /etc/containers/registries.conf and .d/). */
  readonly registriesConf?: string;
}

/** The time and rate limits of registry requests a caller may set (`--stall-timeout`, `--min-rate`, ...); ms and bytes/s. */
export interface RegistryLimits {
  readonly requestTimeoutMs?: number;
  readonly stallTimeoutMs?: number;
  readonly minBytesPerSecond?: number;
  readonly rateWindowMs?: number;
  readonly requestDeadlineMs?: number;
  readonly retries?: number;
  readonly retryBaseMs?: number;
}
