// The host's background work, on a schedule: the plugin's poll cycle every
// `polling_interval` (when agent servers cannot call back) and reconciliation
// of the store with the runtime API at start-up and every
// `reconcile_interval`, as the Rust host runs them (`host/src/sync/`).
//
// Invariants: cycles of one kind never overlap; the next starts no sooner than
// one interval after the previous one started; a failed one is logged and the
// next runs as planned; each logs one line. Until a reconciliation pass has
// succeeded, passes are retried sooner (from 1 s, doubling).

/** A start older than the API call deadline plus this is surely abandoned. */
const STUCK_START_GRACE_MS = 5_000;
const FIRST_RETRY_MS = 1_000;

const nowUs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));

export class Background {
  /**
   * @param {import('./index.js').Sandboxd} sd
   * @param {import('./log.js').Logger} logger
   */
  constructor(sd, logger) {
    this.sd = sd;
    this.logger = logger;
    /** @type {NodeJS.Timeout[]} */
    this.timers = [];
    this.stopped = false;
    /** The poll cycle running (or the last one), settled either way. */
    this.polling = Promise.resolve();
  }

  /**
   * One poll cycle, after the one running if any (cycles never overlap, as
   * the Rust host's `Poller::cycle`), logged: what it did and how many
   * milliseconds it took, or the plugin's error (thrown, after its log line).
   * The schedule's cycles and `POST /admin/sync/poll` both come here.
   * @returns {Promise<{ summary: import('./index.js').CycleSummary, millis: number }>}
   */
  cycle() {
    const run = this.polling.then(() => this.runCycle());
    this.polling = run.catch(() => undefined);
    return run;
  }

  async runCycle() {
    const started = performance.now();
    try {
      const s = await this.sd.poll();
      const millis = Math.round(performance.now() - started);
      this.logger.log('info', 'poll cycle', {
        sandboxes: s.sandboxes,
        conversations: s.conversations,
        new_events: s.newEvents,
        requests: s.requests,
        failures: s.failures.length,
        failed: s.failures.map((f) => `${f.sandboxId}: ${f.reason}`).join('; '),
        millis,
      });
      return { summary: s, millis };
    } catch (e) {
      this.logger.log('warn', 'poll cycle failed', { error: e instanceof Error ? e.message : String(e), millis: Math.round(performance.now() - started) });
      throw e;
    }
  }

  /** One scheduled poll cycle: its summary, or undefined when it failed (logged). */
  async pollOnce() {
    try {
      return (await this.cycle()).summary;
    } catch {
      return undefined;
    }
  }

  /** One reconciliation pass, logged; whether it succeeded. */
  async reconcileOnce(orphans, abandonedAfterMs, bootUs) {
    const cutoff = nowUs() - BigInt(abandonedAfterMs) * 1000n;
    const stuckBefore = cutoff > bootUs ? cutoff : bootUs;
    try {
      const s = await this.sd.reconcile(orphans, stuckBefore);
      this.logger.log('info', 'reconciliation', {
        runtimes: s.runtimes,
        records: s.records,
        orphans: s.orphans,
        stopped: s.stopped,
        adopted: s.adopted,
        completed: s.completed,
        removed: s.removed,
        failures: s.failures.length,
      });
      return true;
    } catch (e) {
      this.logger.log('warn', 'reconciliation failed', { error: e instanceof Error ? e.message : String(e) });
      return false;
    }
  }

  /** Run `once` now and then every `intervalMs` after each start. */
  every(intervalMs, once, retryMs) {
    const loop = async () => {
      if (this.stopped) return;
      const started = performance.now();
      const ok = await once();
      const wait = ok === false && retryMs ? retryMs() : intervalMs - (performance.now() - started);
      if (!this.stopped) this.timers.push(setTimeout(loop, Math.max(0, wait)));
    };
    loop();
  }

  /**
   * @param {{ polls: boolean, pollingIntervalSecs: number, orphans: string, reconcileIntervalSecs: number, callTimeoutMs: number }} plan
   */
  start(plan) {
    const bootUs = nowUs();
    let retry = FIRST_RETRY_MS;
    let succeeded = false;
    this.every(
      plan.reconcileIntervalSecs * 1000,
      async () => {
        const ok = await this.reconcileOnce(plan.orphans, plan.callTimeoutMs + STUCK_START_GRACE_MS, bootUs);
        succeeded ||= ok;
        return ok || succeeded;
      },
      () => {
        const wait = retry;
        retry = Math.min(retry * 2, plan.reconcileIntervalSecs * 1000);
        return wait;
      },
    );
    if (plan.polls) {
      this.logger.log('info', 'polling agent servers', { interval_secs: plan.pollingIntervalSecs });
      this.every(plan.pollingIntervalSecs * 1000, () => this.pollOnce());
    } else {
      this.logger.log('info', 'not polling agent servers: they call back through webhooks');
    }
  }

  stop() {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
  }
}
