// What one plugin call may consume: memory, outbound requests, bytes written
// to storage, log lines (the Rust host's `host/src/imports/budget.rs`).
//
// Requests and writes are hard limits: the import that would pass one throws
// `LimitExceeded`, which traps the call, and the caller gets an error naming
// the limit. Memory is checked at every import and at the end of the call
// (V8 has no hook on memory growth: a call past its limit is stopped at its
// next import). Log lines past the budget are dropped and counted.

export class LimitExceeded extends Error {
  /** @param {'memory' | 'requests' | 'writes'} kind @param {number} limit */
  constructor(kind, limit) {
    const mib = Math.floor(limit / (1 << 20));
    super(
      kind === 'memory'
        ? `the plugin call needed more than its memory limit of ${mib} MiB`
        : kind === 'requests'
          ? `the plugin call sent more than its limit of ${limit} HTTP requests`
          : `the plugin call wrote more than its limit of ${mib} MiB to storage`,
    );
    this.kind = kind;
  }
}

/**
 * @typedef {{ memoryBytes: number, httpRequests: number, writeBytes: number, logLines: number }} Budget
 */

export class Meter {
  /** @param {Budget} budget */
  constructor(budget) {
    this.budget = budget;
    this.httpRequests = 0;
    this.writeBytes = 0;
    this.logLines = 0;
  }

  requests(n) {
    this.httpRequests += n;
    if (this.httpRequests > this.budget.httpRequests) throw new LimitExceeded('requests', this.budget.httpRequests);
  }

  writes(bytes) {
    this.writeBytes += bytes;
    if (this.writeBytes > this.budget.writeBytes) throw new LimitExceeded('writes', this.budget.writeBytes);
  }

  memory(bytes) {
    if (bytes > this.budget.memoryBytes) throw new LimitExceeded('memory', this.budget.memoryBytes);
  }

  /** Whether one more log line may be written. */
  logLine() {
    this.logLines += 1;
    return this.logLines <= this.budget.logLines;
  }

  droppedLogLines() {
    return Math.max(0, this.logLines - this.budget.logLines);
  }
}
