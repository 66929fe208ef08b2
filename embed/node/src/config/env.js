// The `SANDBOXD_*` variables: each replaces one key of the file, as on the
// Rust host (`host/src/config/env.rs`). The variables of keys this host does
// not support are refused by name, like the keys themselves.

/** @type {{ name: string, key: string, kind: 'string' | 'whole' | 'flag' | 'optional' | 'list', supported: boolean }[]} */
export const VARS = [
  { name: 'SANDBOXD_LISTEN', key: 'listen', kind: 'string', supported: true },
  { name: 'SANDBOXD_DATA_DIR', key: 'data_dir', kind: 'string', supported: true },
  { name: 'SANDBOXD_WEB_URL', key: 'web_url', kind: 'optional', supported: true },
  { name: 'SANDBOXD_DATABASE_URL', key: 'database_url', kind: 'optional', supported: false },
  { name: 'SANDBOXD_HOST_KEY', key: 'host_key', kind: 'optional', supported: false },
  { name: 'SANDBOXD_STORE_CACHE_MB', key: 'store_cache_mb', kind: 'whole', supported: false },
  { name: 'SANDBOXD_RUNTIME_API_URL', key: 'runtime.api_url', kind: 'string', supported: true },
  { name: 'SANDBOXD_RUNTIME_API_KEY', key: 'runtime.api_key', kind: 'string', supported: true },
  { name: 'SANDBOXD_RESOURCE_FACTOR', key: 'runtime.resource_factor', kind: 'whole', supported: true },
  { name: 'SANDBOXD_RUNTIME_CLASS', key: 'runtime.runtime_class', kind: 'string', supported: true },
  { name: 'SANDBOXD_START_SANDBOX_TIMEOUT', key: 'runtime.start_sandbox_timeout', kind: 'whole', supported: true },
  { name: 'SANDBOXD_MAX_NUM_SANDBOXES', key: 'runtime.max_num_sandboxes', kind: 'whole', supported: true },
  { name: 'SANDBOXD_POLLING_INTERVAL', key: 'runtime.polling_interval', kind: 'whole', supported: true },
  { name: 'SANDBOXD_ORPHANS', key: 'runtime.orphans', kind: 'string', supported: true },
  { name: 'SANDBOXD_SYNC_MODE', key: 'sync.mode', kind: 'string', supported: true },
  { name: 'SANDBOXD_PLUGIN_ALLOWED_HOSTS', key: 'plugin.allowed_hosts', kind: 'list', supported: false },
  { name: 'SANDBOXD_AUTH_MODE', key: 'auth.mode', kind: 'string', supported: true },
  { name: 'SANDBOXD_ALLOW_UNAUTHENTICATED_PUBLIC', key: 'auth.allow_unauthenticated_public', kind: 'flag', supported: true },
];

/** `key (ENV_VAR)` for messages about a value that can come from either. */
export function name(key) {
  const v = VARS.find((x) => x.key === key);
  return v ? `${key} (${v.name})` : key;
}

/** A variable's value as the key's type; throws what was expected. */
function read(kind, raw) {
  switch (kind) {
    case 'whole': {
      const t = raw.trim();
      if (!/^[+-]?\d+$/.test(t) || !Number.isSafeInteger(Number(t))) throw new Error(`expected a whole number, got '${raw}'`);
      return Number(t);
    }
    case 'flag': {
      const t = raw.trim().toLowerCase();
      if (['1', 'true', 'yes'].includes(t)) return true;
      if (['0', 'false', 'no', ''].includes(t)) return false;
      throw new Error(`expected true or false, got '${raw}'`);
    }
    case 'optional':
      // An empty value unsets it, so a deployment can turn webhooks off.
      return raw.trim() === '' ? undefined : raw;
    case 'list':
      return raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
    default:
      return raw;
  }
}

/**
 * Lay the environment over the file's values; every problem is reported.
 * @param {Record<string, any>} file the parsed TOML (changed in place)
 * @param {(name: string) => string | undefined} get
 * @param {string[]} errors
 */
export function applyEnv(file, get, errors) {
  for (const v of VARS) {
    const raw = get(v.name);
    if (raw === undefined) continue;
    // An empty value of an optional key unsets it (the Rust host's rule): it
    // asks for nothing this host lacks, and clears the key from the file too.
    if (!v.supported && !(v.kind === 'optional' && raw.trim() === '')) {
      errors.push(`${v.name}: ${v.key} is not supported by sandboxd-node`);
      continue;
    }
    let value;
    try {
      value = read(v.kind, raw);
    } catch (e) {
      errors.push(`${v.name}: ${e instanceof Error ? e.message : e}`);
      continue;
    }
    const path = v.key.split('.');
    let section = file;
    for (const part of path.slice(0, -1)) section = section[part] ??= {};
    if (value === undefined) delete section[path[path.length - 1]];
    else section[path[path.length - 1]] = value;
  }
}
