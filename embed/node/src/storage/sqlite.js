// The on-disk storage adapter: one SQLite file (`node:sqlite`, built into
// Node.js), one table of (table name, key, value) rows with the key as a BLOB,
// which SQLite orders by memcmp: the byte order the contract promises.
//
// Commits are group commits, as in the Rust host's redb store: every commit
// asked for in the same turn of the event loop is applied in one transaction
// with one fsync (WAL, `synchronous = FULL`), each commit's preconditions
// checked against the state the commits before it left.
//
// Invariants:
// - A commit is answered only once the transaction holding it is durable; a
//   commit whose precondition fails writes nothing; a backend failure fails
//   every commit of its transaction, and none of them is durable.
// - Reads see only committed state: they run between transactions (the
//   connection is used from this one thread, and a transaction is applied in
//   one synchronous turn).

import { DatabaseSync } from 'node:sqlite';
import { StorageError, backend } from './limits.js';

/** Most commits folded into one transaction. */
const MAX_BATCH = 512;

const SCHEMA = `
  PRAGMA journal_mode = WAL;
  PRAGMA synchronous = FULL;
  PRAGMA busy_timeout = 5000;
  CREATE TABLE IF NOT EXISTS kv (
    t TEXT NOT NULL,
    k BLOB NOT NULL,
    v BLOB NOT NULL,
    PRIMARY KEY (t, k)
  ) WITHOUT ROWID;
`;

/** @implements {import('../index.js').StorageAdapter} */
export class SqliteStore {
  /** @param {string} path the database file (created if missing) */
  constructor(path) {
    try {
      this.db = new DatabaseSync(path);
      this.db.exec(SCHEMA);
    } catch (e) {
      throw new Error(`cannot open the database ${path}: ${e instanceof Error ? e.message : e}`);
    }
    this.getStmt = this.db.prepare('SELECT v FROM kv WHERE t = ? AND k = ?');
    this.putStmt = this.db.prepare('INSERT INTO kv (t, k, v) VALUES (?, ?, ?) ON CONFLICT (t, k) DO UPDATE SET v = excluded.v');
    this.deleteStmt = this.db.prepare('DELETE FROM kv WHERE t = ? AND k = ?');
    /** @type {Map<string, import('node:sqlite').StatementSync>} */
    this.scans = new Map();
    /** @type {{ ops: import('../index.js').Op[], resolve: () => void, reject: (e: unknown) => void }[]} */
    this.queue = [];
  }

  get(table, key) {
    const row = this.getStmt.get(table, key);
    return row ? /** @type {Uint8Array} */ (row.v) : undefined;
  }

  getMany(table, keys) {
    return keys.map((k) => this.get(table, k));
  }

  scan({ table, start, end, reverse, limit }) {
    const shape = `${start.tag}/${end.tag}/${reverse}`;
    let stmt = this.scans.get(shape);
    if (!stmt) {
      const lower = { unbounded: '', included: ' AND k >= ?', excluded: ' AND k > ?' }[start.tag];
      const upper = { unbounded: '', included: ' AND k <= ?', excluded: ' AND k < ?' }[end.tag];
      stmt = this.db.prepare(`SELECT k, v FROM kv WHERE t = ?${lower}${upper} ORDER BY k ${reverse ? 'DESC' : 'ASC'} LIMIT ?`);
      this.scans.set(shape, stmt);
    }
    const args = [table];
    if (start.tag !== 'unbounded') args.push(start.val);
    if (end.tag !== 'unbounded') args.push(end.val);
    args.push(limit);
    return stmt.all(...args).map((row) => ({ key: /** @type {Uint8Array} */ (row.k), value: /** @type {Uint8Array} */ (row.v) }));
  }

  commit(ops, { durable = true } = {}) {
    return new Promise((resolve, reject) => {
      this.queue.push({ ops, durable, resolve, reject });
      if (this.queue.length === 1) setImmediate(() => this.flush());
    });
  }

  /** Apply every queued commit in one transaction; answer each. */
  flush() {
    while (this.queue.length > 0) {
      const jobs = this.queue.splice(0, MAX_BATCH);
      /** @type {(StorageError | undefined)[]} */
      let outcomes;
      // A batch of relaxed commits only skips the WAL's fsync (WAL frames are
      // ordered: the next durable commit's sync covers them).
      const relaxed = jobs.every((job) => !job.durable);
      try {
        if (relaxed) this.db.exec('PRAGMA synchronous = NORMAL');
        this.db.exec('BEGIN IMMEDIATE');
        try {
          outcomes = jobs.map((job) => this.applyOne(job.ops));
          this.db.exec('COMMIT');
        } catch (e) {
          this.db.exec('ROLLBACK');
          throw e;
        }
      } catch (e) {
        const failure = backend(e);
        for (const job of jobs) job.reject(failure);
        continue;
      } finally {
        if (relaxed) this.db.exec('PRAGMA synchronous = FULL');
      }
      jobs.forEach((job, i) => (outcomes[i] ? job.reject(outcomes[i]) : job.resolve()));
    }
  }

  /** Check one commit's preconditions, then write it; a conflict writes nothing. */
  applyOne(ops) {
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i];
      if (op.tag === 'put' || op.tag === 'delete') continue;
      const current = this.get(op.val.table, op.val.key);
      const holds =
        op.tag === 'require-absent'
          ? current === undefined
          : op.tag === 'require-present'
            ? current !== undefined
            : current !== undefined && Buffer.compare(current, op.val.value) === 0;
      if (!holds) return new StorageError('conflict', i);
    }
    for (const op of ops) {
      if (op.tag === 'put') this.putStmt.run(op.val.table, op.val.key, op.val.value);
      else if (op.tag === 'delete') this.deleteStmt.run(op.val.table, op.val.key);
    }
    return undefined;
  }

  close() {
    this.flush();
    this.db.close();
  }
}
