//! Reconciliation passes: at start-up, every `reconcile_interval`, and when an
//! admin asks (`POST /admin/reconcile`). The plugin decides what to repair; the
//! host decides when, and which half-way starts are surely abandoned.
//!
//! A start left in phase `starting` is abandoned when its call is surely over:
//! it began longer ago than the API call deadline plus a grace, or, with the
//! embedded store, before this process started (the process that made it is
//! gone; redb's lock means no other process shares the store). Passes never
//! overlap, and with replicas each reconciles its own share.
//!
//! The first pass that succeeds makes the service ready (`/readyz`): until
//! then the store may disagree with the runtime in ways a pass repairs. While
//! no pass has succeeded, passes are retried sooner than the interval (from
//! one second, doubling), so a runtime API that was briefly away at start-up
//! costs seconds of readiness, not a whole interval.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::bindings::sandboxes::{OrphanPolicy, ReconcileSummary};
use crate::cluster::Cluster;
use crate::config::Orphans;
use crate::metrics;
use crate::plugin::{Caller, ExportError, PluginHost};

/// The first retry after a failed pass, before any pass has succeeded.
const FIRST_RETRY: Duration = Duration::from_secs(1);

pub struct Reconciler {
    plugin: Arc<PluginHost>,
    cluster: Arc<Cluster>,
    policy: OrphanPolicy,
    /// Microseconds since the epoch when this process started; none with a
    /// shared store (a start begun before this replica started may be another
    /// live replica's, still in its call).
    boot_us: Option<i64>,
    /// A start older than this is abandoned even if it began after boot.
    abandoned_after: Duration,
    running: tokio::sync::Mutex<()>,
    /// Ok once a pass succeeded; before, why not yet.
    first: Mutex<Result<(), String>>,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Reconciler {
    pub fn new(
        plugin: Arc<PluginHost>,
        cluster: Arc<Cluster>,
        shared_store: bool,
        orphans: Orphans,
        abandoned_after: Duration,
    ) -> Reconciler {
        Reconciler {
            plugin,
            cluster,
            policy: match orphans {
                Orphans::Stop => OrphanPolicy::Stop,
                Orphans::Adopt => OrphanPolicy::Adopt,
                Orphans::Keep => OrphanPolicy::Keep,
            },
            boot_us: (!shared_store).then(now_us),
            abandoned_after,
            running: tokio::sync::Mutex::new(()),
            first: Mutex::new(Err(
                "the first reconciliation with the runtime has not finished".into(),
            )),
        }
    }

    /// Whether a pass has succeeded since start-up, and if not, why not.
    pub fn first_pass(&self) -> Result<(), String> {
        self.first
            .lock()
            .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
    }

    /// Run one pass now (after the one in progress, if any) and log it.
    pub async fn pass(&self) -> Result<(ReconcileSummary, u64), ExportError> {
        let _running = self.running.lock().await;
        let started = Instant::now();
        let abandoned = i64::try_from(self.abandoned_after.as_micros()).unwrap_or(i64::MAX);
        let by_age = now_us().saturating_sub(abandoned);
        let stuck_before = self.boot_us.map_or(by_age, |boot| boot.max(by_age));
        let result = self
            .plugin
            .sandboxes(&Caller::Host)
            .reconcile(self.policy, stuck_before, &self.cluster.share())
            .await;
        let millis = started.elapsed().as_millis() as u64;
        let outcome = match &result {
            Ok(s) => {
                tracing::info!(
                    runtimes = s.runtimes,
                    records = s.records,
                    orphans = s.orphans,
                    stopped = s.stopped,
                    adopted = s.adopted,
                    completed = s.completed,
                    removed = s.removed,
                    failures = s.failures.len(),
                    failed = %super::failures_line(&s.failures),
                    millis,
                    "reconciliation"
                );
                metrics::sandboxes(&s.statuses);
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, millis, "reconciliation failed");
                Err(format!(
                    "the first reconciliation with the runtime has not succeeded: {e}"
                ))
            }
        };
        if let Ok(mut first) = self.first.lock()
            && first.is_err()
        {
            *first = outcome;
        }
        result.map(|s| (s, millis))
    }
}

/// A pass at once, then one every `interval`, until the process ends (sooner
/// while no pass has succeeded yet).
pub async fn run_reconciler(reconciler: Arc<Reconciler>, interval: Duration) {
    let mut retry = FIRST_RETRY;
    loop {
        // Failures are logged by the pass; the next one tries again.
        let ok = reconciler.pass().await.is_ok();
        let wait = if ok || reconciler.first_pass().is_ok() {
            interval
        } else {
            let wait = retry.min(interval);
            retry = (retry * 2).min(interval);
            wait
        };
        tokio::time::sleep(wait).await;
    }
}
