// The `http` import: what may leave the process, decided by the host.
//
// Every request counts against the call's budget (`budget.js`), passes the
// egress policy (`egress.js`), is bounded by a deadline (the plugin's
// `timeout-ms`, capped at the host's) and a response size, and gets the
// runtime API key only when it names that credential *and* its URL is on the
// configured runtime API. Callback bodies are signed with the callback's
// secret. Runtime API answers teach the policy where the agent servers are.
// The transport (`transport.js`, or an embedder's) only moves bytes.
//
// Invariants:
// - The plugin never holds the runtime API key or a callback secret, and no
//   error text carries a header value.
// - Batches of one call share one bound on requests in flight; requests still
//   on the wire when the call ends are abandoned (`CallHttp.close`), their
//   connections and timers released.

import { Denied } from './egress.js';
import { HttpFailure } from './transport.js';

/** Most requests one batch accepts. */
const MAX_BATCH = 10_000;
/** Most batches open at once in one call. */
const MAX_OPEN_BATCHES = 8;
/** Why a call's requests are abandoned (a constant: `abort()` without one builds a DOMException, stack and all, on every call). */
const CALL_OVER = Object.freeze({ reason: 'the plugin call is over' });

const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Visible ASCII, spaces and tabs, and obs-text; no control characters.
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** A counting semaphore. */
export class Semaphore {
  constructor(permits) {
    this.permits = permits;
    /** @type {(() => void)[]} */
    this.waiting = [];
  }

  async acquire() {
    if (this.permits > 0) this.permits -= 1;
    else await new Promise((resolve) => this.waiting.push(resolve));
    return () => {
      const next = this.waiting.shift();
      if (next) next();
      else this.permits += 1;
    };
  }
}

export class HttpImport {
  /**
   * @param {{
   *   runtimeUrl: string, runtimeApiKey: string,
   *   policy: import('./egress.js').EgressPolicy, hostKey: import('../host-key.js').HostKey,
   *   transport: import('../index.js').HttpTransport,
   *   timeoutMs: number, maxResponseBytes: number, concurrency: number,
   * }} options
   */
  constructor(options) {
    this.runtimeBase = new URL(`${options.runtimeUrl}/`).href;
    Object.defineProperty(this, 'runtimeApiKey', { value: options.runtimeApiKey, enumerable: false });
    this.policy = options.policy;
    this.hostKey = options.hostKey;
    this.transport = options.transport;
    this.timeoutMs = options.timeoutMs;
    this.maxResponseBytes = options.maxResponseBytes;
    this.concurrency = options.concurrency;
  }

  /**
   * One request, as the plugin asked for it; rejects with an `HttpFailure`.
   * `ended` (the call's end) abandons it: its deadline timer and its
   * connection are released.
   * @param {import('../index.js').HttpRequest} request
   * @param {AbortSignal} [ended]
   * @returns {Promise<import('../index.js').HttpResponse>}
   */
  async send(request, ended) {
    let url;
    try {
      url = new URL(request.url);
    } catch {
      throw new HttpFailure('invalid-request', `invalid URL '${request.url}': relative URL without a base`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new HttpFailure('invalid-request', `unsupported scheme in '${url.href}'`);
    }
    try {
      this.policy.check(url);
    } catch (e) {
      if (e instanceof Denied) throw new HttpFailure('denied', e.message);
      throw e;
    }
    const timeoutMs = request.timeoutMs === undefined ? this.timeoutMs : Math.min(request.timeoutMs, this.timeoutMs);
    const headers = [];
    for (const [name, value] of request.headers) {
      if (!HEADER_NAME.test(name)) throw new HttpFailure('invalid-request', `invalid header name '${name}'`);
      if (!HEADER_VALUE.test(value)) throw new HttpFailure('invalid-request', `invalid value for header '${name}'`);
      headers.push([name, value]);
    }
    const toRuntime = request.credential.tag === 'runtime-api';
    if (toRuntime) {
      if (!url.href.startsWith(this.runtimeBase)) {
        throw new HttpFailure('denied', `the runtime API credential is only sent to the runtime API, not to ${url.origin}`);
      }
      headers.push(['x-api-key', this.runtimeApiKey]);
    } else if (request.credential.tag === 'callback-signature') {
      headers.push(['x-sandboxd-signature', this.hostKey.signature(request.credential.val, request.body ?? new Uint8Array())]);
    }

    const deadline = new AbortController();
    let timer;
    let onEnd = () => {};
    const expired = new Promise((_, reject) => {
      timer = setTimeout(() => {
        deadline.abort();
        reject(new HttpFailure('timeout'));
      }, timeoutMs);
      onEnd = () => {
        deadline.abort();
        reject(new HttpFailure('transport', 'the plugin call is over'));
      };
      if (ended?.aborted) onEnd();
      ended?.addEventListener('abort', onEnd, { once: true });
    });
    let response;
    try {
      response = await Promise.race([
        this.transport.send({
          method: request.method.toUpperCase(),
          url: url.href,
          headers,
          body: request.body,
          signal: deadline.signal,
          maxResponseBytes: this.maxResponseBytes,
        }),
        expired,
      ]);
    } catch (e) {
      if (e instanceof HttpFailure) throw e;
      // A transport that fails otherwise: its text, never a header value.
      throw new HttpFailure('transport', e instanceof Error ? e.message : String(e));
    } finally {
      clearTimeout(timer);
      ended?.removeEventListener('abort', onEnd);
    }
    if (response.body.length > this.maxResponseBytes) throw new HttpFailure('too-large');
    if (toRuntime && response.status >= 200 && response.status < 300) this.policy.learnFromRuntime(response.body);
    return response;
  }

  /** The outcome of one request as the WIT's `result`. */
  async outcome(request, limit, ended) {
    const release = await limit.acquire();
    try {
      return { tag: 'ok', val: await this.send(request, ended) };
    } catch (e) {
      if (e instanceof HttpFailure) return { tag: 'err', val: e.payload };
      throw e;
    } finally {
      release();
    }
  }

  /**
   * All requests, at most `limit`'s permits in flight, outcomes in order.
   * @param {import('../index.js').HttpRequest[]} requests
   * @param {Semaphore} limit
   * @param {AbortSignal} [ended]
   */
  async sendBatch(requests, limit, ended) {
    if (requests.length > MAX_BATCH) {
      const val = `a batch of ${requests.length} requests exceeds the limit of ${MAX_BATCH}`;
      return requests.map(() => ({ tag: 'err', val: { tag: 'denied', val } }));
    }
    return Promise.all(requests.map((r) => this.outcome(r, limit, ended)));
  }

  /** The HTTP state of one plugin call. */
  forCall() {
    return new CallHttp(this);
  }
}

/** One call's batches: started and not yet finished. */
export class CallHttp {
  /** @param {HttpImport} http */
  constructor(http) {
    this.http = http;
    this.limit = new Semaphore(http.concurrency);
    /** @type {AbortController | undefined} aborted when the call ends (made on first use). */
    this.ended = undefined;
    this.next = 0;
    /** @type {Map<number, Promise<unknown[]>>} */
    this.open = new Map();
  }

  /** Aborted when the call ends: its requests still on the wire are abandoned. */
  get signal() {
    this.ended ??= new AbortController();
    return this.ended.signal;
  }

  startBatch(requests) {
    if (this.open.size >= MAX_OPEN_BATCHES) {
      throw new HttpFailure('denied', `at most ${MAX_OPEN_BATCHES} batches may be open at once`);
    }
    const task = this.http.sendBatch(requests, this.limit, this.signal);
    // Answered when finished; a batch never finished must not be an unhandled rejection.
    task.catch(() => {});
    const id = this.next;
    this.next = (this.next + 1) >>> 0;
    this.open.set(id, task);
    return id;
  }

  async finishBatch(id) {
    const task = this.open.get(id);
    if (!task) throw new HttpFailure('invalid-request', `no open batch ${id}`);
    this.open.delete(id);
    try {
      return await task;
    } catch (e) {
      throw new HttpFailure('transport', `the batch was lost: ${e instanceof Error ? e.message : e}`);
    }
  }

  /** The call is over: nobody will read the answers; abandon what is on the wire. */
  close() {
    this.open.clear();
    this.ended?.abort(CALL_OVER);
  }
}
