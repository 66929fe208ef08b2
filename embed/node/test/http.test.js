// The HTTP import (`src/imports/http.js`) over the default transport: the
// runtime API key only to the runtime API, signed callback bodies, the egress
// policy (before and after DNS), deadlines, the response cap, batches.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { EgressPolicy, isForbidden, parseRule, policyLookup } from '../src/imports/egress.js';
import { HttpImport, Semaphore } from '../src/imports/http.js';
import { HttpFailure, nodeTransport } from '../src/imports/transport.js';
import { HostKey, MemoryStore } from '../src/index.js';
import { CheckedStore } from '../src/storage/checked.js';
import { listen } from './fakes.js';

/** A server that records each request and answers as `answer` says. */
async function recorder(answer = () => ({ status: 200, body: '{}' })) {
  const seen = [];
  const srv = await listen(async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const r = { method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks) };
    seen.push(r);
    const a = await answer(r);
    if (a.status === 0) return; // never answer
    res.writeHead(a.status, { 'content-type': 'application/json' });
    res.end(a.body);
  });
  return { ...srv, seen };
}

const transports = [];
after(() => transports.forEach((t) => t.close()));

function setup(runtimeUrl, rules = ['@runtime', '@agents', '@callbacks'], extra = {}) {
  const store = new CheckedStore(new MemoryStore());
  const policy = new EgressPolicy(rules.map(parseRule), runtimeUrl, store);
  const hostKey = HostKey.ephemeral();
  const transport = nodeTransport({ connectTimeoutMs: 1000 });
  transports.push(transport);
  const http = new HttpImport({
    runtimeUrl,
    runtimeApiKey: 'the-runtime-key-0123456789',
    policy,
    hostKey,
    transport,
    timeoutMs: 2000,
    maxResponseBytes: 1024,
    concurrency: 2,
    ...extra,
  });
  return { http, policy, hostKey };
}

const req = (url, extra = {}) => ({ method: 'get', url, headers: [], body: undefined, credential: { tag: 'none' }, timeoutMs: undefined, ...extra });

async function failure(p) {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof HttpFailure, `an HttpFailure, not ${e?.stack ?? e}`);
    return e.payload;
  }
  assert.fail('expected an http-error');
}

test('the runtime API key goes to the runtime API only, and never with credential none', async () => {
  const runtime = await recorder();
  const other = await recorder();
  const { http } = setup(`${runtime.url}/api`, ['@runtime', other.url.replace('http://', '')]);
  await http.send(req(`${runtime.url}/api/sessions/x`, { credential: { tag: 'runtime-api' } }));
  assert.equal(runtime.seen[0].headers['x-api-key'], 'the-runtime-key-0123456789');
  await http.send(req(`${runtime.url}/api/list`));
  assert.equal(runtime.seen[1].headers['x-api-key'], undefined, 'credential none sends no key');
  // The same origin outside the runtime API's base path, and another allowed origin.
  for (const url of [`${runtime.url}/elsewhere`, `${other.url}/api/x`]) {
    const e = await failure(http.send(req(url, { credential: { tag: 'runtime-api' } })));
    assert.equal(e.tag, 'denied');
    assert.match(e.val, /the runtime API credential is only sent to the runtime API/);
    assert.doesNotMatch(e.val, /the-runtime-key/);
  }
  assert.equal(runtime.seen.length, 2);
  assert.equal(other.seen.length, 0);
  await runtime.close();
  await other.close();
});

test('callback bodies are signed: sha256=hex(HMAC(secret, body)), secret = hex(HMAC(host key, "sandboxd callback secret:{id}"))', async () => {
  const receiver = await recorder();
  const { http, hostKey } = setup('http://127.0.0.1:1', ['*']);
  const body = Buffer.from('{"id":"e1"}');
  await http.send(req(`${receiver.url}/hook`, { method: 'post', body, credential: { tag: 'callback-signature', val: 'cb1' } }));
  const secret = createHmac('sha256', hostKey.key).update('sandboxd callback secret:cb1').digest('hex');
  assert.equal(hostKey.secret('cb1'), secret);
  assert.equal(receiver.seen[0].headers['x-sandboxd-signature'], `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`);
  assert.deepEqual(receiver.seen[0].body, body);
  assert.notEqual(hostKey.secret('cb2'), secret);
  assert.doesNotMatch(JSON.stringify(hostKey), /[0-9a-f]{64}/, 'the host key does not print');
  await receiver.close();
});

test('the egress policy: unknown origins, metadata and link-local addresses are denied; agents are learned from runtime answers', async () => {
  const runtime = await recorder(() => ({ status: 200, body: JSON.stringify({ runtimes: [{ url: 'http://127.0.0.1:9/rt-1', session_id: 's' }] }) }));
  const { http } = setup(runtime.url);
  for (const url of ['http://169.254.169.254/latest/meta-data', 'http://[fe80::1]/', 'http://[::ffff:169.254.169.254]/', 'http://metadata.google.internal/', 'http://127.0.0.1:9/rt-1/alive']) {
    assert.equal((await failure(http.send(req(url)))).tag, 'denied', url);
  }
  // A runtime answer naming an agent server opens its origin (and only after a 2xx with the credential).
  await http.send(req(`${runtime.url}/list`));
  assert.equal((await failure(http.send(req('http://127.0.0.1:9/x')))).tag, 'denied', 'learned only from runtime-API-credentialed answers');
  await http.send(req(`${runtime.url}/list`, { credential: { tag: 'runtime-api' } }));
  assert.equal((await failure(http.send(req('http://127.0.0.1:9/rt-1/alive')))).tag, 'connect', 'now allowed, and nothing listens there');
  assert.equal((await failure(http.send(req('ftp://127.0.0.1/')))).tag, 'invalid-request');
  assert.equal((await failure(http.send(req('not a url')))).tag, 'invalid-request');
  assert.equal((await failure(http.send(req(`${runtime.url}/x`, { headers: [['bad name', 'v']] })))).tag, 'invalid-request');
  assert.equal((await failure(http.send(req(`${runtime.url}/x`, { headers: [['x-ok', 'line\nbreak']] })))).tag, 'invalid-request');
  await runtime.close();
});

test('a host name longer than DNS allows (253) is refused with the reason, as on the Rust host', () => {
  const policy = new EgressPolicy(['*'].map(parseRule), 'http://127.0.0.1:1', new CheckedStore(new MemoryStore()));
  const longest = Array(4).fill('a'.repeat(63)).join('.').slice(0, 253);
  policy.checkCallback(new URL(`https://${longest}/`));
  policy.checkCallback(new URL(`https://${longest}./`));
  const tooLong = new URL(`https://${longest}a/`);
  for (const check of [() => policy.checkCallback(tooLong), () => policy.check(tooLong)]) {
    assert.throws(check, (e) => e.message === `the host name of ${'a'.repeat(40)}… is longer than 253 characters (DNS allows no more)`);
  }
});

test('addresses refused always, also after DNS', async () => {
  for (const ip of ['169.254.169.254', '169.254.0.1', '0.0.0.0', '255.255.255.255', 'fe80::1', 'febf::1', 'fd00:ec2::254', '::', '::ffff:169.254.1.1', '::ffff:a9fe:101']) {
    assert.ok(isForbidden(ip), ip);
  }
  for (const ip of ['127.0.0.1', '10.0.0.1', '::1', 'fd00:ec2::253', '2001:db8::1', '::ffff:127.0.0.1']) assert.ok(!isForbidden(ip), ip);
  // `localhost` resolves to loopback: allowed; the lookup filters, it does not refuse a name as such.
  const address = await new Promise((resolve, reject) => policyLookup('localhost', {}, (e, a) => (e ? reject(e) : resolve(a))));
  assert.ok(address === '127.0.0.1' || address === '::1', address);
  assert.throws(() => parseRule('@nope'), /not a known group/);
  assert.throws(() => parseRule('http://x/path'), /without a path/);
  assert.throws(() => parseRule('*.'), /wildcard/);
  assert.deepEqual(parseRule('https://*.agents.corp:8443'), { kind: 'host', scheme: 'https', suffix: '.agents.corp', port: 8443 });
});

test('deadlines: the plugin may shorten the host timeout, not lengthen it; a slow server costs only its deadline', async () => {
  const slow = await recorder(() => ({ status: 0 }));
  const { http } = setup(slow.url);
  let t = performance.now();
  assert.deepEqual(await failure(http.send(req(`${slow.url}/x`, { timeoutMs: 150 }))), { tag: 'timeout' });
  assert.ok(performance.now() - t < 1900, 'the plugin asked for 150 ms, less than the host’s 2 s');
  t = performance.now();
  assert.deepEqual(await failure(http.send(req(`${slow.url}/x`, { timeoutMs: 60_000 }))), { tag: 'timeout' });
  const took = performance.now() - t;
  assert.ok(took >= 1900 && took < 30_000, `capped at the host's 2 s, not the 60 s asked for; took ${took}`);
  await slow.close();
});

test('responses over the cap are too-large; refused connections are connect errors', async () => {
  const big = await recorder(() => ({ status: 200, body: 'x'.repeat(5000) }));
  const { http } = setup(big.url);
  assert.deepEqual(await failure(http.send(req(`${big.url}/x`))), { tag: 'too-large' });
  const port = new URL(big.url).port;
  await big.close();
  const e = await failure(http.send(req(`http://127.0.0.1:${port}/x`)));
  assert.equal(e.tag, 'connect');
  assert.match(e.val, /Connection refused/);
});

test('a batch answers in order, within the concurrency bound; batches are bounded and finished once', async () => {
  let inFlight = 0;
  let most = 0;
  const srv = await recorder(async (r) => {
    inFlight += 1;
    most = Math.max(most, inFlight);
    await new Promise((res) => setTimeout(res, 30));
    inFlight -= 1;
    return { status: r.url === '/3' ? 503 : 200, body: JSON.stringify(r.url) };
  });
  const { http } = setup(srv.url);
  const out = await http.sendBatch([0, 1, 2, 3, 4, 5].map((i) => req(`${srv.url}/${i}`)).concat([req('http://169.254.169.254/')]), new Semaphore(2));
  assert.deepEqual(out.slice(0, 6).map((o) => Buffer.from(o.val.body).toString()), ['"/0"', '"/1"', '"/2"', '"/3"', '"/4"', '"/5"']);
  assert.equal(out[3].val.status, 503, 'an error status is a response, not an http-error');
  assert.equal(out[6].tag, 'err');
  assert.equal(out[6].val.tag, 'denied');
  assert.ok(most <= 2, `at most 2 in flight, saw ${most}`);
  const call = http.forCall();
  const ids = Array.from({ length: 8 }, () => call.startBatch([req(`${srv.url}/a`)]));
  assert.equal((() => { try { call.startBatch([]); } catch (e) { return e.payload.tag; } })(), 'denied', 'at most 8 open batches');
  assert.equal((await call.finishBatch(ids[0])).length, 1);
  assert.deepEqual(await failure(call.finishBatch(ids[0])), { tag: 'invalid-request', val: `no open batch ${ids[0]}` });
  for (const id of ids.slice(1)) await call.finishBatch(id);
  await srv.close();
});
