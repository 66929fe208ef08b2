// The storage contract's limits and checks, in one place, before any backend
// sees a request, so every backend refuses the same things the same way (and
// the way the Rust host's `host/src/storage/mod.rs` does, message for message).
//
// Invariants:
// - A request that passes these checks is well-formed: table names are
//   1 to 64 characters of a-z, 0-9, '_' and '-'; keys are at most 1 KiB; values
//   at most 1 MiB; a commit holds at most 100,000 ops; a read at most 100,000
//   keys or rows.
// - Errors are the WIT's `storage-error`: `{ tag: 'invalid', val }` here;
//   `conflict(index)` and `backend(text)` come from the backends.

export const MAX_TABLE_NAME = 64;
export const MAX_KEY_BYTES = 1024;
export const MAX_VALUE_BYTES = 1 << 20;
export const MAX_OPS = 100_000;
export const MAX_READ = 100_000;

/** A `storage-error` the plugin receives. */
export class StorageError extends Error {
  /**
   * @param {'conflict' | 'invalid' | 'backend'} tag
   * @param {number | string} val
   */
  constructor(tag, val) {
    super(tag === 'conflict' ? `precondition ${val} failed` : String(val));
    this.tag = tag;
    this.val = val;
  }

  /** The WIT value: what the plugin sees. */
  get payload() {
    return { tag: this.tag, val: this.val };
  }
}

/** @param {string} text */
export const invalid = (text) => new StorageError('invalid', text);
/** @param {unknown} e */
export const backend = (e) =>
  e instanceof StorageError ? e : new StorageError('backend', e instanceof Error ? e.message : String(e));

const TABLE = /^[a-z0-9_-]+$/;

/** @param {string} name */
export function checkTable(name) {
  if (typeof name !== 'string' || name.length === 0 || name.length > MAX_TABLE_NAME || !TABLE.test(name)) {
    const shown = Array.from(String(name)).slice(0, 80).join('');
    throw invalid(`table name '${shown}' must be 1 to ${MAX_TABLE_NAME} characters of a-z, 0-9, '_' and '-'`);
  }
}

/** @param {Uint8Array} key */
export function checkKey(key) {
  if (key.length > MAX_KEY_BYTES) {
    throw invalid(`key of ${key.length} bytes exceeds ${MAX_KEY_BYTES}`);
  }
}

/** @param {import('../index.js').Bound} bound */
export function checkBound(bound) {
  if (bound.tag !== 'unbounded') checkKey(bound.val);
}

/** @param {Uint8Array[]} keys */
export function checkKeys(keys) {
  if (keys.length > MAX_READ) {
    throw invalid(`${keys.length} keys exceed the limit of ${MAX_READ}`);
  }
  for (const key of keys) checkKey(key);
}

/** @param {import('../index.js').Op[]} ops */
export function checkOps(ops) {
  if (ops.length > MAX_OPS) {
    throw invalid(`${ops.length} ops exceed the limit of ${MAX_OPS} per commit`);
  }
  for (const op of ops) {
    checkTable(op.val.table);
    checkKey(op.val.key);
    if ((op.tag === 'put' || op.tag === 'require-value') && op.val.value.length > MAX_VALUE_BYTES) {
      throw invalid(`value of ${op.val.value.length} bytes exceeds ${MAX_VALUE_BYTES}`);
    }
  }
}

/**
 * Whether a range can hold any key (start before end). Backends answer an
 * empty result for the others instead of failing.
 * @param {import('../index.js').Bound} start
 * @param {import('../index.js').Bound} end
 */
export function isOrdered(start, end) {
  if (start.tag === 'unbounded' || end.tag === 'unbounded') return true;
  const c = Buffer.compare(start.val, end.val);
  return start.tag === 'included' && end.tag === 'included' ? c <= 0 : c < 0;
}

/**
 * The checked form of a scan: `undefined` when it can return nothing.
 * @param {import('../index.js').ScanRequest} request
 * @returns {number | undefined} the row limit to apply
 */
export function checkScan(request) {
  checkTable(request.table);
  checkBound(request.start);
  checkBound(request.end);
  if (!isOrdered(request.start, request.end) || request.limit === 0) return undefined;
  return Math.min(request.limit, MAX_READ);
}
