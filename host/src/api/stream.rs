//! `GET /conversations/{id}/events/stream`: server-sent events, one per event as
//! it is stored.
//!
//! The stream starts after the newest stored event (or after `Last-Event-ID`,
//! to resume), then waits for the sync to report the conversation changed and
//! reads what is new from the store. The store is the source: a wake-up that is
//! missed or coalesced costs latency (at most [`KEEPALIVE`]), never an event.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response};
use tokio::sync::{broadcast, mpsc};

use super::auth::Caller;
use super::body::Body;
use super::error::ApiError;
use super::{AppState, call};
use crate::bindings::conversations::EventQuery;

/// How often an idle stream sends a comment (keeps proxies from closing it) and
/// re-reads the store.
const KEEPALIVE: Duration = Duration::from_secs(15);

fn query_after(after: Option<String>, descending: bool, limit: u32) -> EventQuery {
    EventQuery {
        page_id: None,
        after_event_id: after,
        limit,
        kind: None,
        timestamp_gte: None,
        timestamp_lt: None,
        descending,
    }
}

pub async fn stream(
    state: Arc<AppState>,
    caller: Caller,
    id: String,
    req: &Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    // Is it there, and the caller's? And its id as the sync reports it.
    let doc = {
        let id = id.clone();
        call(&state, &caller, move |p, mut store| async move {
            p.sandboxd_plugin_conversations()
                .call_get(&mut store, &id)
                .await
        })
        .await?
    };
    let conversation_id = serde_json::from_str::<serde_json::Value>(&doc)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| id.clone());
    // Subscribe before reading where to start, so nothing falls in between.
    let changes = state.changes.subscribe();
    let resume = req
        .headers()
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let after = match resume {
        Some(last) => Some(last),
        None => {
            let id = id.clone();
            let newest = call(&state, &caller, move |p, mut store| async move {
                p.sandboxd_plugin_conversations()
                    .call_search_events(&mut store, &id, &query_after(None, true, 1))
                    .await
            })
            .await?;
            newest.ids.into_iter().next()
        }
    };

    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(pump(state, caller, id, conversation_id, after, changes, tx));
    let body = StreamBody::new(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
    }));
    let mut response = Response::new(BodyExt::boxed(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// Feed the stream until the client goes away.
async fn pump(
    state: Arc<AppState>,
    caller: Caller,
    id: String,
    conversation_id: String,
    mut after: Option<String>,
    mut changes: broadcast::Receiver<Arc<str>>,
    tx: mpsc::Sender<Bytes>,
) {
    loop {
        // Everything stored after `after`, page by page.
        loop {
            let (id2, after2) = (id.clone(), after.clone());
            let page = call(&state, &caller, move |p, mut store| async move {
                p.sandboxd_plugin_conversations()
                    .call_search_events(&mut store, &id2, &query_after(after2, false, 100))
                    .await
            })
            .await;
            let Ok(page) = page else {
                // Gone, or no longer the caller's: end the stream.
                return;
            };
            let more = page.next_page_id.is_some();
            for (event, event_id) in page.items.iter().zip(&page.ids) {
                if tx.send(frame(event_id, event)).await.is_err() {
                    return;
                }
                after = Some(event_id.clone());
            }
            if !more {
                break;
            }
        }
        // Wait for this conversation to change (or for the keep-alive).
        let woken = tokio::time::timeout(KEEPALIVE, async {
            loop {
                match changes.recv().await {
                    Ok(changed) if *changed == *conversation_id => return,
                    Ok(_) => continue,
                    // Missed some: read the store anyway.
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        })
        .await;
        if woken.is_err()
            && tx
                .send(Bytes::from_static(b": keep-alive\n\n"))
                .await
                .is_err()
        {
            return;
        }
    }
}

/// One SSE message: `id:` and one `data:` line per line of the JSON.
fn frame(event_id: &str, json: &str) -> Bytes {
    let mut out = String::with_capacity(json.len() + event_id.len() + 16);
    out.push_str("id: ");
    out.push_str(&event_id.replace(['\n', '\r'], ""));
    out.push('\n');
    for line in json.lines() {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn frames_are_valid_server_sent_events() {
        assert_eq!(
            &super::frame("e1", r#"{"a":1}"#)[..],
            b"id: e1\ndata: {\"a\":1}\n\n"
        );
        assert_eq!(
            &super::frame("e\n2", "{\n}")[..],
            b"id: e2\ndata: {\ndata: }\n\n"
        );
    }
}
