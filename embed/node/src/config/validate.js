// Validation of each section, with the Rust host's defaults and messages
// (`host/src/config/{service,runtime,specs,auth,http,sync,plugin}.rs`). Each
// problem is reported and validation goes on, so one run names them all.

import net from 'node:net';
import { name } from './env.js';

/** What this host reads; anything else in the file is refused by name. */
const SUPPORTED = {
  '': ['listen', 'data_dir', 'web_url', 'runtime', 'specs', 'auth', 'plugin', 'http', 'sync', 'lifecycle'],
  runtime: ['api_url', 'api_key', 'resource_factor', 'runtime_class', 'start_sandbox_timeout', 'max_num_sandboxes', 'polling_interval', 'orphans', 'reconcile_interval'],
  specs: ['id', 'command', 'working_dir', 'initial_env'],
  auth: ['mode', 'keys', 'allow_unauthenticated_public'],
  'auth.keys': ['key', 'user_id', 'admin'],
  plugin: ['path'],
  http: ['timeout', 'connect_timeout', 'max_response_mb'],
  sync: ['mode', 'concurrency', 'request_timeout'],
  lifecycle: ['teardown_grace', 'history_retention'],
};
/** Keys of the Rust host's file that this host lacks, and why. */
const WHY = {
  store_cache_mb: 'it keeps its state in SQLite, not redb',
  database_url: 'it keeps its state in one SQLite file in data_dir; replicas on PostgreSQL are the Rust host’s',
  host_key: 'its host key is the file data_dir/host.key',
  local_runtime: 'it has no embedded local runtime',
  'specs.probe': 'it has no embedded local runtime',
  'specs.probe_path': 'it has no embedded local runtime',
  'auth.user_header': 'it supports auth.mode none and api-keys only',
  'lifecycle.idle_pause': 'it runs no lifecycle policy pass (its library has `lifecyclePass`)',
  'lifecycle.max_running': 'it runs no lifecycle policy pass (its library has `lifecyclePass`)',
  'lifecycle.delete_paused_after': 'it runs no lifecycle policy pass (its library has `lifecyclePass`)',
  'lifecycle.interval': 'it runs no lifecycle policy pass (its library has `lifecyclePass`)',
  'lifecycle.wake_on_request': 'it has no embedded local runtime',
  'specs.warm': 'it runs no lifecycle policy pass, which keeps the warm pools (its library has `lifecyclePass`)',
};

function refuseUnknown(table, section, label, errors) {
  if (table === null || typeof table !== 'object' || Array.isArray(table)) return;
  for (const key of Object.keys(table)) {
    if (SUPPORTED[section].includes(key)) continue;
    const full = label ? `${label}.${key}` : key;
    const why = WHY[section ? `${section}.${key}` : key];
    errors.push(why ? `${full}: not supported by sandboxd-node (${why})` : `${full}: unknown key`);
  }
}

const isTable = (v) => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date);

/** A typed value or undefined; a value of the wrong type is reported. */
function typed(value, key, type, errors) {
  if (value === undefined) return undefined;
  const ok =
    type === 'string' ? typeof value === 'string'
    : type === 'whole' ? (typeof value === 'number' && Number.isInteger(value)) || typeof value === 'bigint'
    : type === 'number' ? typeof value === 'number' || typeof value === 'bigint'
    : type === 'bool' ? typeof value === 'boolean'
    : type === 'strings' ? Array.isArray(value) && value.every((s) => typeof s === 'string')
    : type === 'table' ? isTable(value)
    : false;
  if (ok) return typeof value === 'bigint' ? Number(value) : value;
  const expected = { string: 'a string', whole: 'a whole number', number: 'a number', bool: 'true or false', strings: 'a list of strings', table: 'a table' }[type];
  errors.push(`${key}: expected ${expected}`);
  return undefined;
}

/** An absolute http(s) URL with a host and no query or fragment, without its trailing slash. */
export function parseBaseUrl(raw) {
  const trimmed = raw.trim();
  let url;
  try {
    url = new URL(trimmed);
  } catch {
    throw new Error(`'${raw}' is not a valid URL (relative URL without a base)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`'${raw}' must use http or https`);
  if (!url.hostname) throw new Error(`'${raw}' has no host`);
  if (url.search || url.hash || trimmed.includes('?') || trimmed.includes('#')) throw new Error(`'${raw}' must not have a query or fragment`);
  return url.href.replace(/\/+$/, '');
}

function parseListen(raw) {
  const s = raw.trim();
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s);
  if (m && Number(m[3]) <= 65535) {
    const host = m[1] ?? m[2];
    if ((m[1] && net.isIPv6(host)) || (m[2] && net.isIPv4(host))) return { host, port: Number(m[3]) };
    if (m[2] === 'localhost') return { host: '127.0.0.1', port: Number(m[3]) };
  }
  throw new Error(`'${s}' is not an address; use IP:PORT such as 127.0.0.1:3000`);
}

const isLoopback = (host) => host === '::1' || /^127\./.test(host);

/** A whole number in [min, max], or undefined (absent or reported). */
function whole(key, value, min, max, errors) {
  if (value === undefined) return undefined;
  if (value >= min && value <= max) return value;
  const allowed = max >= 2 ** 32 - 1 ? `a whole number from ${min} up` : `${min} to ${max}`;
  errors.push(`${name(key)}: ${value} is out of range; use ${allowed}`);
  return undefined;
}

function seconds(key, value, fallback, errors) {
  if (value === undefined) return fallback;
  if (Number.isFinite(value) && value >= 0.001 && value <= 86_400) return value;
  errors.push(`${name(key)}: ${value} is out of range; use a number of seconds from 0.001 up to 86400`);
  return fallback;
}

function oneOf(values) {
  return values.length === 1 ? values[0] : `${values.slice(0, -1).join(', ')} or ${values[values.length - 1]}`;
}

function choice(key, value, allowed, fallback, errors) {
  if (value === undefined) return fallback;
  const v = value.trim();
  if (allowed.includes(v)) return v;
  errors.push(`${name(key)}: '${v}' is not allowed; use ${oneOf(allowed)}`);
  return undefined;
}

/**
 * @param {Record<string, any>} file
 * @param {string[]} errors
 */
export function validate(file, errors) {
  // An empty `database_url` or `host_key` is no value at all, as on the Rust
  // host (its default: the embedded store, data_dir/host.key): nothing to refuse.
  for (const key of ['database_url', 'host_key']) {
    if (typeof file[key] === 'string' && file[key].trim() === '') delete file[key];
  }
  refuseUnknown(file, '', '', errors);
  const rt = typed(file.runtime, 'runtime', 'table', errors) ?? {};
  const authFile = typed(file.auth, 'auth', 'table', errors) ?? {};
  const pluginFile = typed(file.plugin, 'plugin', 'table', errors) ?? {};
  const syncFile = typed(file.sync, 'sync', 'table', errors) ?? {};
  const httpFile = typed(file.http, 'http', 'table', errors) ?? {};
  const lifecycleFile = typed(file.lifecycle, 'lifecycle', 'table', errors) ?? {};
  refuseUnknown(lifecycleFile, 'lifecycle', 'lifecycle', errors);
  refuseUnknown(rt, 'runtime', 'runtime', errors);
  refuseUnknown(authFile, 'auth', 'auth', errors);
  refuseUnknown(pluginFile, 'plugin', 'plugin', errors);
  refuseUnknown(syncFile, 'sync', 'sync', errors);
  refuseUnknown(httpFile, 'http', 'http', errors);

  // Top-level keys.
  let listen = { host: '127.0.0.1', port: 0 };
  try {
    listen = parseListen(typed(file.listen, 'listen', 'string', errors) ?? '127.0.0.1:3000');
  } catch (e) {
    errors.push(`${name('listen')}: ${e.message}`);
  }
  const dataDir = typed(file.data_dir, 'data_dir', 'string', errors) ?? '.sandboxd';
  if (dataDir === '') errors.push(`${name('data_dir')}: must not be empty`);
  let webUrl;
  const rawWeb = typed(file.web_url, 'web_url', 'string', errors);
  if (rawWeb !== undefined) {
    try {
      webUrl = parseBaseUrl(rawWeb);
    } catch (e) {
      errors.push(`${name('web_url')}: ${e.message}`);
    }
  }

  // [runtime]
  let apiUrl;
  const rawApi = typed(rt.api_url, 'runtime.api_url', 'string', errors)?.trim();
  if (!rawApi) {
    errors.push(`${name('runtime.api_url')}: required: sandboxd-node has no embedded local runtime`);
  } else {
    try {
      apiUrl = parseBaseUrl(rawApi);
    } catch (e) {
      errors.push(`${name('runtime.api_url')}: ${e.message}`);
    }
  }
  const apiKey = typed(rt.api_key, 'runtime.api_key', 'string', errors) ?? '';
  if (apiUrl !== undefined && apiKey === '') errors.push(`${name('runtime.api_key')}: required with a remote runtime API`);
  let resourceFactor = typed(rt.resource_factor, 'runtime.resource_factor', 'whole', errors) ?? 1;
  if (![1, 2, 4, 8].includes(resourceFactor)) {
    errors.push(`${name('runtime.resource_factor')}: ${resourceFactor} is not allowed; use 1, 2, 4 or 8`);
    resourceFactor = 1;
  }
  const runtimeClass = choice('runtime.runtime_class', typed(rt.runtime_class, 'runtime.runtime_class', 'string', errors), ['gvisor', 'sysbox'], 'gvisor', errors) ?? 'gvisor';
  const orphans = choice('runtime.orphans', typed(rt.orphans, 'runtime.orphans', 'string', errors), ['stop', 'adopt', 'keep'], 'stop', errors) ?? 'stop';
  const positive = (key, value, fallback) => whole(key, typed(value, key, 'whole', errors), 1, 2 ** 32 - 1, errors) ?? fallback;
  const runtime = {
    apiUrl: apiUrl ?? '',
    apiKey,
    resourceFactor,
    runtimeClass,
    startSandboxTimeoutSecs: positive('runtime.start_sandbox_timeout', rt.start_sandbox_timeout, 120),
    maxNumSandboxes: positive('runtime.max_num_sandboxes', rt.max_num_sandboxes, 10),
    pollingIntervalSecs: positive('runtime.polling_interval', rt.polling_interval, 15),
    orphans,
    reconcileIntervalSecs: positive('runtime.reconcile_interval', rt.reconcile_interval, 60),
  };

  // [[specs]]
  const specsFile = file.specs === undefined ? [] : Array.isArray(file.specs) ? file.specs : (errors.push('specs: expected an array of tables'), []);
  const specs = [];
  specsFile.forEach((s, i) => {
    if (!isTable(s)) return errors.push(`specs[${i}]: expected a table`);
    refuseUnknown(s, 'specs', `specs[${i}]`, errors);
    const id = typed(s.id, `specs[${i}].id`, 'string', errors);
    if (s.id === undefined) errors.push(`specs[${i}]: missing field \`id\``);
    if (id !== undefined && id.trim() === '') errors.push(`specs[${i}].id: must not be empty`);
    else if (id !== undefined && specs.some((o) => o.id === id)) errors.push(`specs[${i}].id: '${id}' is configured twice`);
    const env = typed(s.initial_env, `specs[${i}].initial_env`, 'table', errors) ?? {};
    for (const [k, v] of Object.entries(env)) if (typeof v !== 'string') errors.push(`specs[${i}].initial_env.${k}: expected a string`);
    specs.push({
      id: id ?? '',
      command: typed(s.command, `specs[${i}].command`, 'strings', errors),
      workingDir: typed(s.working_dir, `specs[${i}].working_dir`, 'string', errors) ?? '/workspace/project',
      initialEnv: Object.entries(env).map(([k, v]) => [k, String(v)]),
    });
  });

  // [auth]
  let mode = typed(authFile.mode, 'auth.mode', 'string', errors)?.trim() ?? 'none';
  if (mode === 'trusted-header') {
    errors.push(`${name('auth.mode')}: 'trusted-header' is not supported by sandboxd-node; use none or api-keys`);
    mode = 'none';
  } else {
    mode = choice('auth.mode', mode, ['none', 'api-keys', 'trusted-header'], 'none', errors) ?? 'none';
  }
  const keys = [];
  const keysFile = authFile.keys === undefined ? [] : Array.isArray(authFile.keys) ? authFile.keys : (errors.push('auth.keys: expected an array of tables'), []);
  keysFile.forEach((k, i) => {
    if (!isTable(k)) return errors.push(`auth.keys[${i}]: expected a table`);
    refuseUnknown(k, 'auth.keys', `auth.keys[${i}]`, errors);
    const key = typed(k.key, `auth.keys[${i}].key`, 'string', errors) ?? '';
    const userId = typed(k.user_id, `auth.keys[${i}].user_id`, 'string', errors);
    const admin = typed(k.admin, `auth.keys[${i}].admin`, 'bool', errors) ?? false;
    if (key.length < 16) errors.push(`auth.keys[${i}].key: too short; use at least 16 characters`);
    if (userId !== undefined && admin) errors.push(`auth.keys[${i}]: set either user_id or admin = true, not both`);
    else if (userId === undefined && !admin) errors.push(`auth.keys[${i}]: set user_id, or admin = true for an admin key`);
    else if (userId !== undefined && userId.trim() === '') errors.push(`auth.keys[${i}].user_id: must not be empty`);
    else keys.push({ key, userId });
  });
  if (mode === 'api-keys' && keys.length === 0) errors.push('auth.keys: api-keys mode needs at least one [[auth.keys]] entry');
  const allowPublic = typed(authFile.allow_unauthenticated_public, 'auth.allow_unauthenticated_public', 'bool', errors) ?? false;
  if (mode === 'none' && !isLoopback(listen.host) && !allowPublic) {
    const shown = net.isIPv6(listen.host) ? `[${listen.host}]:${listen.port}` : `${listen.host}:${listen.port}`;
    errors.push(
      `${name('listen')}: refusing to serve ${shown} without authentication (auth.mode = "none" lets anyone ` +
        'who can connect act as the only user). Listen on 127.0.0.1, choose auth.mode = ' +
        `"api-keys" or "trusted-header", or set ${name('auth.allow_unauthenticated_public')} = true to accept the risk`,
    );
  }

  // [http]: the plugin's outbound requests.
  const http = {
    timeoutMs: Math.round(seconds('http.timeout', typed(httpFile.timeout, 'http.timeout', 'number', errors), 30, errors) * 1000),
    connectTimeoutMs: Math.round(seconds('http.connect_timeout', typed(httpFile.connect_timeout, 'http.connect_timeout', 'number', errors), 5, errors) * 1000),
    maxResponseBytes: (whole('http.max_response_mb', typed(httpFile.max_response_mb, 'http.max_response_mb', 'whole', errors), 1, 1024, errors) ?? 16) * 2 ** 20,
  };

  // [sync]
  const syncMode = choice('sync.mode', typed(syncFile.mode, 'sync.mode', 'string', errors), ['auto', 'poll', 'webhook'], 'auto', errors) ?? 'auto';
  const concurrency = whole('sync.concurrency', typed(syncFile.concurrency, 'sync.concurrency', 'whole', errors), 1, 1024, errors) ?? 32;
  const requestTimeout = seconds('sync.request_timeout', typed(syncFile.request_timeout, 'sync.request_timeout', 'number', errors), 10, errors);

  // Whether sandboxes are told to call back, and whether they are polled: one
  // decision (the Rust host's `SyncPlan`). `auto`: told to call back whenever
  // there is a web_url, polled when there is none or it is a localhost one;
  // `poll`: polled, never told to call back; `webhook`: never polled, told to
  // call back to web_url if there is one.
  const polls = syncMode === 'poll' || (syncMode === 'auto' && (webUrl === undefined || webUrl.includes('localhost')));
  const callbackUrl = syncMode === 'poll' ? undefined : webUrl;

  return {
    listen,
    dataDir,
    webUrl,
    /** The public URL sandboxes are told to post their webhooks to, if any. */
    callbackUrl,
    runtime,
    specs,
    auth: { mode, keys },
    plugin: { path: typed(pluginFile.path, 'plugin.path', 'string', errors) },
    http,
    sync: { mode: syncMode, concurrency, requestTimeoutMs: Math.round(requestTimeout * 1000) },
    /** Whether the host polls agent servers (the Rust host's `SyncPlan::poll`). */
    polls,
    lifecycle: {
      teardownGraceSecs: whole('lifecycle.teardown_grace', typed(lifecycleFile.teardown_grace, 'lifecycle.teardown_grace', 'whole', errors), 0, 2 ** 32 - 1, errors) ?? 30,
      historyRetentionSecs:
        whole('lifecycle.history_retention', typed(lifecycleFile.history_retention, 'lifecycle.history_retention', 'whole', errors), 0, 2 ** 32 - 1, errors) ?? 7 * 24 * 3600,
    },
  };
}
