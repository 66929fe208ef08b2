// The contract this host implements (`wit/`, package sandboxd:plugin@0.5.0),
// as jco needs to know it: which imports may suspend the plugin (JSPI: the
// contract's and WASI's waits, `./clock.js`) and
// which exports return promises, and whether a plugin's declared version is
// one this host can run (the Rust host's rule, `host/src/plugin/contract.rs`).

import { ASYNC_WASI_IMPORTS } from './clock.js';

export const CONTRACT_VERSION = '0.5.0';
const PACKAGE = 'sandboxd:plugin/';

/** Imports that wait on the network or the store: the plugin suspends on them. */
const ASYNC_IMPORTS = {
  http: ['send', 'send-batch', 'finish-batch'],
  storage: ['get', 'get-many', 'scan', 'commit', 'commit-relaxed'],
};

/** Every function the host may call (all of them return promises under JSPI). */
export const EXPORTS = {
  info: ['info'],
  sandboxes: ['search', 'get', 'batch-get', 'start', 'pause', 'resume', 'delete', 'get-by-session-key', 'reconcile'],
  specs: ['search', 'batch-get'],
  sync: ['poll', 'ingest-conversation', 'ingest-events'],
  conversations: ['search', 'get', 'search-events', 'stream-events', 'stream-start'],
  callbacks: ['create', 'all', 'get', 'delete', 'deliveries', 'deliver-due'],
  lifecycle: ['history', 'pass', 'wake'],
};

const qualified = (table, version) =>
  Object.entries(table).flatMap(([iface, fns]) => fns.map((f) => `${PACKAGE}${iface}@${version}#${f}`));

/** jco's `asyncImports` and `asyncExports` for a plugin declaring `version`. */
export function asyncNames(version) {
  return { asyncImports: [...qualified(ASYNC_IMPORTS, version), ...ASYNC_WASI_IMPORTS], asyncExports: qualified(EXPORTS, version) };
}

/** `major.minor.patch` with optional pre-release and build: its numbers, or undefined. */
function parse(v) {
  const m = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/.exec(v);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** Whether a plugin built against `plugin` runs on a host of `host`: same major; for 0.x, same minor. */
export function compatible(host, plugin) {
  const h = parse(host);
  const p = parse(plugin);
  if (!h || !p) return false;
  return h[0] === 0 && p[0] === 0 ? h[1] === p[1] : h[0] === p[0];
}

/** The one version of sandboxd:plugin a component's interface names declare. */
export function declaredVersion(names) {
  const versions = [
    ...new Set(
      names
        .filter((n) => n.startsWith(PACKAGE) && n.includes('@'))
        .map((n) => n.slice(n.indexOf('@') + 1).split('#')[0]),
    ),
  ].sort();
  if (versions.length === 1) return versions[0];
  if (versions.length === 0) throw new Error('it neither imports nor exports any interface of sandboxd:plugin');
  throw new Error(`it mixes versions of sandboxd:plugin (${versions.join(', ')})`);
}
