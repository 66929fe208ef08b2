//! The delivery worker: asks the plugin to send what is owed to callbacks when
//! new events may have been stored, and when the next retry is due.
//!
//! A run that fails (a plugin that traps, say) is retried after a backoff that
//! doubles up to [`MAX_BACKOFF`], and new events do not cut the backoff short:
//! a plugin that keeps failing costs one attempt per backoff, never a spin.

use std::sync::Arc;
use std::time::Duration;

use super::Changes;
use crate::cluster::Cluster;
use crate::metrics;
use crate::plugin::{Caller, PluginHost};

/// Longest sleep between checks when nothing is known to be due.
const IDLE: Duration = Duration::from_secs(5);
/// The first wait after a failed run; it doubles with each further failure.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

pub async fn run_deliveries(plugin: Arc<PluginHost>, changes: Arc<Changes>, cluster: Arc<Cluster>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let result = plugin
            .callbacks(&Caller::Host)
            .deliver_due(&cluster.share())
            .await;
        let failure = match result {
            Ok(summary) => {
                backoff = FIRST_BACKOFF;
                let retried = summary
                    .attempted
                    .saturating_sub(summary.delivered)
                    .saturating_sub(summary.failed);
                metrics::callback_deliveries(summary.delivered, retried, summary.failed);
                if summary.attempted > 0 {
                    tracing::info!(
                        attempted = summary.attempted,
                        delivered = summary.delivered,
                        failed = summary.failed,
                        "callback deliveries"
                    );
                }
                let wait = summary
                    .next_due_ms
                    .map_or(IDLE, |ms| Duration::from_millis(ms).min(IDLE));
                if wait.is_zero() {
                    continue;
                }
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = changes.deliveries_wanted() => {}
                }
                continue;
            }
            Err(e) => e.to_string(),
        };
        tracing::warn!(error = %failure, retry_in = ?backoff, "callback deliveries failed");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
