// Where the plugin's requests may go: the egress policy, rule for rule the
// Rust host's (`host/src/egress.rs`).
//
// A request is allowed when its destination matches one rule of
// `allowedHosts` (default `@runtime`, `@agents`, `@callbacks`):
// - `@runtime`: the runtime API's origin;
// - `@agents`: the origin of any `url` the runtime API answered with, learned
//   by the host from the runtime's answers, never from the plugin;
// - `@callbacks`: the origins of the event callbacks users registered, recorded
//   by the host before the plugin's `create` (kept in the host's own table, so
//   a restart keeps them);
// - `*`: anywhere; or a host pattern `[scheme://]host[:port]` (`*.name` for any
//   subdomain, IPv4, bracketed IPv6).
// Always refused, whatever the rules: link-local addresses (169.254.0.0/16,
// fe80::/10, which hold the cloud metadata services), `fd00:ec2::254`, the
// unspecified and broadcast addresses and the metadata host names; on the URL
// and again on every address DNS returns (`lookup` below).
//
// Invariant: nothing the plugin says widens the policy.

import dns from 'node:dns';
import net from 'node:net';

const METADATA_HOSTS = ['metadata.google.internal', 'metadata.goog', 'metadata'];
const CALLBACK_TABLE = 'egress_callbacks';
/** Most agent origins remembered; past it the least recently seen half goes. */
const MAX_LEARNED = 100_000;
export const DEFAULT_ALLOWED_HOSTS = ['@runtime', '@agents', '@callbacks'];

export class Denied extends Error {}

/**
 * Parse one `allowed_hosts` entry; throws a message saying what is wrong.
 * @param {string} raw
 * @returns {{ kind: 'runtime' | 'agents' | 'callbacks' | 'any' } | { kind: 'host', scheme?: string, exact?: string, suffix?: string, port?: number }}
 */
export function parseRule(raw) {
  const s = raw.trim();
  const groups = { '@runtime': 'runtime', '@agents': 'agents', '@callbacks': 'callbacks', '*': 'any' };
  if (s in groups) return { kind: groups[s] };
  if (s === '') throw new Error('an empty entry');
  if (s.startsWith('@')) throw new Error(`'${s}' is not a known group; use @runtime, @agents or @callbacks`);
  let scheme;
  let rest = s;
  const sep = s.indexOf('://');
  if (sep >= 0) {
    scheme = s.slice(0, sep).toLowerCase();
    rest = s.slice(sep + 3);
    if (scheme !== 'http' && scheme !== 'https') throw new Error(`'${s}': the scheme must be http or https`);
  }
  if (/[/?#@]/.test(rest)) throw new Error(`'${s}' is not a host pattern: give [scheme://]host[:port], without a path`);
  const split = splitPort(rest);
  if (!split) throw new Error(`'${s}': invalid port`);
  const host = split.host.toLowerCase();
  if (host.startsWith('*.')) {
    const domain = host.slice(2);
    if (domain === '' || domain.includes('*')) throw new Error(`'${s}': a wildcard must look like *.example.com`);
    return { kind: 'host', scheme, suffix: `.${domain}`, port: split.port };
  }
  if (host === '' || host.includes('*')) throw new Error(`'${s}': a wildcard is only allowed as a leading '*.' or alone`);
  let exact;
  try {
    exact = new URL(`http://${host}/`).hostname;
  } catch (e) {
    throw new Error(`'${s}': invalid host: ${e instanceof Error ? e.message : e}`);
  }
  return { kind: 'host', scheme, exact, port: split.port };
}

/** `host[:port]`, IPv6 in brackets. */
function splitPort(s) {
  let host;
  let port;
  const end = s.indexOf(']');
  if (end >= 0) {
    host = s.slice(0, end + 1);
    const after = s.slice(end + 1);
    if (after.startsWith(':')) port = after.slice(1);
    else if (after !== '') return undefined;
  } else {
    const colon = s.lastIndexOf(':');
    if (colon >= 0) {
      host = s.slice(0, colon);
      port = s.slice(colon + 1);
    } else host = s;
  }
  if (port === undefined) return { host, port: undefined };
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) return undefined;
  return { host, port: Number(port) };
}

const DEFAULT_PORTS = { 'http:': 80, 'https:': 443 };

function matchesPattern(rule, url) {
  if (rule.scheme && `${rule.scheme}:` !== url.protocol) return false;
  const port = url.port === '' ? DEFAULT_PORTS[url.protocol] : Number(url.port);
  if (rule.port !== undefined && rule.port !== port) return false;
  if (!url.hostname) return false;
  return rule.exact !== undefined ? url.hostname === rule.exact : url.hostname.endsWith(rule.suffix);
}

/** The eight 16-bit groups of an IPv6 address, or undefined. */
function ipv6Groups(text) {
  let s = text;
  let tail = [];
  const lastColon = s.lastIndexOf(':');
  if (s.slice(lastColon + 1).includes('.')) {
    const v4 = s.slice(lastColon + 1).split('.').map(Number);
    tail = [(v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]];
    s = s.slice(0, lastColon + 1) + (s.endsWith('::' + s.slice(lastColon + 1)) ? '' : '0');
    s = s.replace(/:0$/, '');
  }
  const [head, rest] = s.split('::');
  const parse = (part) => (part ? part.split(':').filter((g) => g !== '').map((g) => parseInt(g, 16)) : []);
  const a = parse(head);
  const b = rest === undefined ? [] : parse(rest);
  const fill = 8 - tail.length - a.length - b.length;
  if (fill < 0 || (rest === undefined && fill !== 0)) return undefined;
  return [...a, ...new Array(fill).fill(0), ...b, ...tail];
}

/** Whether an address is one no plugin request may reach. */
export function isForbidden(ip) {
  const family = net.isIP(ip);
  if (family === 4) {
    const [a, b] = ip.split('.').map(Number);
    return (a === 169 && b === 254) || ip === '255.255.255.255' || ip === '0.0.0.0';
  }
  if (family === 6) {
    const g = ipv6Groups(ip.toLowerCase());
    if (!g) return false;
    if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
      return isForbidden(`${g[6] >> 8}.${g[6] & 255}.${g[7] >> 8}.${g[7] & 255}`);
    }
    return (
      (g[0] & 0xffc0) === 0xfe80 ||
      (g[0] === 0xfd00 && g[1] === 0xec2 && g.slice(2, 7).every((x) => x === 0) && g[7] === 0x254) ||
      g.every((x) => x === 0)
    );
  }
  return false;
}

/**
 * The longest DNS name (RFC 1035). Longer ones cannot be resolved, and keeping
 * origins this short keeps them within the store's key limit (the Rust host's
 * `MAX_HOST_NAME`).
 */
const MAX_HOST_NAME = 253;

/** Refuse a URL whose host is a forbidden literal address, a name longer than DNS allows, or a metadata name. */
function checkForbidden(url) {
  if (!url.hostname) throw new Denied(`'${url.href}' has no host`);
  const literal = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (net.isIP(literal)) {
    if (isForbidden(literal)) throw new Denied(`${url.origin} is a link-local or metadata address`);
    return;
  }
  if (url.hostname.replace(/\.+$/, '').length > MAX_HOST_NAME) {
    throw new Denied(`the host name of ${[...url.hostname].slice(0, 40).join('')}… is longer than ${MAX_HOST_NAME} characters (DNS allows no more)`);
  }
  if (METADATA_HOSTS.includes(url.hostname.replace(/\.+$/, '').toLowerCase())) {
    throw new Denied(`${url.origin} is a cloud metadata service`);
  }
}

export class EgressPolicy {
  /**
   * @param {ReturnType<typeof parseRule>[]} rules
   * @param {string} runtimeUrl
   * @param {import('../storage/checked.js').CheckedStore} store
   */
  constructor(rules, runtimeUrl, store) {
    this.rules = rules;
    this.runtimeOrigin = new URL(runtimeUrl).origin;
    this.learnsAgents = rules.some((r) => r.kind === 'agents');
    /** @type {Map<string, number>} origin → when last seen (a counter) */
    this.agents = new Map();
    this.clock = 0;
    /** @type {Map<string, string>} callback id → origin */
    this.callbackById = new Map();
    /** @type {Map<string, number>} origin → callbacks using it */
    this.callbackCount = new Map();
    this.store = store;
  }

  /** Load the callback origins recorded by earlier runs. */
  async load() {
    for (const { key, value } of await this.store.hostScan(CALLBACK_TABLE)) {
      this.remember(Buffer.from(key).toString(), Buffer.from(value).toString());
    }
  }

  /** Throws `Denied` unless the plugin may send a request to `url`. */
  check(url) {
    checkForbidden(url);
    const origin = url.origin;
    const allowed = this.rules.some((rule) => {
      switch (rule.kind) {
        case 'any':
          return true;
        case 'runtime':
          return origin === this.runtimeOrigin;
        case 'agents':
          return this.agents.has(origin);
        case 'callbacks':
          return this.callbackCount.has(origin);
        default:
          return matchesPattern(rule, url);
      }
    });
    if (!allowed) {
      throw new Denied(
        `${origin} is not an allowed destination (the plugin may reach the runtime API, ` +
          'the agent servers it reports, registered event callbacks and [plugin] allowed_hosts)',
      );
    }
  }

  /** Throws `Denied` unless a user may register an event callback at `url`. */
  checkCallback(url) {
    checkForbidden(url);
    const allowed = this.rules.some((r) => r.kind === 'any' || r.kind === 'callbacks' || (r.kind === 'host' && matchesPattern(r, url)));
    if (!allowed) throw new Denied(`${url.origin} is not allowed by this server's [plugin] allowed_hosts`);
  }

  /** Learn the agent origins in a runtime API answer: every string `url`, at any depth up to 4. */
  learnFromRuntime(body) {
    if (!this.learnsAgents || !body.includes('"url"')) return;
    let json;
    try {
      json = JSON.parse(Buffer.from(body).toString());
    } catch {
      return;
    }
    const origins = [];
    collectUrlOrigins(json, 0, origins);
    if (origins.length === 0) return;
    this.clock += 1;
    for (const o of origins) this.agents.set(o, this.clock);
    if (this.agents.size > MAX_LEARNED) {
      const ages = [...this.agents.values()].sort((a, b) => a - b);
      const cutoff = ages[ages.length >> 1];
      for (const [o, seen] of this.agents) if (seen <= cutoff) this.agents.delete(o);
    }
  }

  remember(id, origin) {
    this.forget(id);
    this.callbackById.set(id, origin);
    this.callbackCount.set(origin, (this.callbackCount.get(origin) ?? 0) + 1);
  }

  forget(id) {
    const old = this.callbackById.get(id);
    if (old === undefined) return;
    this.callbackById.delete(id);
    const n = (this.callbackCount.get(old) ?? 1) - 1;
    if (n <= 0) this.callbackCount.delete(old);
    else this.callbackCount.set(old, n);
  }

  /** Record a registered callback's origin, durably, before the plugin's `create`. */
  async addCallback(id, url) {
    const origin = url.origin;
    await this.store.hostCommit([{ tag: 'put', val: { table: CALLBACK_TABLE, key: Buffer.from(id), value: Buffer.from(origin) } }]);
    this.remember(id, origin);
  }

  async removeCallback(id) {
    await this.store.hostCommit([{ tag: 'delete', val: { table: CALLBACK_TABLE, key: Buffer.from(id) } }]);
    this.forget(id);
  }
}

function collectUrlOrigins(value, depth, out) {
  if (depth > 4 || value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    for (const v of value) collectUrlOrigins(v, depth + 1, out);
    return;
  }
  for (const [key, v] of Object.entries(value)) {
    if (key === 'url' && typeof v === 'string') {
      try {
        const u = new URL(v);
        if (u.protocol === 'http:' || u.protocol === 'https:') out.push(u.origin);
      } catch {
        // Not a URL: nothing to learn.
      }
    } else collectUrlOrigins(v, depth + 1, out);
  }
}

/**
 * A DNS lookup (for `net.connect`) that drops forbidden addresses from every
 * answer, so a name resolving to the metadata service is refused too.
 */
export function policyLookup(hostname, options, callback) {
  dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err);
    const allowed = addresses.filter((a) => !isForbidden(a.address));
    if (allowed.length === 0) {
      const e = new Denied(`${hostname} resolves only to addresses the egress policy forbids (or to none)`);
      return callback(/** @type {NodeJS.ErrnoException} */ (e));
    }
    if (options?.all) callback(null, allowed);
    else callback(null, allowed[0].address, allowed[0].family);
  });
}
