//! The delivery worker: asks the plugin to send what is owed to callbacks when
//! new events may have been stored, and when the next retry is due.

use std::sync::Arc;
use std::time::Duration;

use super::Changes;
use crate::plugin::PluginHost;

/// Longest sleep between checks when nothing is known to be due.
const IDLE: Duration = Duration::from_secs(5);

pub async fn run_deliveries(plugin: Arc<PluginHost>, changes: Arc<Changes>) {
    loop {
        let result = plugin
            .call(None, |p, mut store| async move {
                p.sandboxd_plugin_callbacks()
                    .call_deliver_due(&mut store)
                    .await
            })
            .await;
        let wait = match result {
            Ok(Ok(summary)) => {
                if summary.attempted > 0 {
                    tracing::info!(
                        attempted = summary.attempted,
                        delivered = summary.delivered,
                        failed = summary.failed,
                        "callback deliveries"
                    );
                }
                summary
                    .next_due_ms
                    .map_or(IDLE, |ms| Duration::from_millis(ms).min(IDLE))
            }
            Ok(Err(e)) => {
                tracing::warn!(error = ?e, "callback deliveries failed");
                IDLE
            }
            Err(e) => {
                tracing::warn!(error = %e, "callback deliveries failed");
                IDLE
            }
        };
        if wait.is_zero() {
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = changes.deliveries_wanted() => {}
        }
    }
}
