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

/** The time and rate limits of registry requests a caller may set (`--stall-timeout`, `--min-rate`, ...). */
export interface RegistryLimits {
  /** Time to wait for response headers, ms; default 30 000. */
  readonly requestTimeoutMs?: number;
  /** Time without a body byte before a transfer is abandoned, ms; default 30 000. */
  readonly stallTimeoutMs?: number;
  /**
   * Slowest body transfer accepted, bytes/s, averaged over `rateWindowMs`: a registry that drips a byte
   * every few seconds never trips the stall timer, but trips this. Default 1024 (a very slow edge link
   * still moves far more); 0 turns it off.
   */
  readonly minBytesPerSecond?: number;
  /**
   * Fastest download, bytes/s, shared by every transfer of the process at this rate (`--limit-rate`, for
   * a slow or metered link); default 0 (no limit). The minimum rate check adapts to it.
   */
  readonly maxBytesPerSecond?: number;
  /** Window of the rate check, ms; default 60 000. */
  readonly rateWindowMs?: number;
  /** Longest one request may take, headers and body, ms; default 3 600 000 (1 h). */
  readonly requestDeadlineMs?: number;
  /** Retries after a 5xx, 429 or connection reset (and resumes of one blob); default 3. */
  readonly retries?: number;
  /** First backoff delay, doubled per retry, ms; default 250. */
  readonly retryBaseMs?: number;
}

/**
 * The user the unprivileged registry downloader runs as by default (`--downloader-user`): here so that the
 * thin CLI can name it in its help without loading the registry client (src/oci/downloader).
 */
export const DOWNLOADER_USER = 'mosctl-download';
