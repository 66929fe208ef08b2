// The default HTTP transport: `node:http` and `node:https` with keep-alive
// agents, a connect timeout, a response size cap read as it streams, and DNS
// answers filtered by the egress policy (`policyLookup`). It knows nothing of
// credentials or of where requests may go: `http.js` decides that first.
//
// A transport's contract (any embedder's own, too): `send(request)` resolves
// to `{ status, headers, body }` with lower-case header names, or rejects with
// an `HttpFailure` naming the WIT `http-error` case. It stops at
// `request.signal` (the host's deadline) and at `request.maxResponseBytes`.

import http from 'node:http';
import https from 'node:https';
import { Denied, policyLookup } from './egress.js';

/** An `http-error` of the contract: `timeout`, `connect`, `denied`, `invalid-request`, `too-large`, `transport`. */
export class HttpFailure extends Error {
  /**
   * @param {'timeout' | 'connect' | 'denied' | 'invalid-request' | 'too-large' | 'transport'} tag
   * @param {string} [val]
   */
  constructor(tag, val) {
    super(val ?? tag);
    this.tag = tag;
    this.val = val;
  }

  /** The WIT value the plugin receives. */
  get payload() {
    return this.val === undefined ? { tag: this.tag } : { tag: this.tag, val: this.val };
  }
}

/** What the OS says, as the Rust host's client words it. */
const OS_ERRORS = {
  ECONNREFUSED: 'Connection refused (os error 111)',
  ECONNRESET: 'Connection reset by peer (os error 104)',
  EHOSTUNREACH: 'No route to host (os error 113)',
  ENETUNREACH: 'Network is unreachable (os error 101)',
  EPIPE: 'Broken pipe (os error 32)',
};

/** @param {unknown} e @param {string} url @param {boolean} connected */
function failure(e, url, connected) {
  if (e instanceof HttpFailure) return e;
  const err = /** @type {NodeJS.ErrnoException} */ (e);
  const what = `error sending request for url (${url})`;
  if (err instanceof Denied) return new HttpFailure('connect', `${what}: client error (Connect): dns error: ${err.message}`);
  const os = OS_ERRORS[err.code ?? ''] ?? err.message;
  if (!connected) {
    if (err.code === 'ENOTFOUND' || err.code === 'EAI_AGAIN') {
      return new HttpFailure('connect', `${what}: client error (Connect): dns error: failed to lookup address information: ${err.message}`);
    }
    return new HttpFailure('connect', `${what}: client error (Connect): tcp connect error: ${os}`);
  }
  return new HttpFailure('transport', `${what}: connection error: ${os}`);
}

/**
 * The default transport.
 * @param {{ connectTimeoutMs?: number, userAgent?: string }} [options]
 * @returns {import('../index.js').HttpTransport}
 */
export function nodeTransport(options = {}) {
  const connectTimeoutMs = options.connectTimeoutMs ?? 5000;
  const userAgent = options.userAgent ?? 'sandboxd/0.1.0';
  const agentOptions = { keepAlive: true, maxFreeSockets: 256, timeout: 60_000, lookup: policyLookup, noDelay: true };
  const agents = { 'http:': new http.Agent(agentOptions), 'https:': new https.Agent(agentOptions) };
  return {
    send(request) {
      const url = new URL(request.url);
      const mod = url.protocol === 'https:' ? https : http;
      /** @type {Record<string, string | string[]>} */
      const headers = { 'user-agent': userAgent, accept: '*/*' };
      const seen = new Set();
      for (const [name, value] of request.headers) {
        const key = name.toLowerCase();
        if (seen.has(key)) headers[key] = [headers[key], value].flat();
        else headers[key] = value;
        seen.add(key);
      }
      if (request.body) headers['content-length'] = String(request.body.length);
      return new Promise((resolve, reject) => {
        let connected = false;
        let settled = false;
        const done = (f, v) => {
          if (!settled) {
            settled = true;
            f(v);
          }
        };
        const req = mod.request(url, { method: request.method, headers, agent: agents[url.protocol], signal: request.signal });
        const connectTimer = setTimeout(() => {
          if (!connected) {
            req.destroy();
            done(reject, new HttpFailure('connect', `error sending request for url (${request.url}): client error (Connect): tcp connect error: deadline has elapsed`));
          }
        }, connectTimeoutMs);
        req.on('socket', (socket) => {
          const onConnect = () => {
            connected = true;
            clearTimeout(connectTimer);
          };
          if (socket.connecting) socket.once('connect', onConnect);
          else onConnect();
        });
        req.on('error', (e) => {
          clearTimeout(connectTimer);
          if (request.signal?.aborted) done(reject, new HttpFailure('timeout'));
          else done(reject, failure(e, request.url, connected));
        });
        req.on('response', (res) => {
          const chunks = [];
          let size = 0;
          res.on('data', (chunk) => {
            size += chunk.length;
            if (size > request.maxResponseBytes) {
              done(reject, new HttpFailure('too-large'));
              res.destroy();
              return;
            }
            chunks.push(chunk);
          });
          res.on('error', (e) => done(reject, request.signal?.aborted ? new HttpFailure('timeout') : failure(e, request.url, true)));
          res.on('aborted', () => done(reject, failure(Object.assign(new Error('connection closed before message completed'), {}), request.url, true)));
          res.on('end', () => {
            const out = [];
            for (let i = 0; i < res.rawHeaders.length; i += 2) out.push([res.rawHeaders[i].toLowerCase(), res.rawHeaders[i + 1]]);
            done(resolve, { status: res.statusCode ?? 0, headers: out, body: Buffer.concat(chunks) });
          });
        });
        req.end(request.body ? Buffer.from(request.body.buffer, request.body.byteOffset, request.body.byteLength) : undefined);
      });
    },
    close() {
      agents['http:'].destroy();
      agents['https:'].destroy();
    },
  };
}
