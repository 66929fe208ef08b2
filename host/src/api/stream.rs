//! `GET /conversations/{id}/events/stream`: server-sent events, one per event as
//! it is stored.
//!
//! Where the stream starts is the plugin's decision (`stream-start`: after
//! `Last-Event-ID` when the client resumes, else after the event stored last).
//! From there the host reads what was stored since (`stream-events`, in the
//! order events were stored, so a late event with an older timestamp is not
//! passed over), page by page, whenever the sync reports the conversation
//! changed, and at least every [`RECHECK`]. The store is the source: a wake-up that is missed or coalesced
//! costs latency, never an event. Idle streams get a keep-alive comment so that
//! proxies do not close them.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use tokio::sync::broadcast;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::Id;

/// How often an idle stream sends a keep-alive comment.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How often a stream re-reads the store even if no change was announced.
const RECHECK: Duration = Duration::from_secs(15);
/// Events read from the store at a time.
const PAGE: u32 = 100;

/// Stream the conversation's events as they are stored.
#[utoipa::path(
    get, path = "/api/v1/conversations/{id}/events/stream", operation_id = "stream_conversation_events", tag = "conversations",
    params(
        ("id" = String, Path, description = "The conversation id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event (as SSE clients send it)"),
    ),
    responses(
        (status = 200, description = "Server-sent events: `id:` the event id, `data:` the event's JSON", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such conversation (or another user's)", body = ErrorBody),
    ),
)]
pub async fn stream(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    // Subscribe before the start is decided, so nothing falls in between.
    let changes = app.changes.subscribe();
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let start = app
        .plugin
        .conversations(&caller)
        .stream_start(&id, resume)
        .await?;
    let feed = Feed {
        app,
        caller,
        id,
        conversation_id: start.conversation_id,
        after: start.after_event_id,
        changes,
        pending: VecDeque::new(),
    };
    let events = futures::stream::unfold(feed, |mut feed| async move {
        let event = feed.next().await?;
        Some((Ok(event), feed))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEPALIVE)))
}

/// One stream's position and what it has read but not sent yet.
struct Feed {
    app: Arc<AppState>,
    caller: Caller,
    /// The id the client asked for.
    id: String,
    /// The id the sync announces changes under.
    conversation_id: String,
    after: Option<String>,
    changes: broadcast::Receiver<Arc<str>>,
    pending: VecDeque<(String, String)>,
}

impl Feed {
    /// The next event, waiting for one as long as it takes; none once the
    /// conversation is gone or no longer the caller's.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some((event_id, json)) = self.pending.pop_front() {
                let event = Event::default().id(clean_id(&event_id)).data(json);
                self.after = Some(event_id);
                return Some(event);
            }
            let page = self
                .app
                .plugin
                .conversations(&self.caller)
                .stream_events(&self.id, self.after.as_deref(), PAGE)
                .await
                .ok()?;
            self.pending.extend(page.ids.into_iter().zip(page.items));
            if self.pending.is_empty() {
                self.changed().await;
            }
        }
    }

    /// Resolves when this conversation changed, or after [`RECHECK`].
    async fn changed(&mut self) {
        let wanted = &*self.conversation_id;
        let changes = &mut self.changes;
        let _ = tokio::time::timeout(RECHECK, async {
            loop {
                match changes.recv().await {
                    Ok(changed) if &*changed == wanted => return,
                    Ok(_) => continue,
                    // Missed some: read the store anyway.
                    Err(broadcast::error::RecvError::Lagged(_)) => return,
                    Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
                }
            }
        })
        .await;
    }
}

/// An SSE `id:` cannot hold a line break or a NUL; an agent server's event id
/// might.
fn clean_id(id: &str) -> String {
    id.replace(['\n', '\r', '\0'], "")
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_lose_what_sse_cannot_carry() {
        assert_eq!(super::clean_id("e\n1\r\0"), "e1");
    }
}
