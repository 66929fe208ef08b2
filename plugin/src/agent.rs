//! The agent server inside a sandbox, as the sync speaks to it (contract
//! section 4): conversation search, conversation info, event search.
//!
//! Requests are only built and answers only read here; sending is the caller's
//! (in batches, through the host). Answers are read tolerantly: a page that is not
//! the expected shape is an error for that one agent server, never a panic, and
//! events are kept as the exact bytes received.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::ports::{Method, Request, Response};
use crate::urls::percent_encode;

/// Conversations or events per page asked of an agent server (its maximum).
pub const PAGE: u32 = 100;

/// One running sandbox's agent server.
#[derive(Debug, Clone)]
pub struct Agent {
    pub sandbox_id: String,
    /// Base URL without a trailing slash.
    pub base_url: String,
    pub session_key: String,
    pub timeout_ms: u32,
}

impl Agent {
    fn get(&self, path_and_query: &str) -> Request {
        let mut request = Request::new(Method::Get, format!("{}{path_and_query}", self.base_url));
        request
            .headers
            .push(("x-session-api-key".into(), self.session_key.clone()));
        request.timeout_ms = Some(self.timeout_ms);
        request
    }

    /// `GET /api/conversations/search`, one page.
    pub fn search_conversations(&self, page_id: Option<&str>) -> Request {
        let mut q = format!("/api/conversations/search?limit={PAGE}");
        if let Some(p) = page_id {
            q.push_str("&page_id=");
            q.push_str(&percent_encode(p));
        }
        self.get(&q)
    }

    /// `GET /api/conversations/{id}`.
    pub fn conversation(&self, conversation_key: &str) -> Request {
        self.get(&format!(
            "/api/conversations/{}",
            percent_encode(conversation_key)
        ))
    }

    /// `GET /api/conversations/{id}/events/search`, oldest first, from `since`
    /// (an ISO timestamp without timezone, as agent servers write them).
    pub fn events(
        &self,
        conversation_key: &str,
        since: Option<&str>,
        page_id: Option<&str>,
    ) -> Request {
        let mut q = format!(
            "/api/conversations/{}/events/search?limit={PAGE}&sort_order=TIMESTAMP",
            percent_encode(conversation_key)
        );
        if let Some(t) = since {
            q.push_str("&timestamp__gte=");
            q.push_str(&percent_encode(t));
        }
        if let Some(p) = page_id {
            q.push_str("&page_id=");
            q.push_str(&percent_encode(p));
        }
        self.get(&q)
    }
}

/// Why an agent server's answer is unusable.
pub fn failure(response: &Response) -> Option<String> {
    match response.status {
        200..=299 => None,
        401 | 403 => Some(format!(
            "the agent server refused the session key (HTTP {})",
            response.status
        )),
        status => Some(format!("the agent server answered HTTP {status}")),
    }
}

/// A page of conversations: each `ConversationInfo` as a JSON value.
pub struct ConversationPage {
    pub items: Vec<Value>,
    pub next_page_id: Option<String>,
}

pub fn parse_conversation_page(body: &[u8]) -> Result<ConversationPage, String> {
    #[derive(Deserialize)]
    struct Page {
        #[serde(default)]
        items: Option<Vec<Value>>,
        #[serde(default)]
        next_page_id: Option<Value>,
    }
    if !is_object(body) {
        return Err("unreadable conversation page: not a JSON object".into());
    }
    let page: Page =
        serde_json::from_slice(body).map_err(|e| format!("unreadable conversation page: {e}"))?;
    Ok(ConversationPage {
        items: page
            .items
            .unwrap_or_default()
            .into_iter()
            .filter(Value::is_object)
            .collect(),
        next_page_id: page
            .next_page_id
            .and_then(|v| v.as_str().map(str::to_owned)),
    })
}

/// A page of events, borrowed from the response body: each event's exact bytes.
pub struct EventPage<'a> {
    pub items: Vec<&'a RawValue>,
    pub next_page_id: Option<String>,
}

pub fn parse_event_page(body: &[u8]) -> Result<EventPage<'_>, String> {
    #[derive(Deserialize)]
    struct Page<'a> {
        #[serde(borrow, default)]
        items: Option<Vec<&'a RawValue>>,
        #[serde(default)]
        next_page_id: Option<Value>,
    }
    if !is_object(body) {
        return Err("unreadable event page: not a JSON object".into());
    }
    let page: Page<'_> =
        serde_json::from_slice(body).map_err(|e| format!("unreadable event page: {e}"))?;
    Ok(EventPage {
        items: page.items.unwrap_or_default(),
        next_page_id: page
            .next_page_id
            .and_then(|v| v.as_str().map(str::to_owned)),
    })
}

/// Whether a body is a JSON object (serde would also read a struct from an array).
fn is_object(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// An array of events as a webhook posts it, each event's exact bytes. Every
/// element must be a JSON object (nested no deeper than JSON parsing allows): a
/// batch with one that is not is refused whole, naming it, rather than half
/// stored. (An object without an `id` is kept, by its digest.)
pub fn parse_event_array(body: &[u8]) -> Result<Vec<&RawValue>, String> {
    let raws = serde_json::from_slice::<Vec<&RawValue>>(body)
        .map_err(|e| format!("expected a JSON array of events: {e}"))?;
    if let Some(i) = raws.iter().position(|raw| event_meta(raw).is_none()) {
        return Err(format!(
            "event {i} of the batch is not a JSON object (or is nested too deeply)"
        ));
    }
    let max = crate::schema::events::MAX_EVENT_BYTES;
    if let Some(i) = raws.iter().position(|raw| raw.get().len() > max) {
        return Err(format!(
            "event {i} of the batch is {} bytes; events of up to {max} bytes are kept",
            raws[i].get().len()
        ));
    }
    Ok(raws)
}

/// What sync needs to know of an event; the rest stays opaque.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct EventMeta {
    pub id: Option<String>,
    pub timestamp: Option<String>,
    pub kind: Option<String>,
    /// For `ConversationStateUpdateEvent`: which state field changed, and to what.
    pub key: Option<String>,
    pub value: Option<Value>,
}

/// Read an event's id, timestamp and kind (and a state update's key and value).
/// None if it is not a JSON object.
pub fn event_meta(raw: &RawValue) -> Option<EventMeta> {
    let value: Value = serde_json::from_str(raw.get()).ok()?;
    let object = value.as_object()?;
    let text = |k: &str| object.get(k).and_then(Value::as_str).map(str::to_owned);
    let kind = text("kind");
    let is_state_update = kind.as_deref() == Some(STATE_UPDATE);
    Some(EventMeta {
        id: text("id"),
        timestamp: text("timestamp"),
        kind,
        key: if is_state_update { text("key") } else { None },
        value: if is_state_update {
            object.get("value").cloned()
        } else {
            None
        },
    })
}

/// The event kind that carries conversation state changes.
pub const STATE_UPDATE: &str = "ConversationStateUpdateEvent";

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> Agent {
        Agent {
            sandbox_id: "sb".into(),
            base_url: "http://127.0.0.1:9/rt-1".into(),
            session_key: "k".into(),
            timeout_ms: 5000,
        }
    }

    #[test]
    fn requests_carry_the_session_key_and_the_contract_parameters() {
        let r = agent().events("abc", Some("2026-01-01T00:00:00.000000"), Some("e1"));
        assert_eq!(
            r.url,
            "http://127.0.0.1:9/rt-1/api/conversations/abc/events/search?limit=100&sort_order=TIMESTAMP&timestamp__gte=2026-01-01T00%3A00%3A00.000000&page_id=e1"
        );
        assert!(
            r.headers
                .contains(&("x-session-api-key".into(), "k".into()))
        );
        assert_eq!(r.timeout_ms, Some(5000));
        assert_eq!(
            agent().search_conversations(None).url,
            "http://127.0.0.1:9/rt-1/api/conversations/search?limit=100"
        );
    }

    #[test]
    fn pages_are_read_tolerantly() {
        let page =
            parse_conversation_page(br#"{"items": [{"id": "a"}, 3, null], "next_page_id": 7}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.next_page_id, None);
        assert!(parse_conversation_page(b"[]").is_err());
        let events = parse_event_page(
            br#"{"items": [{"id":"e1","kind":"X","extra":{"a":[1]}}], "next_page_id": "e2"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            events.items[0].get(),
            r#"{"id":"e1","kind":"X","extra":{"a":[1]}}"#
        );
        assert_eq!(events.next_page_id.as_deref(), Some("e2"));
        let empty = parse_event_page(br#"{"items": null}"#).unwrap_or_else(|e| panic!("{e}"));
        assert!(empty.items.is_empty());
    }

    #[test]
    fn event_meta_reads_state_updates() {
        let raw: Box<RawValue> = serde_json::from_str(
            r#"{"kind":"ConversationStateUpdateEvent","id":"e","timestamp":"t","key":"execution_status","value":"finished"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let meta = event_meta(&raw).unwrap_or_default();
        assert_eq!(meta.key.as_deref(), Some("execution_status"));
        assert_eq!(meta.value, Some(Value::String("finished".into())));
        let raw: Box<RawValue> = serde_json::from_str("[1]").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(event_meta(&raw), None);
    }
}
