// The library end to end: the real plugin component (the Rust build's bytes)
// on this host, against the fake runtime API and agent servers in `fakes.js`.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { CONTRACT_VERSION, CallError, LONE_SHARE, MemoryStore, PluginError, createSandboxd, defaultPluginPath, Logger } from '../src/index.js';
import { fakeRuntime } from './fakes.js';

let runtime;
const hosts = [];
const quiet = new Logger({ filter: 'off' });

async function host(extra = {}) {
  const sd = await createSandboxd({ runtime: { apiUrl: runtime.url, apiKey: runtime.apiKey }, logger: quiet, ...extra });
  hosts.push(sd);
  return sd;
}

before(async () => {
  runtime = await fakeRuntime();
});
after(async () => {
  for (const sd of hosts) await sd.close();
  await runtime.close();
});

async function rejection(p) {
  try {
    await p;
  } catch (e) {
    return e;
  }
  assert.fail('expected a failure');
}

test('the plugin is the Rust build’s, checked by digest and contract', async () => {
  const sd = await host();
  assert.equal(sd.plugin.source, defaultPluginPath());
  assert.match(sd.plugin.sha256, /^[0-9a-f]{64}$/);
  assert.equal(CONTRACT_VERSION, '0.5.0');
  assert.equal(sd.plugin.contractVersion, CONTRACT_VERSION);
  assert.deepEqual(await sd.info(), { pluginVersion: sd.plugin.pluginVersion, contractVersion: CONTRACT_VERSION });
  const notAPlugin = await rejection(createSandboxd({ runtime: { apiUrl: runtime.url, apiKey: 'k' }, plugin: new Uint8Array([0, 97, 115, 109]), logger: quiet }));
  assert.match(notAPlugin.message, /^cannot load the plugin \(bytes\): the component does not compile/);
});

test('a sandbox lifecycle, scoped to its user', async () => {
  const sd = await host({ specs: [{ id: 'img', command: ['run'], initialEnv: { A: '1' } }] });
  const alice = sd.as({ user: 'alice' });
  const bob = sd.as({ user: 'bob' });
  const started = await alice.sandboxes.start();
  assert.equal(started.createdByUserId, 'alice');
  assert.equal(started.sandboxSpecId, 'img');
  assert.equal(started.status, 'running');
  assert.equal(started.exposedUrls.length, 4);
  assert.equal(started.exposedUrls[0].url, `${runtime.url}/${runtime.runtimes.get(started.id).runtime_id}`);
  const startBody = runtime.requests.find((r) => r.path === '/start');
  assert.ok(startBody, 'the runtime was asked');
  assert.equal((await alice.sandboxes.get(started.id)).id, started.id);
  const notFound = await rejection(bob.sandboxes.get(started.id));
  assert.ok(notFound instanceof PluginError && notFound.tag === 'not-found', "another user's sandbox is missing to bob");
  assert.deepEqual((await bob.sandboxes.search()).items, []);
  assert.deepEqual((await alice.sandboxes.search()).items.map((s) => s.id), [started.id]);
  assert.deepEqual((await sd.as().sandboxes.batchGet([started.id, 'nope'])).map((s) => s?.id), [started.id, undefined]);
  await alice.sandboxes.pause(started.id);
  assert.equal((await alice.sandboxes.get(started.id)).status, 'paused');
  await alice.sandboxes.resume(started.id);
  const resumed = await alice.sandboxes.get(started.id);
  assert.equal(resumed.status, 'running');
  assert.notEqual(resumed.sessionApiKey, started.sessionApiKey, 'keys rotate on resume');
  assert.equal((await sd.as().sandboxes.getBySessionKey(resumed.sessionApiKey))?.id, started.id);
  assert.equal(await sd.as().sandboxes.getBySessionKey(started.sessionApiKey), undefined, 'the old key is dead');
  await alice.sandboxes.delete(started.id);
  assert.equal(runtime.runtimes.has(started.id), false, 'the runtime was stopped');
  assert.equal((await rejection(alice.sandboxes.get(started.id))).tag, 'not-found');
  const specs = await alice.specs.search();
  assert.deepEqual(specs.items.map((s) => [s.id, s.initialEnv]), [['img', [['A', '1']]]]);
});

test('one failing call does not poison the next: a failing store, a trap, a deadline, a budget', async () => {
  let broken = false;
  let garbage = false;
  const store = new MemoryStore();
  const flaky = {
    get: (t, k) => {
      if (broken) throw new Error('disk on fire');
      return store.get(t, k);
    },
    getMany: (t, ks) => store.getMany(t, ks),
    scan: (r) => store.scan(r),
    commit: (ops) => store.commit(ops),
  };
  const { nodeTransport } = await import('../src/index.js');
  const real = nodeTransport();
  // A transport with a bug: its answer does not have the contract's shape.
  const buggy = { send: async (r) => (garbage ? { status: 200, headers: null, body: 'not bytes' } : real.send(r)), close: () => real.close() };
  const sd = await host({ runtime: { apiUrl: runtime.url, apiKey: runtime.apiKey, maxNumSandboxes: 1 }, limits: { callHttpRequests: 1 } });
  const api = sd.as();
  const sd2 = await host({ storage: flaky, transport: buggy });
  const { id: sid } = await sd2.as().sandboxes.start();

  // A store that fails: the plugin gets a backend error and answers one.
  broken = true;
  const failed = await rejection(sd2.as().sandboxes.get(sid));
  assert.ok(failed instanceof PluginError && failed.tag === 'storage', String(failed));
  assert.match(failed.message, /disk on fire/);
  broken = false;
  assert.equal((await sd2.as().sandboxes.get(sid)).id, sid, 'the next call is fine');

  // A host-side bug that throws inside the plugin's import: a trap, contained.
  garbage = true;
  const trap = await rejection(sd2.as().sandboxes.get(sid));
  assert.ok(trap instanceof CallError && trap.kind === 'trap', String(trap));
  assert.match(trap.message, /^the plugin failed \(error id [0-9a-f]{12}\)$/);
  garbage = false;
  assert.equal((await sd2.as().sandboxes.get(sid)).status, 'running', 'the next call is fine');

  // A runtime that does not answer within the call's deadline.
  const slowRuntime = await fakeRuntime();
  const never = { send: () => new Promise(() => {}) };
  const stuck = await host({ runtime: { apiUrl: slowRuntime.url, apiKey: slowRuntime.apiKey }, transport: never, limits: { callTimeoutMs: 300 } });
  const t = performance.now();
  const timeout = await rejection(stuck.as().sandboxes.start());
  assert.ok(timeout instanceof CallError && timeout.kind === 'timeout', String(timeout));
  assert.equal(timeout.message, 'the plugin did not answer within 300ms');
  assert.ok(performance.now() - t < 10_000, 'the deadline, not the runtime, ended the call');
  assert.equal((await stuck.as().specs.search()).items.length, 1, 'the host serves on');
  await slowRuntime.close();

  // A budget of 1 request: dave's second start needs more (the runtime's list
  // for his limit of one running sandbox, a pause of the first, the start).
  await sd.as({ user: 'dave' }).sandboxes.start();
  const limited = await rejection(sd.as({ user: 'dave' }).sandboxes.start());
  assert.ok(limited instanceof CallError && limited.kind === 'limit', String(limited));
  assert.match(limited.message, /^the plugin call sent more than its limit of 1 HTTP requests \(error id [0-9a-f]{12}\)$/);
  assert.equal((await api.specs.search()).items.length, 1, 'the next call is fine');
});

test('a call waiting to retry (a Retry-After) waits alone, and its deadline still ends it', async () => {
  const { nodeTransport } = await import('../src/index.js');
  const real = nodeTransport();
  let throttle = false;
  // The runtime answers the next read of one sandbox with 429 and Retry-After: 1.
  const transport = {
    send: async (r) => {
      const path = new URL(r.url).pathname;
      if (throttle && r.method === 'GET' && path.startsWith('/sessions/') && path !== '/sessions/batch') {
        throttle = false;
        return { status: 429, headers: [['retry-after', '1'], ['content-type', 'application/json']], body: new TextEncoder().encode('{"detail":"slow down"}') };
      }
      return real.send(r);
    },
    close: () => real.close(),
  };
  const sd = await host({ transport });
  const api = sd.as();
  const { id } = await api.sandboxes.start();
  throttle = true;
  const started = performance.now();
  const waiting = api.sandboxes.get(id);
  while (throttle) await new Promise((r) => setTimeout(r, 5));
  await new Promise((r) => setTimeout(r, 100));
  const others = performance.now();
  await api.specs.search();
  await api.specs.search();
  const othersMs = performance.now() - others;
  assert.equal((await waiting).status, 'running', 'the retry found it');
  const waitedMs = performance.now() - started;
  assert.ok(waitedMs >= 950, `the Retry-After was honoured: ${waitedMs} ms`);
  assert.ok(othersMs < 500, `two spec searches took ${othersMs} ms behind another call's wait`);

  const short = await host({ transport, limits: { callTimeoutMs: 300 } });
  const { id: other } = await short.as().sandboxes.start();
  throttle = true;
  const t = performance.now();
  const timeout = await rejection(short.as().sandboxes.get(other));
  assert.ok(timeout instanceof CallError && timeout.kind === 'timeout', String(timeout));
  assert.ok(performance.now() - t < 900, 'the deadline, not the wait, ended the call');
  assert.equal((await short.as().sandboxes.get(other)).status, 'running', 'the next call is fine');
});

test('concurrent calls each get their own instance and caller', async () => {
  const sd = await host({ limits: { maxInstances: 8 } });
  const users = Array.from({ length: 12 }, (_, i) => `user-${i}`);
  const started = await Promise.all(users.map((u) => sd.as({ user: u }).sandboxes.start()));
  assert.deepEqual(started.map((s) => s.createdByUserId), users);
  const seen = await Promise.all(users.map((u) => sd.as({ user: u }).sandboxes.search()));
  seen.forEach((page, i) => assert.deepEqual(page.items.map((s) => s.id), [started[i].id]));
  await Promise.all(started.map((s, i) => sd.as({ user: users[i] }).sandboxes.delete(s.id)));
});

test('a poll cycle stores the agent servers’ events, and they are queryable', async () => {
  const sd = await host();
  const api = sd.as();
  const { id } = await api.sandboxes.start();
  const rt = runtime.runtimes.get(id).runtime_id;
  runtime.events.set(rt, [
    { kind: 'MessageEvent', id: 'e1', timestamp: '2026-01-01T00:00:01', source: 'user' },
    { kind: 'ActionEvent', id: 'e2', timestamp: '2026-01-01T00:00:02', source: 'agent' },
  ]);
  const cycle = await sd.poll();
  assert.equal(cycle.newEvents, 2, JSON.stringify(cycle, (_, v) => (typeof v === 'bigint' ? String(v) : v)));
  assert.equal(cycle.failures.length, 0);
  const conversations = await api.conversations.search(id);
  assert.equal(conversations.items.length, 1);
  const conversationId = JSON.parse(conversations.items[0]).id;
  const events = await api.conversations.searchEvents(conversationId, { limit: 10 });
  assert.deepEqual(events.items.map((e) => JSON.parse(e).id), ['e1', 'e2']);
  const desc = await api.conversations.searchEvents(conversationId, { limit: 1, descending: true });
  assert.deepEqual(desc.items.map((e) => JSON.parse(e).id), ['e2']);
  assert.equal((await sd.poll()).newEvents, 0, 'a second cycle stores nothing twice');
  await api.sandboxes.delete(id);
});

test('a stream follows arrival order: an event that arrives late with an older timestamp is not passed over', async () => {
  const sd = await host();
  const api = sd.as();
  const { id, sessionApiKey } = await api.sandboxes.start();
  const conversationId = 'a0a0a0a0-0000-4000-8000-000000000001';
  const push = (events) => api.sync.ingestEvents(sessionApiKey, conversationId, JSON.stringify(events));
  await push([
    { kind: 'MessageEvent', id: 'e1', timestamp: '2026-01-01T00:00:01', source: 'user' },
    { kind: 'ActionEvent', id: 'e2', timestamp: '2026-01-01T00:00:02', source: 'agent' },
  ]);
  await push([{ kind: 'MessageEvent', id: 'e0', timestamp: '2026-01-01T00:00:00', source: 'user' }]);
  const ids = (page) => page.items.map((e) => JSON.parse(e).id);
  assert.deepEqual(ids(await api.conversations.searchEvents(conversationId, {})), ['e0', 'e1', 'e2'], 'a search is in timestamp order');
  assert.deepEqual(ids(await api.conversations.streamEvents(conversationId)), ['e1', 'e2', 'e0'], 'a stream in arrival order');
  assert.deepEqual(ids(await api.conversations.streamEvents(conversationId, 'e2')), ['e0'], 'after e2 comes the late e0');
  assert.deepEqual(ids(await api.conversations.streamEvents(conversationId, 'e1', 1)), ['e2'], 'at most limit');
  assert.deepEqual(ids(await api.conversations.streamEvents(conversationId, 'no-such-event')), ['e1', 'e2', 'e0'], 'an unknown id starts from the first');
  const gone = await rejection(api.conversations.searchEvents(conversationId, { afterEventId: 'e1' }));
  assert.ok(gone instanceof TypeError && /streamEvents/.test(gone.message), String(gone));
  await api.sandboxes.delete(id);
});

test('background calls act on their share of the work; a lone host passes every bucket', async () => {
  assert.deepEqual(LONE_SHARE, { of: 1, buckets: [0] });
  const sd = await host();
  const api = sd.as();
  const { id } = await api.sandboxes.start();
  runtime.events.set(runtime.runtimes.get(id).runtime_id, [{ kind: 'MessageEvent', id: 'e1', timestamp: '2026-01-01T00:00:01', source: 'user' }]);
  const none = await sd.poll({ of: 4, buckets: [] });
  assert.deepEqual([none.sandboxes, none.newEvents], [0, 0], 'a share of no bucket polls nothing');
  const all = await sd.poll({ of: 4, buckets: [0, 1, 2, 3] });
  assert.deepEqual([all.sandboxes, all.newEvents], [1, 1], 'every bucket of four is all of it');
  const reconciled = await sd.reconcile('keep', 0, { of: 2, buckets: [] });
  assert.equal(reconciled.records, 1, 'the counts are of everything');
  assert.deepEqual(await sd.deliverDue(LONE_SHARE), { attempted: 0, delivered: 0, failed: 0, nextDueMs: undefined });
  for (const bad of [{ of: 0, buckets: [] }, { of: 2, buckets: [2] }, { of: 1.5, buckets: [] }, { of: 1 }, null]) {
    const refused = await rejection(sd.poll(bad));
    assert.ok(refused instanceof TypeError, `${JSON.stringify(bad)}: ${refused}`);
  }
  await api.sandboxes.delete(id);
});

test('a spec’s warm pool: filled by the pass, invisible until a start takes it running', async () => {
  const storage = new MemoryStore();
  const sd = await host({ specs: [{ id: 'img', command: ['run'], warm: 1 }], storage });
  const filled = await sd.lifecyclePass();
  assert.deepEqual([filled.warmStarted, filled.warmReady], [1, 1]);
  assert.deepEqual((await sd.as().sandboxes.search()).items, [], 'no listing shows a warm sandbox');
  const starts = runtime.requests.filter((r) => r.path === '/start').length;
  const taken = await sd.as({ user: 'alice' }).sandboxes.start();
  assert.equal(taken.status, 'running');
  assert.equal(taken.createdByUserId, 'alice');
  assert.equal(runtime.requests.filter((r) => r.path === '/start').length, starts, 'taken from the pool, not started');
  const before = new Set(runtime.runtimes.keys());
  const refilled = await sd.lifecyclePass();
  assert.deepEqual([refilled.warmStarted, refilled.warmReady], [1, 1]);
  const [warmId] = [...runtime.runtimes.keys()].filter((id) => !before.has(id));
  assert.ok(warmId, 'the refill started a sandbox');
  await sd.as().sandboxes.delete(taken.id);
  // The same store under a configuration without the pool: the pass stops
  // the warm sandbox and forgets it.
  const shrunk = await host({ specs: [{ id: 'img', command: ['run'] }], storage });
  const removed = await shrunk.lifecyclePass();
  assert.deepEqual([removed.warmStarted, removed.warmReady, removed.failures], [0, 0, []]);
  assert.equal(runtime.runtimes.has(warmId), false, 'its runtime was stopped');
});

test('callbacks: the host picks the id, records the origin, and hands out the secret once', async () => {
  const sd = await host();
  const api = sd.as({ user: 'carol' });
  const cb = await api.callbacks.create({ url: 'http://127.0.0.1:9/hook' });
  assert.match(cb.id, /^[0-9a-f]{32}$/);
  assert.match(cb.secret, /^[0-9a-f]{64}$/);
  assert.equal((await api.callbacks.get(cb.id)).secret, undefined, 'never again');
  assert.deepEqual((await api.callbacks.all()).map((c) => c.id), [cb.id]);
  const refused = await rejection(api.callbacks.create({ url: 'http://169.254.169.254/' }));
  assert.equal(refused.tag, 'invalid-input');
  await api.callbacks.delete(cb.id);
  assert.deepEqual(await api.callbacks.all(), []);
});
