//! `/api/v1/webhooks`: what agent servers push when they can call back.
//!
//! Not authenticated as a user: an agent server proves itself with the session
//! key of its sandbox (`X-Session-API-Key`), which the plugin checks against the
//! stored hash. A missing header is refused here; everything else is the
//! plugin's call.

use hyper::body::Incoming;
use hyper::{Request, Response};

use super::body::{self, Body};
use super::error::ApiError;
use super::{AppState, json};

/// Largest `ConversationInfo` accepted.
const MAX_INFO_BYTES: usize = 4 << 20;
/// Largest batch of events accepted (a full-state event can be big).
const MAX_EVENTS_BYTES: usize = 16 << 20;

fn session_key(req: &Request<Incoming>) -> Result<String, ApiError> {
    let value = req
        .headers()
        .get("x-session-api-key")
        .ok_or_else(|| ApiError::unauthorized("missing X-Session-API-Key header"))?;
    let key = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("the X-Session-API-Key header is not readable text"))?
        .trim();
    if key.is_empty() {
        return Err(ApiError::unauthorized("empty X-Session-API-Key header"));
    }
    Ok(key.to_owned())
}

/// `POST /webhooks/conversations`
pub async fn conversation(
    state: &AppState,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let key = session_key(&req)?;
    let body = body::read(req, MAX_INFO_BYTES).await?.to_vec();
    let summary = state
        .plugin
        .call(None, move |p, mut store| async move {
            p.sandboxd_plugin_sync()
                .call_ingest_conversation(&mut store, &key, &body)
                .await
        })
        .await??;
    state.changes.publish(&summary.changed_conversations);
    Ok(json::success())
}

/// `POST /webhooks/events/{conversation_id}`
pub async fn events(
    state: &AppState,
    conversation_id: String,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let key = session_key(&req)?;
    let body = body::read(req, MAX_EVENTS_BYTES).await?.to_vec();
    let summary = state
        .plugin
        .call(None, move |p, mut store| async move {
            p.sandboxd_plugin_sync()
                .call_ingest_events(&mut store, &key, &conversation_id, &body)
                .await
        })
        .await??;
    state.changes.publish(&summary.changed_conversations);
    Ok(json::success())
}
