// sandboxd's logic on Node.js: the plugin component the Rust host embeds,
// run by this library with every import of `wit/` implemented in JavaScript.
//
//   const sd = await createSandboxd({ runtime: { apiUrl, apiKey } });
//   const alice = sd.as({ user: 'alice' });
//   const sandbox = await alice.sandboxes.start();
//
// Each method call gets a fresh instance of the plugin (as on the Rust host),
// so one failing call never poisons another. Storage and the HTTP transport
// are adapters (`MemoryStore`, `SqliteStore`, `nodeTransport`, or the
// embedder's own); credentials, the egress policy, budgets and deadlines stay
// with the host, whatever the adapters are.

import { randomBytes } from 'node:crypto';
import { EgressPolicy, DEFAULT_ALLOWED_HOSTS, parseRule } from './imports/egress.js';
import { HttpImport } from './imports/http.js';
import { nodeTransport, HttpFailure } from './imports/transport.js';
import { HostKey } from './host-key.js';
import { Logger } from './log.js';
import { prepare } from './plugin/load.js';
import { defaultPluginPath } from './plugin/locate.js';
import { CONTRACT_VERSION } from './plugin/contract.js';
import { CallError, PluginError, Runner } from './plugin/call.js';
import { pluginSettings, microsNow } from './settings.js';
import { CheckedStore } from './storage/checked.js';
import { MemoryStore } from './storage/memory.js';
import { SqliteStore } from './storage/sqlite.js';
import { StorageError } from './storage/limits.js';

export { MemoryStore, SqliteStore, StorageError, nodeTransport, HttpFailure, HostKey, Logger, PluginError, CallError, CONTRACT_VERSION, defaultPluginPath };

/**
 * The part of the background work (`types.share`) of a host that shares its
 * store with no other: every bucket, as one bucket of one. What the Rust host
 * passes when it is not one of several replicas (`host/src/cluster/`), and
 * what `poll`, `deliverDue` and `reconcile` pass unless told otherwise.
 */
export const LONE_SHARE = Object.freeze({ of: 1, buckets: Object.freeze([0]) });

/** A share as the plugin takes it: `of` 1 to 65535, buckets below `of`. */
function checkShare(share) {
  const ok =
    share !== null &&
    typeof share === 'object' &&
    Number.isInteger(share.of) &&
    share.of >= 1 &&
    share.of <= 0xffff &&
    Array.isArray(share.buckets) &&
    share.buckets.every((b) => Number.isInteger(b) && b >= 0 && b < share.of);
  if (!ok) throw new TypeError('a share is { of: 1..65535, buckets: [whole numbers below of] }');
  return { of: share.of, buckets: [...share.buckets] };
}

/** Defaults, each the Rust host's (see `host/src/config/`). */
const DEFAULTS = {
  callTimeoutMs: 90_000,
  pollTimeoutMs: 600_000,
  memoryLimitBytes: 64 << 20,
  maxInstances: 256,
  callHttpRequests: 1_000,
  pollHttpRequests: 1_000_000,
  callWriteBytes: 64 << 20,
  pollWriteBytes: 4 * 2 ** 30,
  callLogLines: 200,
  pollLogLines: 20_000,
  httpTimeoutMs: 30_000,
  connectTimeoutMs: 5_000,
  maxResponseBytes: 16 << 20,
  concurrency: 32,
};

/**
 * Start a host of the plugin.
 * @param {import('./index.js').SandboxdOptions} options
 * @returns {Promise<Sandboxd>}
 */
export async function createSandboxd(options) {
  if (!options?.runtime?.apiUrl) throw new Error('runtime.apiUrl is required');
  const logger = options.logger ?? new Logger({ filter: process.env.SANDBOXD_LOG });
  const limits = { ...DEFAULTS, ...options.limits };
  const store = new CheckedStore(options.storage ?? new MemoryStore());
  const hostKey = options.hostKey ?? HostKey.ephemeral();
  const rules = (options.allowedHosts ?? DEFAULT_ALLOWED_HOSTS).map((r) => parseRule(r));
  const policy = new EgressPolicy(rules, options.runtime.apiUrl, store);
  await policy.load();
  const http = new HttpImport({
    runtimeUrl: options.runtime.apiUrl.replace(/\/+$/, ''),
    runtimeApiKey: options.runtime.apiKey ?? '',
    policy,
    hostKey,
    transport: options.transport ?? nodeTransport({ connectTimeoutMs: options.http?.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs }),
    timeoutMs: options.http?.timeoutMs ?? DEFAULTS.httpTimeoutMs,
    maxResponseBytes: options.http?.maxResponseBytes ?? DEFAULTS.maxResponseBytes,
    concurrency: options.sync?.concurrency ?? DEFAULTS.concurrency,
  });
  const settings = pluginSettings(options, microsNow());
  const services = { http, store, settings, logger };
  const runner = new Runner({ services, maxInstances: limits.maxInstances });
  const api = {
    timeoutMs: limits.callTimeoutMs,
    budget: { memoryBytes: limits.memoryLimitBytes, httpRequests: limits.callHttpRequests, writeBytes: limits.callWriteBytes, logLines: limits.callLogLines },
  };
  const background = {
    timeoutMs: limits.pollTimeoutMs,
    budget: { memoryBytes: limits.memoryLimitBytes, httpRequests: limits.pollHttpRequests, writeBytes: limits.pollWriteBytes, logLines: limits.pollLogLines },
  };

  const source = options.plugin instanceof Uint8Array ? { bytes: options.plugin } : { path: options.plugin ?? defaultPluginPath() };
  const prepared = await prepare(source);
  const candidate = { ...prepared, pluginVersion: '(loading)', loadedAt: new Date() };
  // The smoke test: `info`, then a page of specs, on a fresh instance.
  let info;
  try {
    info = await runner.run(candidate, api, undefined, async (p) => {
      const i = await p.info.info();
      await p.specs.search(undefined, 1);
      return i;
    });
  } catch (e) {
    const why = e instanceof PluginError ? `specs.search failed: ${e.tag}: ${e.message}` : e instanceof Error ? e.message : String(e);
    throw new Error(`cannot load the plugin (${prepared.source}): the component failed its smoke test: ${why}`);
  }
  if (info.contractVersion !== prepared.declared) {
    throw new Error(
      `cannot load the plugin (${prepared.source}): the component failed its smoke test: ` +
        `info declares contract ${info.contractVersion} but the component's interfaces are ${prepared.declared}`,
    );
  }
  const plugin = { ...candidate, pluginVersion: info.pluginVersion, loadedAt: new Date() };
  return new Sandboxd({ plugin, runner, api, background, policy, hostKey, store, http, logger, limits });
}

/** A running host of one plugin. */
export class Sandboxd {
  constructor(parts) {
    this.parts = parts;
    /** What runs: versions, digest, source. */
    this.plugin = {
      pluginVersion: parts.plugin.pluginVersion,
      contractVersion: parts.plugin.contractVersion,
      sha256: parts.plugin.sha256,
      source: parts.plugin.source,
      loadedAt: parts.plugin.loadedAt,
      transpileMillis: parts.plugin.transpileMillis,
    };
    /** The limits calls run within (the defaults, or the options'). */
    this.limits = parts.limits;
  }

  /** One call on a fresh instance. */
  call(limits, user, f) {
    return this.parts.runner.run(this.parts.plugin, limits, user, f);
  }

  /**
   * The exports, scoped to a caller: `{ user: 'alice' }` sees only alice's
   * sandboxes; `{}` (an admin, the single user of an unauthenticated install)
   * sees all.
   * @param {{ user?: string }} [caller]
   */
  as(caller = {}) {
    const user = caller.user;
    const { api, policy, hostKey } = this.parts;
    const c = (f) => this.call(api, user, f);
    return {
      sandboxes: {
        search: (pageId, limit = 100) => c((p) => p.sandboxes.search(pageId ?? undefined, limit)),
        get: (id) => c((p) => p.sandboxes.get(id)),
        batchGet: (ids) => c((p) => p.sandboxes.batchGet(ids)),
        start: (specId, sandboxId) => c((p) => p.sandboxes.start(specId ?? undefined, sandboxId ?? undefined)),
        pause: (id) => c((p) => p.sandboxes.pause(id)),
        resume: (id) => c((p) => p.sandboxes.resume(id)),
        delete: (id) => c((p) => p.sandboxes.delete(id)),
        getBySessionKey: (key) => c((p) => p.sandboxes.getBySessionKey(key)),
        reconcile: async (orphans, stuckBeforeUs, share = LONE_SHARE) => {
          const s = checkShare(share);
          return c((p) => p.sandboxes.reconcile(orphans, BigInt(stuckBeforeUs), s));
        },
      },
      specs: {
        search: (pageId, limit = 100) => c((p) => p.specs.search(pageId ?? undefined, limit)),
        batchGet: (ids) => c((p) => p.specs.batchGet(ids)),
      },
      sync: {
        ingestConversation: (sessionApiKey, body) => c((p) => p.sync.ingestConversation(sessionApiKey, toBytes(body))),
        ingestEvents: (sessionApiKey, conversationId, body) => c((p) => p.sync.ingestEvents(sessionApiKey, conversationId, toBytes(body))),
      },
      conversations: {
        search: (sandboxId, pageId, limit = 100) => c((p) => p.conversations.search(sandboxId ?? undefined, pageId ?? undefined, limit)),
        get: (id) => c((p) => p.conversations.get(id)),
        searchEvents: async (conversationId, query) => {
          const q = eventQuery(query);
          return c((p) => p.conversations.searchEvents(conversationId, q));
        },
        streamEvents: (conversationId, afterEventId, limit = 100) =>
          c((p) => p.conversations.streamEvents(conversationId, afterEventId ?? undefined, limit)),
        streamStart: (conversationId, lastEventId) => c((p) => p.conversations.streamStart(conversationId, lastEventId ?? undefined)),
      },
      callbacks: {
        /** Subscribe; the host picks the id, records the URL's origin first, and returns the secret (shown once). */
        create: async ({ url, conversationId, eventKinds }) => {
          let parsed;
          try {
            parsed = new URL(url);
          } catch {
            throw new PluginError('invalid-input', `'${url}' is not a URL`);
          }
          if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new PluginError('invalid-input', `'${url}' must use http or https`);
          try {
            policy.checkCallback(parsed);
          } catch (e) {
            throw new PluginError('invalid-input', `callback URL refused: ${e instanceof Error ? e.message : e}`);
          }
          const id = randomBytes(16).toString('hex');
          await policy.addCallback(id, parsed);
          try {
            const cb = await c((p) => p.callbacks.create(id, url, conversationId ?? undefined, eventKinds ?? undefined));
            return { ...cb, secret: hostKey.secret(id) };
          } catch (e) {
            await policy.removeCallback(id).catch(() => {});
            throw e;
          }
        },
        all: () => c((p) => p.callbacks.all()),
        get: (id) => c((p) => p.callbacks.get(id)),
        delete: async (id) => {
          await c((p) => p.callbacks.delete(id));
          await policy.removeCallback(id);
        },
        deliveries: (callbackId, pageId, limit = 100) => c((p) => p.callbacks.deliveries(callbackId, pageId ?? undefined, limit)),
      },
      lifecycle: {
        history: (id, pageId, limit = 100) => c((p) => p.lifecycle.history(id, pageId ?? undefined, limit)),
      },
    };
  }

  /** One lifecycle policy pass over the sandboxes in `share`, with the background limits. */
  async lifecyclePass(share = LONE_SHARE) {
    const s = checkShare(share);
    return this.call(this.parts.background, undefined, (p) => p.lifecycle.pass(s));
  }

  /** Resume a paused sandbox because a request reached it (cause `wake`), with the background limits. */
  wake(id) {
    return this.call(this.parts.background, undefined, (p) => p.lifecycle.wake(id));
  }

  /** One poll cycle over every running sandbox in `share`, with the background limits. */
  async poll(share = LONE_SHARE) {
    const s = checkShare(share);
    return this.call(this.parts.background, undefined, (p) => p.sync.poll(s));
  }

  /** Send every callback delivery in `share` that is due, with the background limits. */
  async deliverDue(share = LONE_SHARE) {
    const s = checkShare(share);
    return this.call(this.parts.background, undefined, (p) => p.callbacks.deliverDue(s));
  }

  /** Compare the runtime API's `/list` with the store and repair what is in `share`, with the background limits. */
  async reconcile(orphans, stuckBeforeUs, share = LONE_SHARE) {
    const s = checkShare(share);
    return this.call(this.parts.background, undefined, (p) => p.sandboxes.reconcile(orphans, BigInt(stuckBeforeUs), s));
  }

  /** The plugin's `info`. */
  info() {
    return this.call(this.parts.api, undefined, (p) => p.info.info());
  }

  async close() {
    this.parts.http.transport.close?.();
    await this.parts.store.close();
  }
}

/** An `event-query` record: the contract's fields only, with their defaults. */
function eventQuery(q = {}) {
  if (q.afterEventId !== undefined) {
    // Contract 0.4.0 took it out of `event-query`: a stream follows arrival order, not timestamps.
    throw new TypeError('searchEvents has no afterEventId since contract 0.4.0; use conversations.streamEvents(conversationId, afterEventId, limit)');
  }
  return {
    pageId: q.pageId ?? undefined,
    limit: q.limit ?? 100,
    kind: q.kind ?? undefined,
    timestampGte: q.timestampGte ?? undefined,
    timestampLt: q.timestampLt ?? undefined,
    descending: q.descending ?? false,
  };
}

function toBytes(body) {
  return typeof body === 'string' ? Buffer.from(body) : body;
}
