//! The lifecycle policy pass: every `[lifecycle] interval`, and when an admin
//! asks (`POST /admin/lifecycle/pass`), the plugin's `lifecycle.pass` over this
//! host's share of the sandboxes. The plugin decides what to pause, delete and
//! record; the host decides only when, and logs what a pass did. Passes never
//! overlap, and a failed pass is simply retried at the next tick (a pass is
//! idempotent: a policy acts once per start or resume).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Changes;
use crate::bindings::lifecycle::PassSummary;
use crate::cluster::Cluster;
use crate::plugin::{Caller, ExportError, PluginHost};

pub struct Lifecycle {
    plugin: Arc<PluginHost>,
    changes: Arc<Changes>,
    cluster: Arc<Cluster>,
    running: tokio::sync::Mutex<()>,
}

impl Lifecycle {
    pub fn new(plugin: Arc<PluginHost>, changes: Arc<Changes>, cluster: Arc<Cluster>) -> Self {
        Lifecycle {
            plugin,
            changes,
            cluster,
            running: tokio::sync::Mutex::new(()),
        }
    }

    /// Run one pass now (after the one in progress, if any) and log what it did.
    pub async fn pass(&self) -> Result<(PassSummary, u64), ExportError> {
        let _running = self.running.lock().await;
        let started = Instant::now();
        let result = self
            .plugin
            .lifecycle(&Caller::Host)
            .pass(&self.cluster.share())
            .await;
        let millis = started.elapsed().as_millis() as u64;
        match &result {
            Ok(s) => {
                crate::metrics::lifecycle_pass(s, started.elapsed());
                let acted = s.observed
                    + s.paused
                    + s.deleted
                    + s.keys_retired
                    + s.histories_purged
                    + s.warm_started;
                if acted > 0 {
                    // Lifecycle events may be owed to callbacks.
                    self.changes.sandboxes_changed();
                }
                if acted > 0 || !s.failures.is_empty() {
                    tracing::info!(
                        sandboxes = s.sandboxes,
                        observed = s.observed,
                        paused = s.paused,
                        deleted = s.deleted,
                        keys_retired = s.keys_retired,
                        histories_purged = s.histories_purged,
                        warm_started = s.warm_started,
                        warm_ready = s.warm_ready,
                        failures = s.failures.len(),
                        failed = %super::failures_line(&s.failures),
                        millis,
                        "lifecycle pass"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, millis, "lifecycle pass failed"),
        }
        result.map(|s| (s, millis))
    }
}

/// A pass every `interval`, until the process ends.
pub async fn run_lifecycle(lifecycle: Arc<Lifecycle>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        // Logged by the pass; the next tick tries again.
        let _ = lifecycle.pass().await;
    }
}
