// The storage import: the contract's checks (`limits.js`) in front of any
// adapter, and every failure turned into the WIT's `storage-error`.
//
// Invariants:
// - No adapter sees a request the contract refuses.
// - The plugin's tables are the names it gives; the host's own tables are
//   named `host.<name>`, which no plugin table name can be (a '.' is refused),
//   so the plugin can never read or write them.
// - Whatever an adapter throws reaches the plugin as `conflict(index)` (an
//   adapter's own `StorageError`) or `backend(text)`, never as a trap.

import { MAX_READ, StorageError, backend, checkKey, checkKeys, checkOps, checkScan, checkTable } from './limits.js';

/** @param {() => unknown} f */
async function guarded(f) {
  try {
    return await f();
  } catch (e) {
    throw backend(e);
  }
}

/** The storage of one host: the plugin's view and the host's own tables. */
export class CheckedStore {
  /** @param {import('../index.js').StorageAdapter} adapter */
  constructor(adapter) {
    this.adapter = adapter;
  }

  /** @param {string} table @param {Uint8Array} key */
  async get(table, key) {
    checkTable(table);
    checkKey(key);
    return guarded(() => this.adapter.get(table, key));
  }

  /** @param {string} table @param {Uint8Array[]} keys */
  async getMany(table, keys) {
    checkTable(table);
    checkKeys(keys);
    const values = await guarded(() => this.adapter.getMany(table, keys));
    if (!Array.isArray(values) || values.length !== keys.length) {
      throw new StorageError('backend', `the storage adapter answered ${values?.length} values for ${keys.length} keys`);
    }
    return values;
  }

  /** @param {import('../index.js').ScanRequest} request */
  async scan(request) {
    const limit = checkScan(request);
    if (limit === undefined) return [];
    const rows = await guarded(() => this.adapter.scan({ ...request, limit }));
    return rows.length > limit ? rows.slice(0, limit) : rows;
  }

  /**
   * @param {import('../index.js').Op[]} ops
   * @param {{ durable?: boolean }} [options] `durable: false`: answer once visible.
   */
  async commit(ops, options) {
    checkOps(ops);
    await guarded(() => this.adapter.commit(ops, options));
  }

  /** Every entry of one of the host's own tables. */
  async hostScan(name) {
    return guarded(() =>
      this.adapter.scan({ table: `host.${name}`, start: { tag: 'unbounded' }, end: { tag: 'unbounded' }, reverse: false, limit: MAX_READ }),
    );
  }

  /** A commit on the host's own tables: each op names a table without its prefix. */
  async hostCommit(ops) {
    const prefixed = ops.map((op) => ({ tag: op.tag, val: { ...op.val, table: `host.${op.val.table}` } }));
    await guarded(() => this.adapter.commit(prefixed));
  }

  close() {
    return this.adapter.close?.();
  }
}
