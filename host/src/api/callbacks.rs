//! `/api/v1/event-callbacks`: subscriptions to new events, and their delivery
//! log.
//!
//! Ordering invariant of a creation: the URL's origin is recorded in the
//! egress policy (durably) before the plugin stores the subscription, and
//! forgotten again if the plugin refuses it. So no subscription exists whose
//! deliveries the policy would refuse. A crash between the two leaves only an
//! origin without a subscription: one the policy had already approved.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::{Body, Id};
use super::json::{SUCCESS, Success};
use super::params::{PageParams, Params};
use crate::bindings::callbacks::{Callback, DeliveryAttempt, DeliveryState};

/// Largest subscription request accepted.
const MAX_BODY: usize = 64 << 10;

/// An event callback.
#[derive(Serialize, ToSchema)]
#[schema(as = EventCallback)]
pub struct CallbackJson {
    id: String,
    url: String,
    /// Only events of this conversation, when set.
    #[schema(required = true)]
    conversation_id: Option<String>,
    /// Only events of these kinds, when set.
    #[schema(required = true)]
    event_kinds: Option<Vec<String>>,
    #[schema(required = true)]
    created_by_user_id: Option<String>,
    /// ISO-8601 UTC.
    created_at: String,
}

impl From<Callback> for CallbackJson {
    fn from(c: Callback) -> Self {
        CallbackJson {
            id: c.id,
            url: c.url,
            conversation_id: c.conversation_id,
            event_kinds: c.event_kinds,
            created_by_user_id: c.created_by_user_id,
            created_at: c.created_at,
        }
    }
}

/// A new event callback, with the secret its deliveries are signed with.
#[derive(Serialize, ToSchema)]
#[schema(as = CreatedEventCallback)]
pub struct CreatedCallbackJson {
    #[serde(flatten)]
    callback: CallbackJson,
    /// `X-Sandboxd-Signature` is `sha256=<hex HMAC-SHA256 of the body keyed by
    /// this secret>`. Shown this once.
    secret: String,
}

/// What to subscribe to.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateEventCallback)]
pub struct CreateBody {
    /// Where events are POSTed: an absolute `http` or `https` URL.
    #[schema(format = "uri", pattern = "^https?://[^/?#@\\s]+", max_length = 2048)]
    url: String,
    /// Only events of this conversation (a UUID, with or without dashes).
    #[serde(default)]
    #[schema(max_length = 128)]
    conversation_id: Option<String>,
    /// Only events of these kinds (1 to 128 characters each).
    #[serde(default)]
    #[schema(max_items = 100)]
    event_kinds: Option<Vec<String>>,
}

/// Subscribe to new events of the caller's conversations.
#[utoipa::path(
    post, path = "/api/v1/event-callbacks", operation_id = "create_event_callback", tag = "event-callbacks",
    request_body = CreateBody,
    responses(
        (status = 200, description = "The subscription, with its secret (shown this once)", body = CreatedCallbackJson),
        (status = 400, description = "A URL, conversation id or kind that is not allowed", body = ErrorBody),
        (status = 413, description = "The body is larger than 64 KiB", body = ErrorBody),
        (status = 422, description = "The body is not such a JSON object", body = ErrorBody),
    ),
)]
pub async fn create(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Body(bytes): Body<MAX_BODY>,
) -> Result<Json<CreatedCallbackJson>, ApiError> {
    let body: CreateBody = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::unprocessable(format!(
            "expected a JSON object {{\"url\": string, \"conversation_id\"?: string, \"event_kinds\"?: [string]}}: {e}"
        ))
    })?;
    let url = url::Url::parse(body.url.trim()).map_err(|e| {
        ApiError::bad_request(format!("url: '{}' is not a URL: {e}", excerpt(&body.url)))
    })?;
    app.egress
        .check_callback(&url)
        .map_err(|e| ApiError::bad_request(format!("url: {e}")))?;
    let id = new_id()?;
    app.egress
        .add_callback(&id, &url)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let created = app
        .plugin
        .callbacks(&caller)
        .create(
            &id,
            &body.url,
            body.conversation_id.as_deref(),
            body.event_kinds.as_deref(),
        )
        .await;
    let created = match created {
        Ok(created) => created,
        Err(e) => {
            if let Err(forget) = app.egress.remove_callback(&id).await {
                tracing::warn!(callback_id = %id, error = %forget, "cannot forget the origin of a refused callback");
            }
            return Err(e.into());
        }
    };
    let secret = app.host_key.secret(&created.id);
    Ok(Json(CreatedCallbackJson {
        callback: created.into(),
        secret,
    }))
}

/// A fresh callback id: base62 of 16 random bytes, like sandbox ids.
fn new_id() -> Result<String, ApiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::internal(format!("no randomness for a callback id: {e}")))?;
    Ok(base62::encode(u128::from_be_bytes(bytes)))
}

fn excerpt(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The caller's callbacks (everyone's, for an admin).
#[utoipa::path(
    get, path = "/api/v1/event-callbacks", operation_id = "list_event_callbacks", tag = "event-callbacks",
    responses((status = 200, description = "Oldest first", body = Vec<CallbackJson>)),
)]
pub async fn list(
    State(app): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Vec<CallbackJson>>, ApiError> {
    let all = app.plugin.callbacks(&caller).all().await?;
    Ok(Json(all.into_iter().map(CallbackJson::from).collect()))
}

/// One callback.
#[utoipa::path(
    get, path = "/api/v1/event-callbacks/{id}", operation_id = "get_event_callback", tag = "event-callbacks",
    params(("id" = String, Path, description = "The callback id")),
    responses(
        (status = 200, description = "The callback", body = CallbackJson),
        (status = 404, description = "No such callback (or another user's)", body = ErrorBody),
    ),
)]
pub async fn get(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<CallbackJson>, ApiError> {
    let found = app.plugin.callbacks(&caller).get(&id).await?;
    Ok(Json(found.into()))
}

/// Remove a callback; deliveries still queued for it are dropped.
#[utoipa::path(
    delete, path = "/api/v1/event-callbacks/{id}", operation_id = "delete_event_callback", tag = "event-callbacks",
    params(("id" = String, Path, description = "The callback id")),
    responses(
        (status = 200, description = "Removed", body = Success),
        (status = 404, description = "No such callback (or another user's)", body = ErrorBody),
    ),
)]
pub async fn delete(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> Result<Json<Success>, ApiError> {
    app.plugin.callbacks(&caller).delete(&id).await?;
    app.egress
        .remove_callback(&id)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(SUCCESS))
}

/// One delivery attempt.
#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryAttempt)]
pub struct AttemptJson {
    delivery_id: String,
    event_id: String,
    conversation_id: String,
    attempt: u32,
    /// ISO-8601 UTC.
    at: String,
    /// The receiver's HTTP status, if it answered.
    #[schema(required = true)]
    status: Option<u16>,
    #[schema(required = true)]
    error: Option<String>,
    /// The delivery's state after this attempt.
    state: AttemptState,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AttemptState {
    Pending,
    Delivered,
    Failed,
}

impl From<DeliveryAttempt> for AttemptJson {
    fn from(a: DeliveryAttempt) -> Self {
        AttemptJson {
            delivery_id: a.delivery_id,
            event_id: a.event_id,
            conversation_id: a.conversation_id,
            attempt: a.attempt,
            at: a.at,
            status: a.status,
            error: a.error,
            state: match a.state {
                DeliveryState::Pending => AttemptState::Pending,
                DeliveryState::Delivered => AttemptState::Delivered,
                DeliveryState::Failed => AttemptState::Failed,
            },
        }
    }
}

/// A page of delivery attempts, newest first.
#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryAttemptPage)]
pub struct AttemptPageJson {
    items: Vec<AttemptJson>,
    #[schema(required = true)]
    next_page_id: Option<String>,
}

/// Every delivery attempt of one callback, newest first.
#[utoipa::path(
    get, path = "/api/v1/event-callbacks/{id}/deliveries", operation_id = "list_event_callback_deliveries", tag = "event-callbacks",
    params(("id" = String, Path, description = "The callback id"), PageParams),
    responses(
        (status = 200, description = "A page of attempts", body = AttemptPageJson),
        (status = 404, description = "No such callback (or another user's)", body = ErrorBody),
        (status = 422, description = "A parameter is out of range", body = ErrorBody),
    ),
)]
pub async fn deliveries(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    Params(page): Params<PageParams>,
) -> Result<Json<AttemptPageJson>, ApiError> {
    let page = app
        .plugin
        .callbacks(&caller)
        .deliveries(&id, page.page_id.as_deref(), page.limit)
        .await?;
    Ok(Json(AttemptPageJson {
        items: page.items.into_iter().map(AttemptJson::from).collect(),
        next_page_id: page.next_page_id,
    }))
}
