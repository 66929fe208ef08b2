// WASI for the plugin: what the Rust standard library in it needs (clocks,
// randomness, stderr), from jco's preview2-shim, as the Rust host gives it a
// WASI context with no arguments, environment, files or sockets. The
// monotonic clock's waits are this host's own, per call (`./clock.js`).
//
// The wall clock is the one exception: the shim's reads `Date.now()`
// (milliseconds), while the plugin stamps records in microseconds, as it does
// on wasmtime; `performance.timeOrigin + performance.now()` has them.

import { cli, io, random } from '@bytecodealliance/preview2-shim';

const wallClock = {
  now() {
    const micros = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));
    return { seconds: micros / 1_000_000n, nanoseconds: Number(micros % 1_000_000n) * 1000 };
  },
  resolution() {
    return { seconds: 0n, nanoseconds: 1000 };
  },
};

const environment = {
  getEnvironment: () => [],
  getArguments: () => [],
  initialCwd: () => undefined,
};

/** The `wasi:*` part of the import object (keys as jco names them), but for the clock's waits (`./clock.js`). */
export const WASI_IMPORTS = {
  'wasi:cli/environment': environment,
  'wasi:cli/exit': cli.exit,
  'wasi:cli/stderr': cli.stderr,
  'wasi:cli/stdin': cli.stdin,
  'wasi:cli/stdout': cli.stdout,
  'wasi:cli/terminal-input': cli.terminalInput,
  'wasi:cli/terminal-output': cli.terminalOutput,
  'wasi:cli/terminal-stderr': cli.terminalStderr,
  'wasi:cli/terminal-stdin': cli.terminalStdin,
  'wasi:cli/terminal-stdout': cli.terminalStdout,
  'wasi:clocks/wall-clock': wallClock,
  'wasi:io/error': io.error,
  'wasi:io/streams': io.streams,
  'wasi:random/insecure-seed': random.insecureSeed,
  'wasi:random/random': random.random,
};
