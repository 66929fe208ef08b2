// The storage adapters against the storage contract (`wit/storage.wit`), with
// the Rust host's limits and errors: byte order, bounds, reverse, limits,
// preconditions checked against the state before the commit, atomicity, group
// commits, and the host's own tables out of the plugin's reach.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStore, SqliteStore, StorageError } from '../src/index.js';
import { CheckedStore } from '../src/storage/checked.js';

const b = (s) => (typeof s === 'string' ? Buffer.from(s) : Buffer.from(s));
const put = (table, key, value) => ({ tag: 'put', val: { table, key: b(key), value: b(value) } });
const del = (table, key) => ({ tag: 'delete', val: { table, key: b(key) } });
const absent = (table, key) => ({ tag: 'require-absent', val: { table, key: b(key) } });
const present = (table, key) => ({ tag: 'require-present', val: { table, key: b(key) } });
const equals = (table, key, value) => ({ tag: 'require-value', val: { table, key: b(key), value: b(value) } });
const U = { tag: 'unbounded' };
const inc = (k) => ({ tag: 'included', val: b(k) });
const exc = (k) => ({ tag: 'excluded', val: b(k) });
const keys = (rows) => rows.map((r) => Buffer.from(r.key).toString('latin1'));

/** The WIT error a promise rejects with. */
async function storageError(p) {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof StorageError, `a StorageError, not ${e}`);
    return e.payload;
  }
  assert.fail('expected a storage error');
}

const backends = {
  memory: () => new MemoryStore(),
  sqlite: () => new SqliteStore(join(mkdtempSync(join(tmpdir(), 'sandboxd-node-')), 'store.sqlite')),
};

for (const [name, make] of Object.entries(backends)) {
  test(`${name}: keys come back in byte order, with bounds, reverse and limits`, async () => {
    const s = new CheckedStore(make());
    const all = ['a', 'a\u0000', 'ab', 'b', '\u00ff', 'B', ''];
    await s.commit(all.map((k) => ({ tag: 'put', val: { table: 't', key: Buffer.from(k, 'latin1'), value: b('v') } })));
    await s.commit([put('other', 'a', 'x')]);
    const scan = (start, end, reverse = false, limit = 100) => s.scan({ table: 't', start, end, reverse, limit }).then(keys);
    assert.deepEqual(await scan(U, U), ['', 'B', 'a', 'a\u0000', 'ab', 'b', '\u00ff']);
    assert.deepEqual(await scan(U, U, true), ['\u00ff', 'b', 'ab', 'a\u0000', 'a', 'B', '']);
    assert.deepEqual(await scan(inc('a'), exc('b')), ['a', 'a\u0000', 'ab']);
    assert.deepEqual(await scan(exc('a'), inc('b')), ['a\u0000', 'ab', 'b']);
    assert.deepEqual(await scan(exc('a'), inc('b'), true, 2), ['b', 'ab'], 'reverse takes the last keys of the range');
    assert.deepEqual(await scan(inc('a'), U, false, 2), ['a', 'a\u0000']);
    assert.deepEqual(await scan(inc('b'), inc('a')), [], 'a backwards range is empty, not an error');
    assert.deepEqual(await scan(inc('a'), exc('a')), []);
    assert.deepEqual(await scan(inc('a'), inc('a')), ['a']);
    assert.deepEqual(await scan(U, U, false, 0), []);
    assert.deepEqual(await s.scan({ table: 'never-written', start: U, end: U, reverse: false, limit: 10 }), []);
    assert.equal(Buffer.from(await s.get('other', b('a'))).toString(), 'x', 'tables are separate');
    assert.equal(await s.get('t', b('zz')), undefined);
    const many = await s.getMany('t', [b('b'), b('nope'), b('a')]);
    assert.deepEqual(many.map((v) => v && Buffer.from(v).toString()), ['v', undefined, 'v']);
    s.close();
  });

  test(`${name}: preconditions are checked against the state before the commit, and a failed one writes nothing`, async () => {
    const s = new CheckedStore(make());
    await s.commit([put('t', 'k', '1')]);
    // Put then require-absent of the same key: the check sees the state before.
    await s.commit([put('t', 'new', 'x'), absent('t', 'new'), present('t', 'k'), equals('t', 'k', '1')]);
    assert.deepEqual(await storageError(s.commit([put('t', 'x', 'y'), del('t', 'k'), equals('t', 'k', '2')])), { tag: 'conflict', val: 2 });
    assert.equal(await s.get('t', b('x')), undefined, 'nothing of a failed commit is written');
    assert.equal(Buffer.from(await s.get('t', b('k'))).toString(), '1');
    assert.deepEqual(await storageError(s.commit([absent('t', 'k')])), { tag: 'conflict', val: 0 });
    assert.deepEqual(await storageError(s.commit([put('t', 'a', 'b'), present('t', 'missing')])), { tag: 'conflict', val: 1 });
    assert.deepEqual(await storageError(s.commit([equals('t', 'missing', '')])), { tag: 'conflict', val: 0 });
    await s.commit([del('t', 'k'), del('t', 'never')]);
    assert.equal(await s.get('t', b('k')), undefined);
    s.close();
  });

  test(`${name}: a relaxed commit is atomic, checked and visible at once, like a durable one`, async () => {
    const s = new CheckedStore(make());
    const relaxed = { durable: false };
    await s.commit([put('t', 'a', '1'), put('t', 'b', '2')], relaxed);
    assert.equal(Buffer.from(await s.get('t', b('a'))).toString(), '1');
    assert.deepEqual(await storageError(s.commit([put('t', 'c', '3'), absent('t', 'a')], relaxed)), { tag: 'conflict', val: 1 });
    assert.equal(await s.get('t', b('c')), undefined);
    await s.commit([equals('t', 'a', '1'), put('t', 'a', '4')]);
    assert.equal(Buffer.from(await s.get('t', b('a'))).toString(), '4');
    s.close();
  });

  test(`${name}: concurrent commits each see the ones before them`, async () => {
    const s = new CheckedStore(make());
    // Ten claims of one key at once: exactly one wins.
    const claims = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => s.commit([absent('t', 'lock'), put('t', 'lock', String(i))])));
    assert.equal(claims.filter((c) => c.status === 'fulfilled').length, 1);
    for (const c of claims) if (c.status === 'rejected') assert.deepEqual(c.reason.payload, { tag: 'conflict', val: 0 });
    s.close();
  });

  test(`${name}: the contract's limits, with the Rust host's messages`, async () => {
    const s = new CheckedStore(make());
    assert.deepEqual(await storageError(s.get('Bad', b('k'))), {
      tag: 'invalid',
      val: "table name 'Bad' must be 1 to 64 characters of a-z, 0-9, '_' and '-'",
    });
    assert.equal((await storageError(s.get('', b('k')))).tag, 'invalid');
    assert.equal((await storageError(s.get('x'.repeat(65), b('k')))).tag, 'invalid');
    assert.equal((await storageError(s.get('host.egress_callbacks', b('k')))).tag, 'invalid', "the host's tables are out of reach");
    assert.deepEqual(await storageError(s.get('t', Buffer.alloc(1025))), { tag: 'invalid', val: 'key of 1025 bytes exceeds 1024' });
    await s.get('t', Buffer.alloc(1024));
    assert.deepEqual(await storageError(s.commit([put('t', 'k', Buffer.alloc((1 << 20) + 1))])), {
      tag: 'invalid',
      val: 'value of 1048577 bytes exceeds 1048576',
    });
    await s.commit([put('t', 'k', Buffer.alloc(1 << 20))]);
    assert.deepEqual(await storageError(s.commit(Array.from({ length: 100_001 }, () => del('t', 'k')))), {
      tag: 'invalid',
      val: '100001 ops exceed the limit of 100000 per commit',
    });
    assert.deepEqual(await storageError(s.getMany('t', Array.from({ length: 100_001 }, () => b('k')))), {
      tag: 'invalid',
      val: '100001 keys exceed the limit of 100000',
    });
    assert.equal((await storageError(s.scan({ table: 't', start: inc(Buffer.alloc(1025)), end: U, reverse: false, limit: 1 }))).tag, 'invalid');
    assert.equal((await storageError(s.commit([put('t', 'ok', 'v'), put('Nope', 'k', 'v')]))).tag, 'invalid');
    assert.equal(await s.get('t', b('ok')), undefined, 'a refused commit writes nothing');
    s.close();
  });

  test(`${name}: a failing adapter is a backend error, not a crash`, async () => {
    const inner = make();
    const s = new CheckedStore({
      ...inner,
      get: () => {
        throw new Error('disk on fire');
      },
      scan: async () => {
        throw new Error('disk on fire');
      },
      commit: (ops) => inner.commit(ops),
      close: () => inner.close(),
    });
    assert.deepEqual(await storageError(s.get('t', b('k'))), { tag: 'backend', val: 'disk on fire' });
    assert.deepEqual(await storageError(s.scan({ table: 't', start: U, end: U, reverse: false, limit: 1 })), { tag: 'backend', val: 'disk on fire' });
    s.close();
  });

  test(`${name}: the host's own tables are separate from the plugin's`, async () => {
    const s = new CheckedStore(make());
    await s.hostCommit([put('egress_callbacks', 'cb1', 'http://x')]);
    assert.equal(await s.get('egress_callbacks', b('cb1')), undefined);
    assert.deepEqual(keys(await s.hostScan('egress_callbacks')), ['cb1']);
    s.close();
  });
}

test('sqlite: what is committed survives a reopen', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'sandboxd-node-')), 'store.sqlite');
  const a = new CheckedStore(new SqliteStore(path));
  // A relaxed commit is made durable by the durable one after it.
  await a.commit([put('t', 'r', 'relaxed')], { durable: false });
  await a.commit([put('t', 'k', 'durable')]);
  a.close();
  const b2 = new CheckedStore(new SqliteStore(path));
  assert.equal(Buffer.from(await b2.get('t', b('k'))).toString(), 'durable');
  assert.equal(Buffer.from(await b2.get('t', b('r'))).toString(), 'relaxed');
  b2.close();
});
