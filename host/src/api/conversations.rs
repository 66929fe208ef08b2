//! `/api/v1/conversations`: what sync stored, scoped to the caller.
//!
//! Documents are passed through as the plugin wrote them (for events: as the
//! agent server sent them); the host only frames them.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::Id;
use super::params::{ConversationSearchParams, EventSearchParams, Params, SortOrder};
use crate::bindings::conversations::{EventQuery, JsonPage};

/// A page of JSON documents: conversations, or events exactly as the agent
/// server sent them.
#[derive(Serialize, ToSchema)]
#[schema(as = DocumentPage)]
pub struct PageJson {
    #[schema(value_type = Vec<Object>)]
    items: Vec<Box<RawValue>>,
    /// For events: the id of the first event of the next page.
    #[schema(required = true)]
    next_page_id: Option<String>,
}

/// A document from the plugin, which must be JSON: anything else is a fault
/// on our side.
fn document(text: String) -> Result<Box<RawValue>, ApiError> {
    RawValue::from_string(text).map_err(|e| {
        ApiError::internal(format!(
            "the plugin returned a document that is not JSON: {e}"
        ))
    })
}

fn page_json(page: JsonPage) -> Result<Json<PageJson>, ApiError> {
    Ok(Json(PageJson {
        items: page
            .items
            .into_iter()
            .map(document)
            .collect::<Result<_, _>>()?,
        next_page_id: page.next_page_id,
    }))
}

/// The caller's conversations, newest first.
#[utoipa::path(
    get, path = "/api/v1/conversations/search", operation_id = "search_conversations", tag = "conversations",
    params(ConversationSearchParams),
    responses(
        (status = 200, description = "A page of stored conversations: `id`, `sandbox_id`, \
            `created_by_user_id`, `title`, `execution_status`, `llm_model`, `stats`, `metrics`, \
            `tags`, `created_at`, `updated_at`, `event_count` and `raw` (the agent server's last \
            ConversationInfo)", body = PageJson),
        (status = 422, description = "A parameter is out of range", body = ErrorBody),
    ),
)]
pub async fn search(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Params(q): Params<ConversationSearchParams>,
) -> Result<Json<PageJson>, ApiError> {
    let page = app
        .plugin
        .conversations(&caller)
        .search(q.sandbox_id.as_deref(), q.page_id.as_deref(), q.limit)
        .await?;
    page_json(page)
}

/// One stored conversation.
#[utoipa::path(
    get, path = "/api/v1/conversations/{id}", operation_id = "get_conversation", tag = "conversations",
    params(("id" = String, Path, description = "The conversation id (a UUID, with or without dashes)")),
    responses(
        (status = 200, description = "The stored conversation", body = Object),
        (status = 404, description = "No such conversation (or another user's)", body = ErrorBody),
    ),
)]
pub async fn get(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<Box<RawValue>>, ApiError> {
    let doc = app.plugin.conversations(&caller).get(&id).await?;
    Ok(Json(document(doc)?))
}

/// Events of one conversation, as the agent server's event search answers.
#[utoipa::path(
    get, path = "/api/v1/conversations/{id}/events/search", operation_id = "search_conversation_events", tag = "conversations",
    params(("id" = String, Path, description = "The conversation id"), EventSearchParams),
    responses(
        (status = 200, description = "A page of events, each exactly as the agent server sent it", body = PageJson),
        (status = 400, description = "A timestamp that is not ISO-8601", body = ErrorBody),
        (status = 404, description = "No such conversation (or another user's)", body = ErrorBody),
        (status = 422, description = "A parameter is out of range", body = ErrorBody),
    ),
)]
pub async fn search_events(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    Params(q): Params<EventSearchParams>,
) -> Result<Json<PageJson>, ApiError> {
    let query = EventQuery {
        page_id: q.page_id,
        limit: q.limit,
        kind: q.kind,
        timestamp_gte: q.timestamp_gte,
        timestamp_lt: q.timestamp_lt,
        descending: q.sort_order == Some(SortOrder::TimestampDesc),
    };
    let page = app
        .plugin
        .conversations(&caller)
        .search_events(&id, &query)
        .await?;
    page_json(page)
}
