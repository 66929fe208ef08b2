// Loading a plugin: the component's bytes (the very file the Rust build
// makes, checked by its SHA-256), transpiled by jco into an ES module whose
// core modules are compiled once, then gated like the Rust host gates one:
// the contract version in its interface names and in `info` must be
// compatible, and a smoke call (`info`, then a page of specs) must succeed on
// a fresh instance.
//
// Invariant: a `LoadedPlugin` passed every gate; calls instantiate it afresh.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { transpileBytes } from '@bytecodealliance/jco-transpile';
import { CONTRACT_VERSION, asyncNames, compatible, declaredVersion } from './contract.js';

/**
 * @typedef {object} LoadedPlugin
 * @property {string} sha256 lower-case hex of the component
 * @property {string} source where it was read from
 * @property {string} pluginVersion
 * @property {string} contractVersion
 * @property {(imports: object, instantiateCore: Function) => Promise<any>} instantiate
 * @property {Date} loadedAt
 * @property {number} transpileMillis
 */

/**
 * Read, transpile and compile a plugin component.
 * @param {{ path?: string, bytes?: Uint8Array }} from
 * @returns {Promise<Omit<LoadedPlugin, 'pluginVersion' | 'loadedAt'> & { declared: string }>}
 */
export async function prepare(from) {
  const bytes = from.bytes ?? (await readFile(/** @type {string} */ (from.path)));
  const source = from.path ?? 'bytes';
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const started = performance.now();
  /** @type {Awaited<ReturnType<typeof transpileBytes>>} */
  let transpiled;
  let declared;
  const refuse = (why) => new Error(`cannot load the plugin (${source}): ${why}`);
  let names;
  try {
    // A first pass names the interfaces; their version picks the async names.
    names = await transpileBytes(bytes, { name: 'plugin', instantiation: 'async', emitTypescriptDeclarations: false });
  } catch (e) {
    throw refuse(`the component does not compile: ${e instanceof Error ? e.message : e}`);
  }
  try {
    declared = declaredVersion([...names.imports, ...names.exports.map(([n]) => n)]);
  } catch (e) {
    throw refuse(`the component is not a sandboxd plugin: ${e instanceof Error ? e.message : e}`);
  }
  if (!compatible(CONTRACT_VERSION, declared)) {
    throw refuse(
      `the component was built against contract ${declared}, which this host (contract ${CONTRACT_VERSION}) cannot run ` +
        '(compatible versions share the major version, and below 1.0 the minor version too)',
    );
  }
  try {
    transpiled = await transpileBytes(bytes, {
      name: 'plugin',
      instantiation: 'async',
      asyncMode: 'jspi',
      ...asyncNames(declared),
      emitTypescriptDeclarations: false,
      wasiShim: true,
    });
  } catch (e) {
    throw refuse(`the component does not link against this host (contract ${CONTRACT_VERSION}): ${e instanceof Error ? e.message : e}`);
  }
  /** @type {Map<string, WebAssembly.Module>} */
  const modules = new Map();
  let js;
  for (const [name, content] of Object.entries(transpiled.files)) {
    const file = name.split('/').pop() ?? name;
    if (file.endsWith('.wasm')) modules.set(file, await WebAssembly.compile(content));
    else if (file === 'plugin.js') js = Buffer.from(content).toString();
  }
  if (js === undefined) throw new Error('jco produced no plugin.js');
  const url = `data:text/javascript;base64,${Buffer.from(js).toString('base64')}`;
  const mod = await import(url);
  const getCoreModule = (name) => {
    const m = modules.get(name);
    if (!m) throw new Error(`jco asked for an unknown core module ${name}`);
    return m;
  };
  return {
    sha256,
    source,
    declared,
    contractVersion: declared,
    transpileMillis: performance.now() - started,
    instantiate: (imports, instantiateCore) => mod.instantiate(getCoreModule, imports, instantiateCore),
  };
}
