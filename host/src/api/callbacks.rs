//! `/api/v1/event-callbacks`: subscriptions to new events, and their delivery log.

use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::body::{self, Body};
use super::error::ApiError;
use super::params::Query;
use super::{AppState, call, json};
use crate::bindings::callbacks::{Callback, DeliveryAttempt, DeliveryState};

type Answer = Result<Response<Body>, ApiError>;

/// Largest subscription request accepted.
const MAX_BODY: usize = 64 << 10;

#[derive(Serialize)]
struct CallbackJson<'a> {
    id: &'a str,
    url: &'a str,
    conversation_id: Option<&'a str>,
    event_kinds: Option<&'a [String]>,
    created_by_user_id: Option<&'a str>,
    created_at: &'a str,
    /// Only in the answer to the creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

fn callback_json(c: &Callback, secret: Option<String>) -> CallbackJson<'_> {
    CallbackJson {
        id: &c.id,
        url: &c.url,
        conversation_id: c.conversation_id.as_deref(),
        event_kinds: c.event_kinds.as_deref(),
        created_by_user_id: c.created_by_user_id.as_deref(),
        created_at: &c.created_at,
        secret,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    url: String,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    event_kinds: Option<Vec<String>>,
}

/// `POST /event-callbacks` with `{"url", "conversation_id"?, "event_kinds"?}`.
/// The answer carries the signing secret, this once.
pub async fn create(state: &AppState, caller: &Caller, req: Request<Incoming>) -> Answer {
    let bytes = body::read(req, MAX_BODY).await?;
    let body: CreateBody = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::unprocessable(format!(
            "expected a JSON object {{\"url\": string, \"conversation_id\"?: string, \"event_kinds\"?: [string]}}: {e}"
        ))
    })?;
    // The host, not the plugin, decides which destinations a callback may open
    // up; a URL that does not parse is left to the plugin to explain.
    let destination = url::Url::parse(&body.url).ok();
    if let Some(url) = &destination {
        state
            .egress
            .check_callback(url)
            .map_err(|e| ApiError::bad_request(format!("url: {e}")))?;
    }
    let created = call(state, caller, move |p, mut store| async move {
        p.sandboxd_plugin_callbacks()
            .call_create(
                &mut store,
                &body.url,
                body.conversation_id.as_deref(),
                body.event_kinds.as_deref(),
            )
            .await
    })
    .await?;
    if let Some(url) = &destination {
        state
            .egress
            .add_callback(&created.id, url)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    let secret = state.host_key.secret(&created.id);
    Ok(json::ok(&callback_json(&created, Some(secret))))
}

/// `GET /event-callbacks`
pub async fn list(state: &AppState, caller: &Caller) -> Answer {
    let all = call(state, caller, |p, mut store| async move {
        p.sandboxd_plugin_callbacks().call_all(&mut store).await
    })
    .await?;
    let items: Vec<CallbackJson<'_>> = all.iter().map(|c| callback_json(c, None)).collect();
    Ok(json::ok(&items))
}

/// `GET /event-callbacks/{id}`
pub async fn get(state: &AppState, caller: &Caller, id: String) -> Answer {
    let found = call(state, caller, move |p, mut store| async move {
        p.sandboxd_plugin_callbacks()
            .call_get(&mut store, &id)
            .await
    })
    .await?;
    Ok(json::ok(&callback_json(&found, None)))
}

/// `DELETE /event-callbacks/{id}`
pub async fn delete(state: &AppState, caller: &Caller, id: String) -> Answer {
    let callback_id = id.clone();
    call(state, caller, move |p, mut store| async move {
        p.sandboxd_plugin_callbacks()
            .call_delete(&mut store, &id)
            .await
    })
    .await?;
    state
        .egress
        .remove_callback(&callback_id)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json::success())
}

/// `GET /event-callbacks/{id}/deliveries?page_id&limit`: every attempt, newest first.
pub async fn deliveries(state: &AppState, caller: &Caller, id: String, query: &Query) -> Answer {
    let limit = query.limit()?;
    let page_id = query.page_id()?;
    let page = call(state, caller, move |p, mut store| async move {
        p.sandboxd_plugin_callbacks()
            .call_deliveries(&mut store, &id, page_id.as_deref(), limit)
            .await
    })
    .await?;
    #[derive(Serialize)]
    struct AttemptJson<'a> {
        delivery_id: &'a str,
        event_id: &'a str,
        conversation_id: &'a str,
        attempt: u32,
        at: &'a str,
        status: Option<u16>,
        error: Option<&'a str>,
        state: &'static str,
    }
    fn attempt(a: &DeliveryAttempt) -> AttemptJson<'_> {
        AttemptJson {
            delivery_id: &a.delivery_id,
            event_id: &a.event_id,
            conversation_id: &a.conversation_id,
            attempt: a.attempt,
            at: &a.at,
            status: a.status,
            error: a.error.as_deref(),
            state: match a.state {
                DeliveryState::Pending => "pending",
                DeliveryState::Delivered => "delivered",
                DeliveryState::Failed => "failed",
            },
        }
    }
    Ok(json::ok(&serde_json::json!({
        "items": page.items.iter().map(attempt).collect::<Vec<_>>(),
        "next_page_id": page.next_page_id,
    })))
}
