//! `/api/v1/webhooks`: what agent servers push when they can call back.
//!
//! Not authenticated as a user: an agent server proves itself with the session
//! key of its sandbox (`X-Session-API-Key`), which the plugin checks against the
//! stored hash. A missing header is refused here; everything else is the
//! plugin's call.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::error::{ApiError, ErrorBody};
use super::extract::{Body, Id, SessionKey};
use super::json::{SUCCESS, Success};
use crate::metrics;
use crate::plugin::Caller;

/// Largest `ConversationInfo` accepted.
const MAX_INFO_BYTES: usize = 4 << 20;
/// Largest batch of events accepted (a full-state event can be big).
const MAX_EVENTS_BYTES: usize = 16 << 20;

/// An agent server's `ConversationInfo`.
#[utoipa::path(
    post, path = "/api/v1/webhooks/conversations", operation_id = "conversation_webhook", tag = "webhooks",
    security(("session_key" = [])),
    request_body(content = Object, description = "A ConversationInfo, as the agent server sends it"),
    responses(
        (status = 200, description = "Stored (or acknowledged and ignored)", body = Success),
        (status = 400, description = "The body is not a ConversationInfo", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked session key", body = ErrorBody),
        (status = 413, description = "The body is larger than 4 MiB", body = ErrorBody),
    ),
)]
pub async fn conversation(
    State(app): State<Arc<AppState>>,
    SessionKey(key): SessionKey,
    Body(body): Body<MAX_INFO_BYTES>,
) -> Result<Json<Success>, ApiError> {
    let summary = app
        .plugin
        .sync(&Caller::All)
        .ingest_conversation(&key, &body)
        .await?;
    metrics::events_stored("webhook", summary.new_events);
    app.changes.publish(&summary.changed_conversations);
    Ok(Json(SUCCESS))
}

/// A batch of events of one conversation.
#[utoipa::path(
    post, path = "/api/v1/webhooks/events/{conversation_id}", operation_id = "events_webhook", tag = "webhooks",
    security(("session_key" = [])),
    params(("conversation_id" = String, Path, description = "The conversation id (hex, as agent servers send it)")),
    request_body(content = Vec<Object>, description = "Events, as the agent server sends them"),
    responses(
        (status = 200, description = "Stored; repeats are acknowledged and dropped", body = Success),
        (status = 400, description = "The body is not a JSON array of events, or an event is too large", body = ErrorBody),
        (status = 401, description = "Missing, unknown or revoked session key, or another user's conversation", body = ErrorBody),
        (status = 413, description = "The body is larger than 16 MiB", body = ErrorBody),
    ),
)]
pub async fn events(
    State(app): State<Arc<AppState>>,
    SessionKey(key): SessionKey,
    Id(conversation_id): Id,
    Body(body): Body<MAX_EVENTS_BYTES>,
) -> Result<Json<Success>, ApiError> {
    let summary = app
        .plugin
        .sync(&Caller::All)
        .ingest_events(&key, &conversation_id, &body)
        .await?;
    metrics::events_stored("webhook", summary.new_events);
    app.changes.publish(&summary.changed_conversations);
    Ok(Json(SUCCESS))
}
