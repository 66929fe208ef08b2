// The plugin's waits, on the event loop. When the plugin sleeps (a read's
// backoff before its retry, a runtime's `Retry-After`: `std::thread::sleep`,
// which is `subscribe-duration(d).block()` in WASI), the instance is
// suspended on a timer's promise (JSPI), as it is on an HTTP answer, so one
// call's wait holds up no other call. The preview2-shim's own clock
// pollables would block the whole thread in `Atomics.wait` while a worker
// thread waits: every other call, and the server, would stop for as long.
//
// Invariants: the clock is the shim's (`process.hrtime`, nanoseconds); a
// pollable is ready once the clock has reached its instant, and `block`
// returns only then; a wait ends, rejected, when its call ends (its deadline
// passed), so an abandoned instance does not wake up to run on.

import { hrtime } from 'node:process';
import { clocks, io } from '@bytecodealliance/preview2-shim';

/** The `wasi:io/poll` resource class jco checks pollables against: the shim's. */
const ShimPollable = io.poll.Pollable;

/** Resolves after `ms`, or rejects when `signal` aborts. */
function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve(undefined);
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** A pollable that is ready at an instant of the monotonic clock. */
class ClockPollable extends ShimPollable {
  /** @param {bigint} at nanoseconds @param {AbortSignal} signal */
  constructor(at, signal) {
    super();
    this.at = at;
    this.signal = signal;
  }

  ready() {
    return hrtime.bigint() >= this.at;
  }

  /** Under JSPI an async import: the instance waits, the thread does not. */
  async block() {
    for (let left = this.at - hrtime.bigint(); left > 0n; left = this.at - hrtime.bigint()) {
      await sleep(Math.ceil(Number(left) / 1e6), this.signal);
    }
  }

  // Nothing to release: no worker holds it (the shim's would free its id there).
  [Symbol.dispose]() {}
}

/**
 * `wasi:clocks/monotonic-clock` and `wasi:io/poll` for one call, whose end
 * aborts `signal`.
 * @param {AbortSignal} signal
 */
export function clockImports(signal) {
  const shimPoll = io.poll.poll;
  return {
    'wasi:clocks/monotonic-clock': {
      now: clocks.monotonicClock.now,
      resolution: clocks.monotonicClock.resolution,
      subscribeDuration: (duration) => new ClockPollable(hrtime.bigint() + BigInt(duration), signal),
      subscribeInstant: (instant) => new ClockPollable(BigInt(instant), signal),
    },
    'wasi:io/poll': {
      Pollable: ShimPollable,
      /** The indices of the pollables ready, after waiting for the first (clock pollables only; others go to the shim). */
      async poll(pollables) {
        if (!pollables.every((p) => p instanceof ClockPollable)) return shimPoll(pollables);
        if (pollables.length === 0) return new Uint32Array(0);
        const first = pollables.reduce((a, b) => (b.at < a.at ? b : a));
        await first.block();
        return Uint32Array.from(pollables.flatMap((p, i) => (p.ready() ? [i] : [])));
      },
    },
  };
}

/** The WASI functions that may suspend the plugin (jco's `asyncImports` names). */
export const ASYNC_WASI_IMPORTS = ['wasi:io/poll#[method]pollable.block', 'wasi:io/poll#poll'];
