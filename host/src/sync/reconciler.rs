//! Reconciliation passes: at start-up, every `reconcile_interval`, and when an
//! admin asks (`POST /admin/reconcile`). The plugin decides what to repair; the
//! host decides when, and which half-way starts are surely abandoned.
//!
//! A start left in phase `starting` is abandoned when its call is surely over:
//! it began before this process started (the process that made it is gone;
//! redb's lock means no other process shares the store), or longer ago than the
//! API call deadline plus a grace. Passes never overlap.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Mutex;

use crate::api::ApiError;
use crate::bindings::sandboxes::{OrphanPolicy, ReconcileSummary};
use crate::config::Orphans;
use crate::plugin::PluginHost;

pub struct Reconciler {
    plugin: Arc<PluginHost>,
    policy: OrphanPolicy,
    /// Microseconds since the epoch when this process started.
    boot_us: i64,
    /// A start older than this is abandoned even if it began after boot.
    abandoned_after: Duration,
    running: Mutex<()>,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl Reconciler {
    pub fn new(plugin: Arc<PluginHost>, orphans: Orphans, abandoned_after: Duration) -> Reconciler {
        Reconciler {
            plugin,
            policy: match orphans {
                Orphans::Stop => OrphanPolicy::Stop,
                Orphans::Adopt => OrphanPolicy::Adopt,
                Orphans::Keep => OrphanPolicy::Keep,
            },
            boot_us: now_us(),
            abandoned_after,
            running: Mutex::new(()),
        }
    }

    /// Run one pass now (after the one in progress, if any) and log it.
    pub async fn pass(&self) -> Result<(ReconcileSummary, u64), ApiError> {
        let _running = self.running.lock().await;
        let started = Instant::now();
        let abandoned = i64::try_from(self.abandoned_after.as_micros()).unwrap_or(i64::MAX);
        let stuck_before = self.boot_us.max(now_us().saturating_sub(abandoned));
        let policy = self.policy;
        let result = self
            .plugin
            .call_background(move |p, mut store| async move {
                p.sandboxd_plugin_sandboxes()
                    .call_reconcile(&mut store, policy, stuck_before)
                    .await
            })
            .await;
        let millis = started.elapsed().as_millis() as u64;
        match result {
            Ok(Ok(s)) => {
                let failed: Vec<String> = s
                    .failures
                    .iter()
                    .map(|(id, why)| format!("{id}: {why}"))
                    .collect();
                tracing::info!(
                    runtimes = s.runtimes,
                    records = s.records,
                    orphans = s.orphans,
                    stopped = s.stopped,
                    adopted = s.adopted,
                    completed = s.completed,
                    removed = s.removed,
                    failures = s.failures.len(),
                    failed = %failed.join("; "),
                    millis,
                    "reconciliation"
                );
                Ok((s, millis))
            }
            Ok(Err(e)) => {
                tracing::warn!(error = ?e, millis, "reconciliation failed");
                Err(e.into())
            }
            Err(e) => {
                tracing::warn!(error = %e, millis, "reconciliation failed");
                Err(e.into())
            }
        }
    }
}

/// A pass at once, then one every `interval`, until the process ends.
pub async fn run_reconciler(reconciler: Arc<Reconciler>, interval: Duration) {
    loop {
        // Failures are logged by the pass; the next one tries again.
        let _ = reconciler.pass().await;
        tokio::time::sleep(interval).await;
    }
}
