// The thin server on the library: the Rust host's `/healthz`, the sandbox and
// spec routes of `/api/v1`, the conversation and event queries, the agent
// servers' webhooks and `POST /admin/sync/poll`, answered byte for byte as the
// Rust host answers them.
// Unknown paths get 404 and known paths with another method 405, in the same
// `{"detail": …}` shape; a trailing slash is ignored (`/a/` is `/a`).

import http from 'node:http';
import { Authenticator } from './auth.js';
import { ApiError, toApiError } from './errors.js';
import { Query } from './params.js';
import { match, size } from './routes.js';

/** How long a client may take to send a request (head and body). */
const REQUEST_TIMEOUT_MS = 30_000;

/** `2026-01-02T03:04:05Z`: RFC 3339 to the second. */
const rfc3339 = (d) => `${d.toISOString().slice(0, 19)}Z`;

function healthz(sd) {
  const p = sd.plugin;
  return JSON.stringify({
    status: 'ok',
    plugin_version: p.pluginVersion,
    contract_version: p.contractVersion,
    plugin_sha256: p.sha256,
    plugin_loaded_at: rfc3339(p.loadedAt),
  });
}

/** Read the whole body, at most `cap` bytes (413 beyond). */
function readBody(req, cap) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let n = 0;
    req.on('data', (c) => {
      n += c.length;
      if (n > cap) {
        reject(new ApiError(413, `the request body is larger than ${size(cap)}`));
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', (e) => reject(new ApiError(400, `could not read the request body: ${e.message}`)));
  });
}

const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * A path segment percent-decoded as the Rust host's router decodes one: `%XX`
 * escapes become bytes, anything else stays as written, and bytes that are not
 * UTF-8 are a 404 (no id of ours looks like that).
 */
function pathSegment(raw) {
  const bytes = [];
  for (let i = 0; i < raw.length; i++) {
    if (raw[i] === '%' && /^[0-9A-Fa-f]{2}$/.test(raw.slice(i + 1, i + 3))) {
      bytes.push(parseInt(raw.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(...Buffer.from(raw[i]));
  }
  try {
    return UTF8.decode(Uint8Array.from(bytes));
  } catch {
    throw new ApiError(404, 'Not Found (Invalid URL: Invalid UTF-8 in `id`)');
  }
}

function send(res, status, body, extra = {}) {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extra });
  res.end(body);
}

/**
 * Handle one request.
 * @param {import('../index.js').Sandboxd} sd
 * @param {Authenticator} auth
 * @param {import('../log.js').Logger} logger
 * @param {() => Promise<{ summary: import('../index.js').CycleSummary, millis: number }>} pollCycle
 */
async function handle(sd, auth, logger, pollCycle, req, res) {
  const raw = req.url ?? '/';
  const q = raw.indexOf('?');
  let path = q < 0 ? raw : raw.slice(0, q);
  if (path.length > 1) path = path.replace(/\/+$/, '') || '/';
  try {
    if (path === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') throw new ApiError(405, 'Method Not Allowed');
      return send(res, 200, healthz(sd));
    }
    const found = match(path);
    if (!found) throw new ApiError(404, 'Not Found');
    const route = found.routes.find((r) => r.method === req.method || (req.method === 'HEAD' && r.method === 'GET'));
    if (!route) throw new ApiError(405, 'Method Not Allowed');
    let id = '';
    let caller;
    const ctx = {
      caller: () => caller,
      query: new Query(q < 0 ? '' : raw.slice(q + 1)),
      get id() {
        return id;
      },
      body: (cap) => readBody(req, cap),
      headers: req.headers,
      pollCycle,
    };
    // Authentication first, so an unauthenticated caller learns only that.
    if (!route.path.startsWith('/api/v1/webhooks/')) caller = auth.authenticate(req.headers);
    if (found.rawId !== undefined) id = pathSegment(found.rawId);
    const body = await route.handle(sd, ctx);
    send(res, 200, body);
  } catch (e) {
    const err = toApiError(e, logger);
    const headers = err.status === 401 ? { 'www-authenticate': 'Bearer' } : {};
    if (err.retryAfterSecs !== undefined) headers['retry-after'] = String(err.retryAfterSecs);
    send(res, err.status, JSON.stringify({ detail: err.message }), headers);
  }
}

/**
 * Serve the API on `listen` until `close()`.
 * @param {import('../index.js').Sandboxd} sd
 * @param {{ listen: { host: string, port: number }, auth: { mode: string, keys: { key: string, userId?: string }[] }, logger: import('../log.js').Logger, pollCycle: () => Promise<{ summary: import('../index.js').CycleSummary, millis: number }> }} options
 *   `pollCycle`: one poll cycle that waits for the one running, if any (`Background#cycle`), for `POST /admin/sync/poll`.
 * @returns {Promise<{ url: string, close: () => Promise<void> }>}
 */
export async function serve(sd, { listen, auth, logger, pollCycle }) {
  const authenticator = new Authenticator(auth);
  const server = http.createServer({ requestTimeout: REQUEST_TIMEOUT_MS, headersTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: 75_000, noDelay: true }, (req, res) => {
    handle(sd, authenticator, logger, pollCycle, req, res).catch((e) => {
      logger.log('error', 'answering a request failed', { error: e instanceof Error ? e.message : String(e) });
      if (!res.headersSent) send(res, 500, '{"detail":"internal error"}');
      else res.destroy();
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => resolve(undefined));
  });
  const addr = /** @type {import('node:net').AddressInfo} */ (server.address());
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    url: `http://${host}:${addr.port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve(undefined));
        server.closeIdleConnections();
      }),
  };
}
