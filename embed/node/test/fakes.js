// Tiny peers for the library tests, on 127.0.0.1 ports the OS assigns: a
// runtime API (the calls sandboxd makes, with `X-API-Key` checked) that also
// serves one agent server per runtime under `/rt-…` (conversations and events
// for the poll cycle), and a recording echo server for the HTTP adapter.

import http from 'node:http';
import { randomBytes } from 'node:crypto';

const json = (res, status, body) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
};

async function body(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString();
}

/** Listen on a free loopback port; resolves to `{ url, server, close }`. */
export async function listen(handler) {
  const server = http.createServer((req, res) => {
    Promise.resolve(handler(req, res)).catch((e) => json(res, 500, { detail: String(e) }));
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address());
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(r);
      }),
  };
}

/** A runtime API with agent servers inside: `runtime.requests` records every call. */
export async function fakeRuntime(apiKey = 'runtime-key-0123456789') {
  const runtimes = new Map();
  const requests = [];
  /** Events each agent server holds, by runtime id. */
  const events = new Map();
  const fake = await listen(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    requests.push({ method: req.method, path: url.pathname, headers: req.headers });
    if (url.pathname.startsWith('/rt-')) return agent(req, res, url);
    if (req.headers['x-api-key'] !== apiKey) return json(res, 401, { detail: 'bad key' });
    const view = (r) => ({ ...r, url: `${fake.url}/${r.runtime_id}` });
    if (req.method === 'POST' && url.pathname === '/start') {
      const b = JSON.parse(await body(req));
      const r = { runtime_id: `rt-${randomBytes(6).toString('hex')}`, session_id: b.session_id, session_api_key: randomBytes(16).toString('hex'), status: 'running' };
      runtimes.set(b.session_id, r);
      return json(res, 200, view(r));
    }
    if (req.method === 'POST' && ['/stop', '/pause', '/resume'].includes(url.pathname)) {
      const b = JSON.parse(await body(req));
      const r = [...runtimes.values()].find((x) => x.runtime_id === b.runtime_id);
      if (!r) return json(res, 404, { detail: 'no runtime' });
      if (url.pathname === '/stop') runtimes.delete(r.session_id);
      if (url.pathname === '/pause') r.status = 'paused';
      if (url.pathname === '/resume') {
        r.status = 'running';
        r.session_api_key = randomBytes(16).toString('hex');
      }
      return json(res, 200, view(r));
    }
    if (req.method === 'GET' && url.pathname === '/list') {
      const all = [...runtimes.values()].map(view);
      return json(res, 200, { runtimes: all, total: all.length });
    }
    if (req.method === 'GET' && url.pathname === '/sessions/batch') {
      return json(res, 200, url.searchParams.getAll('ids').flatMap((id) => (runtimes.has(id) ? [view(runtimes.get(id))] : [])));
    }
    if (req.method === 'GET' && url.pathname.startsWith('/sessions/')) {
      const r = runtimes.get(decodeURIComponent(url.pathname.slice('/sessions/'.length)));
      return r ? json(res, 200, view(r)) : json(res, 404, { detail: 'no runtime' });
    }
    return json(res, 404, { detail: 'no route' });
  });

  /** An agent server with one conversation whose events are `events.get(rt)`. */
  function agent(req, res, url) {
    const [, rt, ...rest] = url.pathname.split('/');
    const r = [...runtimes.values()].find((x) => x.runtime_id === rt);
    if (!r || req.headers['x-session-api-key'] !== r.session_api_key) return json(res, 401, { detail: 'Unauthorized' });
    const path = `/${rest.join('/')}`;
    const conv = { id: '0a1b2c3d-0000-4000-8000-00000000000' + (rt.charCodeAt(4) % 10), execution_status: 'running', title: 'a task', created_at: '2026-01-01T00:00:00', updated_at: '2026-01-01T00:00:05' };
    const list = events.get(rt) ?? [];
    if (path === '/api/conversations/search') return json(res, 200, { items: list.length ? [conv] : [], next_page_id: null });
    if (path === `/api/conversations/${conv.id}` || path === `/api/conversations/${conv.id.replaceAll('-', '')}`) return json(res, 200, conv);
    if (path.endsWith('/events/search')) return json(res, 200, { items: list, next_page_id: null });
    return json(res, 404, { detail: 'Not Found' });
  }

  return { ...fake, apiKey, runtimes, requests, events };
}
