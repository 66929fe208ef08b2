// An in-memory storage adapter: every table a sorted array of keys (byte
// order) with their values. For tests, and for embedders whose state may die
// with the process.
//
// Invariants:
// - Keys are kept in `Buffer.compare` order, the byte order the contract
//   promises; a scan is a binary search plus the rows it returns.
// - A commit checks every precondition against the state before it, then
//   applies every write, in one synchronous turn: no other call can see half
//   of it, and a failed precondition writes nothing.
// - Stored bytes are copies: nobody else holds a reference to them.

import { StorageError } from './limits.js';

class Table {
  constructor() {
    /** @type {Buffer[]} */
    this.keys = [];
    /** @type {Buffer[]} */
    this.values = [];
  }

  /** Index of the first key >= `key` (or > `key` when `after`). */
  lowerBound(key, after = false) {
    let lo = 0;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = Buffer.compare(this.keys[mid], key);
      if (c < 0 || (after && c === 0)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  get(key) {
    const i = this.lowerBound(key);
    return i < this.keys.length && this.keys[i].equals(key) ? this.values[i] : undefined;
  }

  put(key, value) {
    const i = this.lowerBound(key);
    if (i < this.keys.length && this.keys[i].equals(key)) {
      this.values[i] = value;
    } else {
      this.keys.splice(i, 0, key);
      this.values.splice(i, 0, value);
    }
  }

  delete(key) {
    const i = this.lowerBound(key);
    if (i < this.keys.length && this.keys[i].equals(key)) {
      this.keys.splice(i, 1);
      this.values.splice(i, 1);
    }
  }
}

const bytes = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength);
const copy = (u8) => Buffer.from(u8);

/** @implements {import('../index.js').StorageAdapter} */
export class MemoryStore {
  constructor() {
    /** @type {Map<string, Table>} */
    this.tables = new Map();
  }

  table(name, create = false) {
    let t = this.tables.get(name);
    if (!t && create) {
      t = new Table();
      this.tables.set(name, t);
    }
    return t;
  }

  get(table, key) {
    return this.table(table)?.get(bytes(key));
  }

  getMany(table, keys) {
    const t = this.table(table);
    return keys.map((k) => t?.get(bytes(k)));
  }

  scan({ table, start, end, reverse, limit }) {
    const t = this.table(table);
    if (!t) return [];
    const from = start.tag === 'unbounded' ? 0 : t.lowerBound(bytes(start.val), start.tag === 'excluded');
    const to = end.tag === 'unbounded' ? t.keys.length : t.lowerBound(bytes(end.val), end.tag === 'included');
    const out = [];
    if (reverse) {
      for (let i = to - 1; i >= from && out.length < limit; i--) out.push({ key: t.keys[i], value: t.values[i] });
    } else {
      for (let i = from; i < to && out.length < limit; i++) out.push({ key: t.keys[i], value: t.values[i] });
    }
    return out;
  }

  commit(ops) {
    ops.forEach((op, i) => {
      if (op.tag === 'put' || op.tag === 'delete') return;
      const current = this.table(op.val.table)?.get(bytes(op.val.key));
      const holds =
        op.tag === 'require-absent'
          ? current === undefined
          : op.tag === 'require-present'
            ? current !== undefined
            : current !== undefined && current.equals(bytes(op.val.value));
      if (!holds) throw new StorageError('conflict', i);
    });
    for (const op of ops) {
      if (op.tag === 'put') this.table(op.val.table, true).put(copy(op.val.key), copy(op.val.value));
      else if (op.tag === 'delete') this.table(op.val.table)?.delete(bytes(op.val.key));
    }
  }

  close() {}
}
