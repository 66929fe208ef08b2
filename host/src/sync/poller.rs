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
use crate::api::ApiError;
use crate::bindings::sync::CycleSummary;
use crate::plugin::PluginHost;

pub struct Poller {
    plugin: Arc<PluginHost>,
    changes: Arc<Changes>,
    running: Mutex<()>,
}

impl Poller {
    pub fn new(plugin: Arc<PluginHost>, changes: Arc<Changes>) -> Poller {
        Poller {
            plugin,
            changes,
            running: Mutex::new(()),
        }
    }

    /// Run one cycle now (after the one in progress, if any) and log its summary.
    pub async fn cycle(&self) -> Result<(CycleSummary, u64), ApiError> {
        let _running = self.running.lock().await;
        let started = Instant::now();
        let result = self
            .plugin
            .call_background(|p, mut store| async move {
                p.sandboxd_plugin_sync().call_poll(&mut store).await
            })
            .await;
        let millis = started.elapsed().as_millis() as u64;
        match result {
            Ok(Ok(summary)) => {
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
                self.changes.publish(&summary.changed_conversations);
                Ok((summary, millis))
            }
            Ok(Err(e)) => {
                tracing::warn!(error = ?e, millis, "poll cycle failed");
                Err(e.into())
            }
            Err(e) => {
                tracing::warn!(error = %e, millis, "poll cycle failed");
                Err(e.into())
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
