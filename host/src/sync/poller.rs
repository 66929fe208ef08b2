//! The polling loop: one plugin poll cycle every `polling_interval`.
//!
//! Cycles never overlap (the next starts only after the previous returned, and
//! no sooner than one interval after it started). A failed cycle is logged and
//! the next one runs as planned. Each cycle logs one summary line.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Changes;
use crate::plugin::PluginHost;

pub async fn run_poller(
    plugin: Arc<PluginHost>,
    interval: Duration,
    timeout: Duration,
    changes: Arc<Changes>,
) {
    tracing::info!(interval_secs = interval.as_secs(), "polling agent servers");
    loop {
        let started = Instant::now();
        let result = plugin
            .call_with_timeout(None, timeout, |p, mut store| async move {
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
                changes.publish(&summary.changed_conversations);
            }
            Ok(Err(e)) => tracing::warn!(error = ?e, millis, "poll cycle failed"),
            Err(e) => tracing::warn!(error = %e, millis, "poll cycle failed"),
        }
        tokio::time::sleep_until((started + interval).into()).await;
    }
}
