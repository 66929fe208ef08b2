//! `/admin`: operator actions, for admin callers only.

use hyper::Response;

use super::body::Body;
use super::error::ApiError;
use super::{AppState, json};

/// `POST /admin/sync/poll`: run a poll cycle now (after the one running, if any)
/// and answer its summary.
pub async fn poll(state: &AppState) -> Result<Response<Body>, ApiError> {
    let (summary, millis) = state.poller.cycle().await?;
    Ok(json::ok(&serde_json::json!({
        "sandboxes": summary.sandboxes,
        "conversations": summary.conversations,
        "new_events": summary.new_events,
        "requests": summary.requests,
        "failures": summary.failures.iter().map(|f| serde_json::json!({"sandbox_id": f.sandbox_id, "reason": f.reason})).collect::<Vec<_>>(),
        "millis": millis,
    })))
}
