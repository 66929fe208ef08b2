// Where the plugin `.wasm` of the Rust build is: `host/build.rs` copies the
// component it embeds to `<cargo target dir>/sandboxd-plugin/sandboxd_plugin.wasm`
// (the target dir being `CARGO_TARGET_DIR`, or `target/` of the workspace this
// folder lives in), so this host runs the very bytes the `sandboxd` binary does.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { isAbsolute, join, resolve } from 'node:path';

const WORKSPACE = fileURLToPath(new URL('../../../../', import.meta.url));
const RELATIVE = join('sandboxd-plugin', 'sandboxd_plugin.wasm');

/** The candidates, in the order they are tried. */
export function pluginCandidates(env = process.env) {
  const out = [];
  const targetDir = env.CARGO_TARGET_DIR;
  if (targetDir) out.push(join(isAbsolute(targetDir) ? targetDir : resolve(WORKSPACE, targetDir), RELATIVE));
  out.push(join(WORKSPACE, 'target', RELATIVE));
  return out;
}

/** The Rust build's plugin, or an error saying how to make one. */
export function defaultPluginPath(env = process.env) {
  const candidates = pluginCandidates(env);
  const found = candidates.find((p) => existsSync(p));
  if (found) return found;
  throw new Error(
    `no plugin found at ${candidates.join(' or ')}: build it with \`cargo build -p sandboxd\` ` +
      '(its build script leaves the component there), or name one with [plugin] path',
  );
}
