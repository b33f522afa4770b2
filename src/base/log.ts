/** Levelled logger injected into library code; silent unless the CLI provides one. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

/** A logger that drops everything (the library default). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
};

/** Logger writing to stderr: human lines, or JSON lines when `json` is set. */
export function stderrLogger(opts: { debug: boolean; json: boolean }): Logger {
  const emit = (level: string, msg: string, fields?: Record<string, unknown>) => {
    if (opts.json) {
      process.stderr.write(JSON.stringify({ level, msg, ...fields }) + '\n');
    } else {
      const extra = fields ? Object.entries(fields).map(([k, v]) => ` ${k}=${typeof v === 'string' && !/\s/.test(v) ? v : JSON.stringify(v)}`).join('') : '';
      process.stderr.write(`${level === 'info' ? '' : level + ': '}${msg}${extra}\n`);
    }
  };
  return {
    debug: (m, f) => {
      if (opts.debug) emit('debug', m, f);
    },
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
  };
}
