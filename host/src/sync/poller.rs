//! The polling loop: one plugin poll cycle every `polling_interval`.
//!
//! Cycles never overlap: the loop and an operator's "sync now" both run
//! [`Poller::cycle`], which holds a lock for the whole cycle. The next scheduled
//! cycle starts no sooner than one interval after the previous one started. A
//! failed cycle is logged and the next one runs as planned. Each cycle logs one
//! summary line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::Changes;
use crate::bindings::sync::CycleSummary;
use crate::bindings::types::Error as PluginError;
use crate::cluster::Cluster;
use crate::metrics;
use crate::plugin::{Caller, ExportError, PluginHost};

pub struct Poller {
    plugin: Arc<PluginHost>,
    changes: Arc<Changes>,
    cluster: Arc<Cluster>,
    running: Mutex<()>,
}

impl Poller {
    pub fn new(plugin: Arc<PluginHost>, changes: Arc<Changes>, cluster: Arc<Cluster>) -> Poller {
        Poller {
            plugin,
            changes,
            cluster,
            running: Mutex::new(()),
        }
    }

    /// Run one cycle now (after the one in progress, if any) and log its summary.
    pub async fn cycle(&self) -> Result<(CycleSummary, u64), ExportError> {
        let _running = self.running.lock().await;
        let started = Instant::now();
        // This replica's buckets not polled within the interval (all of them
        // for a lone host).
        let share = self.cluster.due().await.map_err(|e| {
            tracing::warn!(error = %e, "cannot read which buckets are due; no poll this cycle");
            ExportError::Plugin(PluginError::Storage(format!(
                "the leases cannot be read: {e}"
            )))
        })?;
        let result = self.plugin.sync(&Caller::Host).poll(&share).await;
        if result.is_ok()
            && let Err(e) = self.cluster.polled(&share).await
        {
            tracing::warn!(error = %e, "cannot record the poll of this replica's buckets");
        }
        let millis = started.elapsed().as_millis() as u64;
        metrics::poll_cycle(
            if result.is_ok() { "ok" } else { "failed" },
            started.elapsed(),
        );
        match result {
            Ok(summary) => {
                let failed: Vec<String> = summary
                    .failures
                    .iter()
                    .map(|f| format!("{}: {}", f.sandbox_id, f.reason))
                    .collect();
                tracing::info!(
                    sandboxes = summary.sandboxes,
                    conversations = summary.conversations,
                    new_events = summary.new_events,
                    requests = summary.requests,
                    failures = summary.failures.len(),
                    failed = %failed.join("; "),
                    millis,
                    "poll cycle"
                );
                metrics::events_stored("poll", summary.new_events);
                self.changes.publish(&summary.changed_conversations);
                Ok((summary, millis))
            }
            Err(e) => {
                tracing::warn!(error = %e, millis, "poll cycle failed");
                Err(e)
            }
        }
    }
}

/// Poll every `interval` until the process ends.
pub async fn run_poller(poller: Arc<Poller>, interval: Duration) {
    tracing::info!(interval_secs = interval.as_secs(), "polling agent servers");
    loop {
        let started = Instant::now();
        // Failures are logged by the cycle itself.
        let _ = poller.cycle().await;
        tokio::time::sleep_until((started + interval).into()).await;
    }
}
