// The host's log: lines on standard error, `SANDBOXD_LOG` choosing the level
// as the Rust host's filter does (`info`, `debug`, `info,plugin=debug`, …: the
// default level and per-target ones; targets here are `sandboxd` and
// `plugin`). Text from the plugin is untrusted: control characters become
// spaces and each string is cut at 2048 characters, so it cannot forge lines.

const LEVELS = { trace: 0, debug: 1, info: 2, warn: 3, error: 4, off: 5 };
const MAX_TEXT = 2048;

/** @param {string} s */
export function clean(s) {
  const chars = Array.from(String(s));
  const out = chars.slice(0, MAX_TEXT).map((c) => (/[\u0000-\u001f\u007f-\u009f]/.test(c) ? ' ' : c)).join('');
  return chars.length > MAX_TEXT ? `${out}…` : out;
}

/** @param {string | undefined} filter */
function parseFilter(filter) {
  const levels = { default: LEVELS.info };
  for (const part of (filter ?? 'info').split(',')) {
    const [target, level] = part.includes('=') ? part.split('=') : ['default', part];
    const n = LEVELS[level?.trim().toLowerCase()];
    if (n === undefined) continue;
    const t = target.trim();
    levels[t === 'default' ? 'default' : t.split('::')[0]] = n;
  }
  return levels;
}

/** @implements {import('./index.js').Logger} */
export class Logger {
  /** @param {{ filter?: string, write?: (line: string) => void }} [options] */
  constructor(options = {}) {
    this.levels = parseFilter(options.filter);
    this.write = options.write ?? ((line) => process.stderr.write(`${line}\n`));
  }

  enabled(level, target = 'sandboxd') {
    return LEVELS[level] >= (this.levels[target] ?? this.levels.default);
  }

  /**
   * @param {'trace' | 'debug' | 'info' | 'warn' | 'error'} level
   * @param {string} message
   * @param {Record<string, unknown>} [fields]
   * @param {string} [target]
   */
  log(level, message, fields = {}, target = 'sandboxd') {
    if (!this.enabled(level, target)) return;
    const kv = Object.entries(fields)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(' ');
    this.write(`${new Date().toISOString()} ${level.toUpperCase().padStart(5)} ${target}: ${message}${kv ? ` ${kv}` : ''}`);
  }
}

/** A logger that writes nothing. */
export const silent = new Logger({ filter: 'off' });
