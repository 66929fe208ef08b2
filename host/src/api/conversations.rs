//! `/api/v1/conversations`: what sync stored, scoped to the caller.

use hyper::Response;
use serde::Serialize;
use serde_json::value::RawValue;

use super::auth::Caller;
use super::body::Body;
use super::error::ApiError;
use super::params::Query;
use super::{AppState, call, json};
use crate::bindings::conversations::{EventQuery, JsonPage};

type Answer = Result<Response<Body>, ApiError>;

/// `{"items": [...], "next_page_id": ...}` with each item's JSON as the plugin
/// wrote it (for events: as the agent server sent it).
pub fn page_json(page: JsonPage) -> Answer {
    #[derive(Serialize)]
    struct Page {
        items: Vec<Box<RawValue>>,
        next_page_id: Option<String>,
    }
    let items = page
        .items
        .into_iter()
        .map(RawValue::from_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            ApiError::internal(format!(
                "the plugin returned a document that is not JSON: {e}"
            ))
        })?;
    Ok(json::ok(&Page {
        items,
        next_page_id: page.next_page_id,
    }))
}

/// `GET /conversations/search?sandbox_id&page_id&limit`
pub async fn search(state: &AppState, caller: &Caller, query: &Query) -> Answer {
    let limit = query.limit()?;
    let page_id = query.page_id()?;
    let sandbox_id = query.optional("sandbox_id")?;
    let page = call(state, caller, move |p, mut store| async move {
        p.sandboxd_plugin_conversations()
            .call_search(&mut store, sandbox_id.as_deref(), page_id.as_deref(), limit)
            .await
    })
    .await?;
    page_json(page)
}

/// `GET /conversations/{id}`
pub async fn get(state: &AppState, caller: &Caller, id: String) -> Answer {
    let doc = call(state, caller, move |p, mut store| async move {
        p.sandboxd_plugin_conversations()
            .call_get(&mut store, &id)
            .await
    })
    .await?;
    let raw = RawValue::from_string(doc).map_err(|e| {
        ApiError::internal(format!(
            "the plugin returned a document that is not JSON: {e}"
        ))
    })?;
    Ok(json::ok(&raw))
}

/// The agent server's event-search parameters, checked.
pub fn event_query(query: &Query) -> Result<EventQuery, ApiError> {
    let descending = match query.optional("sort_order")?.as_deref() {
        None | Some("TIMESTAMP") => false,
        Some("TIMESTAMP_DESC") => true,
        Some(other) => {
            return Err(ApiError::unprocessable(format!(
                "sort_order must be TIMESTAMP or TIMESTAMP_DESC, got '{}'",
                other.chars().take(40).collect::<String>()
            )));
        }
    };
    Ok(EventQuery {
        page_id: query.page_id()?,
        after_event_id: None,
        limit: query.limit()?,
        kind: query.optional("kind")?,
        timestamp_gte: query.optional("timestamp__gte")?,
        timestamp_lt: query.optional("timestamp__lt")?,
        descending,
    })
}

/// `GET /conversations/{id}/events/search?page_id&limit&kind&timestamp__gte&timestamp__lt&sort_order`
pub async fn search_events(state: &AppState, caller: &Caller, id: String, query: &Query) -> Answer {
    let q = event_query(query)?;
    let page = call(state, caller, move |p, mut store| async move {
        p.sandboxd_plugin_conversations()
            .call_search_events(&mut store, &id, &q)
            .await
    })
    .await?;
    page_json(page)
}
