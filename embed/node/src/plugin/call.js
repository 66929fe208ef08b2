// One plugin call: a fresh instance, its imports bound to this call alone,
// a deadline, a budget, and the failures turned into `CallError`s.
//
// Invariants:
// - Whatever the plugin does while it waits on an import, the call ends by
//   its deadline with a value or an error; past it, every import the instance
//   still makes traps, so it writes nothing more.
// - A trap, a timeout or an exhausted limit fails this call only: the next
//   call gets a new instance with its own imports (jco keeps all of an
//   instance's state inside its `instantiate`).
// - At most `maxInstances` calls run at once; more wait.
//
// What V8 cannot do that wasmtime does: interrupt a plugin that computes
// without ever calling an import (there is no epoch interruption), or refuse a
// memory growth as it happens (it is seen at the next import). See the README.

import { randomBytes } from 'node:crypto';
import { LimitExceeded, Meter } from '../imports/budget.js';
import { Semaphore } from '../imports/http.js';
import { HttpFailure } from '../imports/transport.js';
import { StorageError } from '../storage/limits.js';
import { clean } from '../log.js';
import { clockImports } from './clock.js';
import { WASI_IMPORTS } from './wasi.js';

/** The plugin's `error` variant: the export returned `err`. */
export class PluginError extends Error {
  /**
   * @param {'not-found' | 'invalid-input' | 'conflict' | 'unauthorized' | 'upstream' | 'unavailable' | 'storage' | 'internal'} tag
   * @param {string} detail
   * @param {number} [retryAfterSecs] for `unavailable`: seconds to wait before retrying
   */
  constructor(tag, detail, retryAfterSecs) {
    super(detail);
    this.tag = tag;
    this.retryAfterSecs = retryAfterSecs;
  }
}

/** No answer from the plugin: `timeout`, `limit` or `trap`. */
export class CallError extends Error {
  /** @param {'timeout' | 'limit' | 'trap'} kind @param {string} message */
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

const ERROR_TAGS = new Set(['not-found', 'invalid-input', 'conflict', 'unauthorized', 'upstream', 'unavailable', 'storage', 'internal']);

/** A short random id to find a failure's log line from the caller's error. */
export const errorId = () => randomBytes(6).toString('hex');

/** `90s`, `1.5s`, `250ms`: a duration as the Rust host prints one. */
export function duration(ms) {
  if (ms >= 1000) return `${Number((ms / 1000).toFixed(9))}s`;
  return `${Number(ms.toFixed(6))}ms`;
}

class Expired extends Error {}

/** The state of one call: its budget, its batches, whether it is still on. */
class Call {
  constructor(services, user, limits) {
    this.services = services;
    this.user = user;
    this.meter = new Meter(limits.budget);
    this.http = services.http.forCall();
    this.alive = true;
    /** @type {WebAssembly.Memory[]} */
    this.memories = [];
  }

  /** Every import passes here first. */
  enter() {
    if (!this.alive) throw new Expired('the plugin call is over');
    for (const m of this.memories) this.meter.memory(m.buffer.byteLength);
  }

  end() {
    this.alive = false;
    this.http.close();
  }
}

/** Run `f`, turning the host's typed failures into the WIT values jco lowers. */
async function wit(call, f) {
  call.enter();
  try {
    return await f();
  } catch (e) {
    if (e instanceof StorageError || e instanceof HttpFailure) throw e.payload;
    throw e;
  }
}

/** The import object of one call. */
function imports(call, pluginVersion) {
  const { http, store, settings, logger } = call.services;
  return {
    'sandboxd:plugin/http': {
      send: (request) =>
        wit(call, () => {
          call.meter.requests(1);
          return http.send(request, call.http.signal);
        }),
      sendBatch: (requests) =>
        wit(call, () => {
          call.meter.requests(requests.length);
          return http.sendBatch(requests, call.http.limit, call.http.signal);
        }),
      startBatch: (requests) => {
        call.enter();
        call.meter.requests(requests.length);
        try {
          return call.http.startBatch(requests);
        } catch (e) {
          if (e instanceof HttpFailure) throw e.payload;
          throw e;
        }
      },
      finishBatch: (id) => wit(call, () => call.http.finishBatch(id)),
    },
    'sandboxd:plugin/storage': {
      get: (table, key) => wit(call, () => store.get(table, key)),
      getMany: (table, keys) => wit(call, () => store.getMany(table, keys)),
      scan: (request) => wit(call, () => store.scan(request)),
      commit: (ops) => wit(call, () => metered(call, ops, () => store.commit(ops))),
      // Visible at once, durable with the next commit (contract 0.4.1).
      commitRelaxed: (ops) => wit(call, () => metered(call, ops, () => store.commit(ops, { durable: false }))),
    },
    'sandboxd:plugin/log': {
      log(level, message, fields) {
        call.enter();
        if (!call.meter.logLine()) return;
        const shown = Object.fromEntries(fields.slice(0, 32).map(([k, v]) => [clean(k), clean(v)]));
        logger.log(level, clean(message), { ...shown, plugin: pluginVersion }, 'plugin');
      },
    },
    'sandboxd:plugin/settings': { get: () => settings },
    'sandboxd:plugin/user-context': { currentUser: () => call.user },
    'sandboxd:plugin/types': {},
    ...WASI_IMPORTS,
    // Its waits suspend it alone, and end with it.
    ...clockImports(call.http.signal),
  };
}

/** Runs calls on the current plugin within limits. */
export class Runner {
  /** @param {{ services: object, maxInstances: number }} options */
  constructor({ services, maxInstances }) {
    this.services = services;
    this.slots = new Semaphore(maxInstances);
  }

  /**
   * Run `f` on a fresh instance of `plugin` for `user`, within `limits`.
   * @template R
   * @param {import('./load.js').LoadedPlugin} plugin
   * @param {{ timeoutMs: number, budget: import('../imports/budget.js').Budget }} limits
   * @param {string | undefined} user
   * @param {(exports: any) => Promise<R>} f
   * @returns {Promise<R>}
   */
  async run(plugin, limits, user, f) {
    const release = await this.slots.acquire();
    const call = new Call(this.services, user, limits);
    const logger = this.services.logger;
    let timer;
    const deadline = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new CallError('timeout', `the plugin did not answer within ${duration(limits.timeoutMs)}`)), limits.timeoutMs);
    });
    const instantiateCore = async (module, importObject) => {
      const instance = await WebAssembly.instantiate(module, importObject);
      for (const value of Object.values(instance.exports)) if (value instanceof WebAssembly.Memory) call.memories.push(value);
      return instance;
    };
    const work = (async () => {
      const exports = await plugin.instantiate(imports(call, plugin.pluginVersion), instantiateCore);
      const value = await f(exports);
      call.enter();
      return value;
    })();
    work.catch(() => {});
    try {
      return await Promise.race([work, deadline]);
    } catch (e) {
      throw classify(e, plugin, logger);
    } finally {
      clearTimeout(timer);
      call.end();
      release();
      const dropped = call.meter.droppedLogLines();
      if (dropped > 0) logger.log('warn', 'the call logged past its budget; lines were dropped', { plugin: plugin.pluginVersion, dropped }, 'plugin');
    }
  }
}

/** What a failed call's exception means. */
function classify(e, plugin, logger) {
  if (e instanceof CallError) {
    if (e.kind === 'timeout') logger.log('warn', 'plugin call stopped at its deadline', { plugin: plugin.pluginVersion });
    return e;
  }
  const payload = e?.payload ?? e;
  if (payload && typeof payload === 'object' && !(payload instanceof Error) && ERROR_TAGS.has(payload.tag)) {
    // `unavailable` carries a record (contract 0.5.0): the detail, and when to retry.
    if (payload.tag === 'unavailable') return new PluginError('unavailable', String(payload.val?.detail), payload.val?.retryAfterSecs);
    return new PluginError(payload.tag, String(payload.val));
  }
  const id = errorId();
  if (e instanceof LimitExceeded) {
    logger.log('error', 'plugin call stopped at its limit', { error_id: id, plugin: plugin.pluginVersion, limit: e.message });
    return new CallError('limit', `${e.message} (error id ${id})`);
  }
  logger.log('error', 'plugin call trapped', { error_id: id, plugin: plugin.pluginVersion, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  return new CallError('trap', `the plugin failed (error id ${id})`);
}

/** Charge a commit's bytes to the call's write budget, then run it. */
function metered(call, ops, commit) {
  let written = 0;
  for (const op of ops) if (op.tag === 'put') written += op.val.key.length + op.val.value.length;
  call.meter.writes(written);
  return commit();
}
