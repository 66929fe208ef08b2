// The host's own secret key, and the secrets derived from it, exactly as the
// Rust host derives them (`host/src/host_key.rs`), so both hosts of one data
// directory sign alike.
//
// `host.key` in the data directory: 32 random bytes, created on first start,
// readable by its owner only (0600). A callback's secret is
// hex(HMAC-SHA256(host key, "sandboxd callback secret:{id}")); a delivery
// carries `X-Sandboxd-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
// Secrets are never stored: a restart derives the same ones again.

import { createHmac, randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

const KEY_FILE = 'host.key';

export class HostKey {
  /** @param {Buffer} key */
  constructor(key) {
    Object.defineProperty(this, 'key', { value: key, enumerable: false });
  }

  /** The key of `dataDir`, created on first use. */
  static open(dataDir) {
    const path = join(dataDir, KEY_FILE);
    let bytes;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      if (/** @type {NodeJS.ErrnoException} */ (e).code !== 'ENOENT') throw e;
    }
    if (bytes) {
      if (bytes.length !== 32) throw new Error(`${path} is not a 32-byte key`);
      return new HostKey(bytes);
    }
    const key = randomBytes(32);
    const fd = openSync(path, 'wx', 0o600);
    try {
      writeSync(fd, key);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return new HostKey(key);
  }

  /** A key held in memory only (for embedders that keep no data directory). */
  static ephemeral() {
    return new HostKey(randomBytes(32));
  }

  /** The secret of callback `id`, as shown once at its creation. */
  secret(callbackId) {
    return createHmac('sha256', this.key).update(`sandboxd callback secret:${callbackId}`).digest('hex');
  }

  /** The `X-Sandboxd-Signature` value of `body` for callback `id`. */
  signature(callbackId, body) {
    return `sha256=${createHmac('sha256', this.secret(callbackId)).update(body).digest('hex')}`;
  }

  toJSON() {
    return 'HostKey(<redacted>)';
  }

  [Symbol.for('nodejs.util.inspect.custom')]() {
    return 'HostKey(<redacted>)';
  }
}
