// Every error the API answers, and the one place where a failure becomes an
// HTTP status: the Rust host's table (`host/src/api/error.rs`).
//
// | cause                                                    | status |
// |----------------------------------------------------------|--------|
// | plugin `not-found`, no such route                        | 404    |
// | plugin `invalid-input`, too many ids, an unreadable body | 400    |
// | plugin `conflict`                                        | 409    |
// | plugin `unauthorized`, failed authentication             | 401    |
// | a method the route does not have                         | 405    |
// | a request body over its cap                              | 413    |
// | a query parameter of the wrong type or range             | 422    |
// | plugin `upstream` (the runtime API failed)               | 502    |
// | plugin `unavailable` (may work later; `Retry-After`)     | 503    |
// | plugin `storage`, `internal`, a trap                     | 500    |
// | a plugin call past its deadline or one of its limits     | 503    |
//
// The body is always `{"detail": "…"}`; a fault on our side names an error id
// instead of its cause, and the cause is in the log under that id.

import { CallError, PluginError, errorId } from '../plugin/call.js';

export class ApiError extends Error {
  /** @param {number} status @param {string} detail @param {number} [retryAfterSecs] */
  constructor(status, detail, retryAfterSecs) {
    super(detail);
    this.status = status;
    this.retryAfterSecs = retryAfterSecs;
  }
}

const PLUGIN_STATUS = { 'not-found': 404, 'invalid-input': 400, conflict: 409, unauthorized: 401, upstream: 502, unavailable: 503 };

/**
 * The answer for a failure.
 * @param {unknown} e
 * @param {import('../log.js').Logger} logger
 * @returns {ApiError}
 */
export function toApiError(e, logger) {
  if (e instanceof ApiError) return e;
  if (e instanceof PluginError) {
    const status = PLUGIN_STATUS[e.tag];
    if (status) return new ApiError(status, e.message, e.retryAfterSecs);
    const id = errorId();
    logger.log('error', 'plugin reported an internal failure', { error_id: id, error: e.message });
    return new ApiError(500, `internal error (error id ${id})`);
  }
  if (e instanceof CallError) return new ApiError(e.kind === 'trap' ? 500 : 503, e.message);
  const id = errorId();
  logger.log('error', 'internal error', { error_id: id, error: e instanceof Error ? (e.stack ?? e.message) : String(e) });
  return new ApiError(500, `internal error (error id ${id})`);
}
