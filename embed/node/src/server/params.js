// Query parameters, checked the way the Rust host checks them
// (`host/src/api/params.rs`, after the upstream FastAPI service): a value of the
// wrong type or out of range is a 422 naming the parameter; more than 100 ids
// is a 400. Decoding is `application/x-www-form-urlencoded` (WHATWG), as the
// Rust host's `form_urlencoded` decodes it.

import { ApiError } from './errors.js';

export const MAX_LIMIT = 100;
const DEFAULT_LIMIT = 100;
const MAX_PAGE_ID_LEN = 4096;
const MAX_VALUE_LEN = 1024;

const bytes = (s) => Buffer.byteLength(s);
/** At most 40 characters of a caller's value, for quoting it back. */
const excerpt = (s) => Array.from(s).slice(0, 40).join('');

export class Query {
  /** @param {string} raw the query string, without `?` */
  constructor(raw) {
    this.pairs = [...new URLSearchParams(raw)];
  }

  /** The last value of a single-valued parameter (as FastAPI reads one). */
  last(name) {
    for (let i = this.pairs.length - 1; i >= 0; i--) if (this.pairs[i][0] === name) return this.pairs[i][1];
    return undefined;
  }

  all(name) {
    return this.pairs.filter(([k]) => k === name).map(([, v]) => v);
  }

  /** `limit`: 1 to 100, default 100. */
  limit() {
    const raw = this.last('limit');
    if (raw === undefined) return DEFAULT_LIMIT;
    const t = raw.trim();
    const n = /^[+-]?\d+$/.test(t) ? Number(t) : NaN;
    if (Number.isInteger(n) && n >= 1 && n <= MAX_LIMIT) return n;
    throw new ApiError(422, `limit must be a whole number from 1 to ${MAX_LIMIT}, got '${excerpt(raw)}'`);
  }

  /** `page_id`: opaque; an empty one is no page id. */
  pageId() {
    const p = this.last('page_id');
    if (p === undefined || p === '') return undefined;
    if (bytes(p) > MAX_PAGE_ID_LEN) throw new ApiError(422, `page_id is longer than ${MAX_PAGE_ID_LEN} characters`);
    return p;
  }

  /** An optional single string parameter (empty means absent). */
  optional(name) {
    const v = this.last(name);
    if (v === undefined || v === '') return undefined;
    if (bytes(v) > MAX_VALUE_LEN) throw new ApiError(422, `${name} is longer than ${MAX_VALUE_LEN} characters`);
    return v;
  }

  /** A required, repeated parameter (`?id=a&id=b`) of at most 100 values. */
  ids(name) {
    const ids = this.all(name);
    if (ids.length === 0) {
      throw new ApiError(422, `query parameter '${name}' is required (repeat it for several: ?${name}=a&${name}=b)`);
    }
    if (ids.length > MAX_LIMIT) throw new ApiError(400, `at most ${MAX_LIMIT} '${name}' values per request, got ${ids.length}`);
    const long = ids.find((v) => bytes(v) > MAX_VALUE_LEN);
    if (long !== undefined) throw new ApiError(422, `'${name}' value '${excerpt(long)}…' is too long`);
    return ids;
  }

  /** `sort_order`: `TIMESTAMP` or `TIMESTAMP_DESC`; whether newest first. */
  descending() {
    const v = this.optional('sort_order');
    if (v === undefined || v === 'TIMESTAMP') return false;
    if (v === 'TIMESTAMP_DESC') return true;
    throw new ApiError(422, `sort_order must be TIMESTAMP or TIMESTAMP_DESC, got '${excerpt(v)}'`);
  }
}
