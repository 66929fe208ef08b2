// The configuration of `sandboxd-node serve`: the same TOML file as
// `sandboxd serve` reads, for the keys this host supports, with the same
// `SANDBOXD_*` overrides (`env.js`), defaults and validation messages as the
// Rust host (`host/src/config/`). A key this host does not support is refused
// by name, never ignored.
//
// Invariants: a returned config is valid; all problems are reported at once,
// each naming the key (and its variable) and what is allowed; a value is
// checked the same way whether it came from the file or the environment.

import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { applyEnv } from './env.js';
import { validate } from './validate.js';

export class ConfigError extends Error {
  /** @param {string[]} problems */
  constructor(problems) {
    super(`invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.problems = problems;
  }
}

/**
 * Read `path` (if any), lay the environment over it, and validate.
 * @param {string | undefined} path
 * @param {Record<string, string | undefined>} [env]
 */
export function loadConfig(path, env = process.env) {
  let file = {};
  if (path !== undefined) {
    let text;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new ConfigError([`cannot read config file ${path}: ${e instanceof Error ? e.message : e}`]);
    }
    try {
      file = parseToml(text);
    } catch (e) {
      throw new ConfigError([`${path}: ${(e instanceof Error ? e.message : String(e)).trim()}`]);
    }
  }
  const errors = [];
  applyEnv(file, (n) => env[n], errors);
  const config = validate(file, errors);
  if (errors.length > 0) throw new ConfigError(errors);
  return config;
}
