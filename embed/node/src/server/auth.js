// Who is calling: `[auth]` turned into the user a plugin call acts for, as on
// the Rust host (`host/src/api/auth.rs`).
// - `none`: every caller is the single user and sees everything.
// - `api-keys`: `Authorization: Bearer <key>`; a key maps to a user id or is an
//   admin key. Keys are held as SHA-256 digests and compared in constant time
//   against every configured key, without stopping at a match.

import { createHash, timingSafeEqual } from 'node:crypto';
import { ApiError } from './errors.js';

const digest = (key) => createHash('sha256').update(key).digest();
const READABLE = /^[\t\x20-\x7e]*$/;

export class Authenticator {
  /** @param {{ mode: string, keys: { key: string, userId?: string }[] }} auth */
  constructor(auth) {
    this.mode = auth.mode;
    this.keys = auth.keys.map((k) => ({ digest: digest(k.key), caller: { user: k.userId } }));
  }

  /** The caller of a request (`{}` sees everything), or a 401. */
  authenticate(headers) {
    if (this.mode === 'none') return {};
    const value = headers.authorization;
    if (value === undefined) throw new ApiError(401, "missing 'Authorization: Bearer <key>' header");
    if (!READABLE.test(value)) throw new ApiError(401, 'the Authorization header is not readable text');
    const trimmed = value.trim();
    const space = trimmed.indexOf(' ');
    const scheme = space < 0 ? '' : trimmed.slice(0, space);
    const token = space < 0 ? '' : trimmed.slice(space + 1).trim();
    if (scheme.toLowerCase() !== 'bearer' || token === '') {
      throw new ApiError(401, "the Authorization header must be 'Bearer <key>'");
    }
    const presented = digest(token);
    let found;
    for (const k of this.keys) if (timingSafeEqual(k.digest, presented)) found = k.caller;
    if (!found) throw new ApiError(401, 'unknown API key');
    return found;
  }
}

/** The `X-Session-API-Key` an agent server proves itself with (401 without). */
export function sessionKey(headers) {
  const value = headers['x-session-api-key'];
  if (value === undefined) throw new ApiError(401, 'missing X-Session-API-Key header');
  if (!READABLE.test(value)) throw new ApiError(401, 'the X-Session-API-Key header is not readable text');
  const key = value.trim();
  if (key === '') throw new ApiError(401, 'empty X-Session-API-Key header');
  return key;
}
