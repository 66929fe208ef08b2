// The routes: each parses its input, makes one plugin call and shapes the
// answer, as the Rust host's handlers do (`host/src/api/*.rs`). No rule of
// the service is decided here. Order inside a handler is the Rust host's:
// authentication, then the path, then the query, then the body.

import { ApiError } from './errors.js';
import { sessionKey } from './auth.js';
import { SUCCESS, documentText, listText, pageText, sandboxText, specText, statusChangeText } from './json.js';

/** Largest `ConversationInfo` a webhook may carry. */
const MAX_INFO_BYTES = 4 << 20;
/** Largest batch of events a webhook may carry. */
const MAX_EVENTS_BYTES = 16 << 20;

const documents = (page) => pageText(page.items.map(documentText), page.nextPageId);

/**
 * @typedef {{ caller: () => { user?: string }, query: import('./params.js').Query, id: string, body: (cap: number) => Promise<Buffer>, headers: Record<string, string | undefined>, pollCycle: () => Promise<{ summary: import('../index.js').CycleSummary, millis: number }> }} Ctx
 * @typedef {{ method: string, path: string, handle: (sd: import('../index.js').Sandboxd, ctx: Ctx) => Promise<string> }} Route
 */

/** @type {Route[]} */
export const ROUTES = [
  {
    method: 'GET',
    path: '/api/v1/sandboxes/search',
    handle: async (sd, c) => {
      const api = sd.as(c.caller());
      const page = await api.sandboxes.search(c.query.pageId(), c.query.limit());
      return pageText(page.items.map(sandboxText), page.nextPageId);
    },
  },
  {
    method: 'GET',
    path: '/api/v1/sandboxes',
    handle: async (sd, c) => {
      const api = sd.as(c.caller());
      const found = await api.sandboxes.batchGet(c.query.ids('id'));
      return listText(found.map((s) => s && sandboxText(s)));
    },
  },
  {
    method: 'POST',
    path: '/api/v1/sandboxes',
    handle: async (sd, c) => {
      const api = sd.as(c.caller());
      const spec = c.query.optional('sandbox_spec_id');
      const id = c.query.optional('sandbox_id');
      return sandboxText(await api.sandboxes.start(spec, id));
    },
  },
  {
    method: 'GET',
    path: '/api/v1/sandboxes/{id}',
    handle: async (sd, c) => sandboxText(await sd.as(c.caller()).sandboxes.get(c.id)),
  },
  {
    method: 'DELETE',
    path: '/api/v1/sandboxes/{id}',
    handle: async (sd, c) => {
      await sd.as(c.caller()).sandboxes.delete(c.id);
      return SUCCESS;
    },
  },
  {
    method: 'POST',
    path: '/api/v1/sandboxes/{id}/pause',
    handle: async (sd, c) => {
      await sd.as(c.caller()).sandboxes.pause(c.id);
      return SUCCESS;
    },
  },
  {
    method: 'POST',
    path: '/api/v1/sandboxes/{id}/resume',
    handle: async (sd, c) => {
      await sd.as(c.caller()).sandboxes.resume(c.id);
      return SUCCESS;
    },
  },
  {
    method: 'GET',
    path: '/api/v1/sandboxes/{id}/history',
    handle: async (sd, c) => {
      const page = await sd.as(c.caller()).lifecycle.history(c.id, c.query.pageId(), c.query.limit());
      return pageText(page.items.map(statusChangeText), page.nextPageId);
    },
  },
  {
    method: 'GET',
    path: '/api/v1/sandbox-specs/search',
    handle: async (sd, c) => {
      const api = sd.as(c.caller());
      const page = await api.specs.search(c.query.pageId(), c.query.limit());
      return pageText(page.items.map(specText), page.nextPageId);
    },
  },
  {
    method: 'GET',
    path: '/api/v1/sandbox-specs',
    handle: async (sd, c) => {
      const api = sd.as(c.caller());
      const found = await api.specs.batchGet(c.query.ids('id'));
      return listText(found.map((s) => s && specText(s)));
    },
  },
  {
    method: 'GET',
    path: '/api/v1/conversations/search',
    handle: async (sd, c) => {
      const api = sd.as(c.caller());
      const q = c.query;
      return documents(await api.conversations.search(q.optional('sandbox_id'), q.pageId(), q.limit()));
    },
  },
  {
    method: 'GET',
    path: '/api/v1/conversations/{id}',
    handle: async (sd, c) => documentText(await sd.as(c.caller()).conversations.get(c.id)),
  },
  {
    method: 'GET',
    path: '/api/v1/conversations/{id}/events/search',
    handle: async (sd, c) => {
      const api = sd.as(c.caller());
      const q = c.query;
      const query = {
        pageId: q.pageId(),
        limit: q.limit(),
        kind: q.optional('kind'),
        timestampGte: q.optional('timestamp__gte'),
        timestampLt: q.optional('timestamp__lt'),
        descending: q.descending(),
      };
      return documents(await api.conversations.searchEvents(c.id, query));
    },
  },
  {
    method: 'POST',
    path: '/api/v1/webhooks/conversations',
    handle: async (sd, c) => {
      const key = sessionKey(c.headers);
      const body = await c.body(MAX_INFO_BYTES);
      await sd.as({}).sync.ingestConversation(key, body);
      return SUCCESS;
    },
  },
  {
    method: 'POST',
    path: '/api/v1/webhooks/events/{id}',
    handle: async (sd, c) => {
      const key = sessionKey(c.headers);
      const body = await c.body(MAX_EVENTS_BYTES);
      await sd.as({}).sync.ingestEvents(key, c.id, body);
      return SUCCESS;
    },
  },
  {
    // The Rust host's `POST /admin/sync/poll` (`host/src/api/admin.rs`): a
    // poll cycle now, after the one running if any; what it did.
    method: 'POST',
    path: '/admin/sync/poll',
    handle: async (sd, c) => {
      admin(c.caller());
      const { summary: s, millis } = await c.pollCycle();
      return JSON.stringify({
        sandboxes: s.sandboxes,
        conversations: s.conversations,
        new_events: s.newEvents,
        requests: s.requests,
        failures: s.failures.map((f) => ({ sandbox_id: f.sandboxId, reason: f.reason })),
        millis,
      });
    },
  },
];

/** Admin routes are for admin callers (`{}`: the single user of `none`, an admin key): others get a 403. */
function admin(caller) {
  if (caller.user !== undefined) throw new ApiError(403, 'admin routes need an admin key');
}

/** Match a path against the route templates: the routes of the first template that matches, and its `{id}`. */
export function match(path) {
  for (const route of ROUTES) {
    const t = route.path.split('/');
    const p = path.split('/');
    if (t.length !== p.length) continue;
    let id;
    let ok = true;
    for (let i = 0; i < t.length; i++) {
      if (t[i] === '{id}') {
        if (p[i] === '') ok = false;
        id = p[i];
      } else if (t[i] !== p[i]) ok = false;
    }
    // A literal segment beats `{id}` (`/sandboxes/search` is not sandbox "search").
    if (ok) return { template: route.path, routes: ROUTES.filter((r) => r.path === route.path), rawId: id };
  }
  return undefined;
}

/** A byte size as people write it. */
export const size = (n) => (n >= 1 << 20 ? `${n >> 20} MiB` : `${n >> 10} KiB`);

export { ApiError };
