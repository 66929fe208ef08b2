//! Agent-server answers: the input is a conversation search page and an event
//! search page, joined by a NUL byte (`{"items": [ConversationInfo…],
//! "next_page_id"}` `\0` `{"items": [Event…], "next_page_id"}`).
//!
//! Both are read by the plugin's parsers (`plugin/src/agent.rs`) and then served
//! by a fake agent server to two whole poll cycles (`plugin/src/sync/`), which
//! store what they read.
//!
//! Asserts:
//! - the parsers agree with a plain `serde_json::Value` reading: the objects
//!   among the items, a string `next_page_id`, each event's exact bytes, and its
//!   id, timestamp, kind (and a state update's key and value);
//! - a page id from an answer goes back to the agent server intact;
//! - a poll cycle never fails on what an agent server says, stores each
//!   distinct event once (a second cycle over the same answers stores nothing),
//!   and keeps each conversation's `event_count` equal to its stored events;
//! - a conversation of another user is never taken over.

use std::collections::HashSet;

use crate::world::{NOW_US, World, ok, parts, query_param};
use sandboxd_plugin::agent::{self, Agent, STATE_UPDATE};
use sandboxd_plugin::ports::{HttpError, Request, Response};
use sandboxd_plugin::schema::conversations as conv;
use sandboxd_plugin::schema::events::MAX_EVENT_ID;
use serde_json::Value;
use serde_json::value::RawValue;

const AGENT_URL: &str = "http://agent.test/rt-1";
/// A conversation that belongs to another user's sandbox.
const BOBS: &str = "b0b00000-0000-4000-8000-000000000000";

/// One input, checked.
pub fn run(data: &[u8]) {
    let [conversations, events] = parts::<2>(data);
    check_conversation_page(conversations);
    let distinct = check_event_page(events);
    if let Ok(list) = agent::parse_event_array(events) {
        let value: Value = serde_json::from_slice(events)
            .unwrap_or_else(|e| panic!("an event array was read from invalid JSON: {e}"));
        assert_eq!(value.as_array().map(Vec::len), Some(list.len()));
    }

    let world = World::new(|r: &Request| respond(r, conversations, events));
    world.put_sandbox("sb-1", Some("alice"), "key-1", NOW_US - 1_000_000);
    world.put_sandbox("sb-bob", Some("bob"), "key-bob", NOW_US - 1_000_000);
    world.put_conversation(BOBS, "sb-bob", Some("bob"), NOW_US - 500_000);
    let bobs_before = world.conversations();

    let poller = world.service(None);
    let first = poller
        .poll(&sandboxd_plugin::share::Share::all())
        .unwrap_or_else(|e| panic!("a poll cycle failed on an agent server's answers: {e}"));
    world.check_event_store();
    if agent::parse_conversation_page(conversations).is_err() {
        assert!(first.failures.iter().any(|(id, _)| id == "sb-1"));
    }
    if first.failures.is_empty()
        && let Some(distinct) = distinct
    {
        assert_eq!(
            first.new_events as usize,
            distinct * first.conversations as usize,
            "events stored ≠ distinct events × conversations"
        );
    }
    let second = poller
        .poll(&sandboxd_plugin::share::Share::all())
        .unwrap_or_else(|e| panic!("a second poll cycle failed: {e}"));
    assert_eq!(second.new_events, 0, "the same events were stored twice");
    world.check_event_store();

    let bob_key = conv::key_of(BOBS).unwrap_or_default();
    let bobs_after: Vec<_> = world
        .conversations()
        .into_iter()
        .filter(|c| c.key() == bob_key)
        .collect();
    let bobs_before: Vec<_> = bobs_before
        .into_iter()
        .filter(|c| c.key() == bob_key)
        .collect();
    assert_eq!(
        bobs_after, bobs_before,
        "another user's conversation changed"
    );
}

/// The agent server `sb-1` runs, answering every first page with the input and
/// every further page with nothing; the runtime API lists it as running.
fn respond(r: &Request, conversations: &[u8], events: &[u8]) -> Result<Response, HttpError> {
    if r.url == format!("{}/list", crate::world::RUNTIME_URL) {
        return ok(format!(
            r#"{{"runtimes": [{{"session_id": "sb-1", "runtime_id": "rt-1", "url": "{AGENT_URL}",
                "session_api_key": "key-1", "status": "running"}}], "total": 1}}"#
        )
        .as_bytes());
    }
    let further = query_param(&r.url, "page_id").is_some();
    if r.url.contains("/events/search?") {
        return ok(if further { br#"{"items": []}"# } else { events });
    }
    if r.url.contains("/api/conversations/search?") {
        return ok(if further {
            br#"{"items": []}"#
        } else {
            conversations
        });
    }
    Ok(Response::new(404, br#"{"detail": "not found"}"#.to_vec()))
}

fn agent() -> Agent {
    Agent {
        sandbox_id: "sb-1".into(),
        base_url: AGENT_URL.into(),
        session_key: "key-1".into(),
        timeout_ms: 1000,
    }
}

fn check_conversation_page(body: &[u8]) {
    let Ok(page) = agent::parse_conversation_page(body) else {
        return;
    };
    assert!(page.items.iter().all(Value::is_object));
    // serde skips unknown fields without checking their strings, so a page can
    // be read whose whole is not valid JSON; then only what was read is checked.
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let o = value
            .as_object()
            .unwrap_or_else(|| panic!("a conversation page was read from {value}"));
        let want: Vec<Value> = match o.get("items") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.iter().filter(|i| i.is_object()).cloned().collect(),
            Some(other) => panic!("conversations read from {other}"),
        };
        assert_eq!(page.items, want);
        check_next_page_id(o, page.next_page_id.as_deref());
    }
    if let Some(next) = &page.next_page_id {
        let url = agent().search_conversations(Some(next)).url;
        assert_eq!(
            query_param(&url, "page_id").as_deref(),
            Some(next.as_bytes())
        );
    }
    for info in &page.items {
        if let Some(key) = info
            .get("id")
            .and_then(Value::as_str)
            .and_then(conv::key_of)
        {
            assert_eq!(
                agent().conversation(&key).url,
                format!("{AGENT_URL}/api/conversations/{key}"),
                "a conversation key needed encoding"
            );
        }
    }
}

/// Check an event page; the number of distinct events it holds if it is read.
fn check_event_page(body: &[u8]) -> Option<usize> {
    let page = agent::parse_event_page(body).ok()?;
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let o = value
            .as_object()
            .unwrap_or_else(|| panic!("an event page was read from {value}"));
        let want: &[Value] = match o.get("items") {
            None | Some(Value::Null) => &[],
            Some(Value::Array(items)) => items,
            Some(other) => panic!("events read from {other}"),
        };
        assert_eq!(page.items.len(), want.len());
        for (raw, want) in page.items.iter().zip(want) {
            let got: Value = serde_json::from_str(raw.get())
                .unwrap_or_else(|e| panic!("an event's bytes are not JSON: {e}"));
            assert_eq!(&got, want);
        }
        check_next_page_id(o, page.next_page_id.as_deref());
    }
    let span = body.as_ptr_range();
    let mut distinct = HashSet::new();
    for raw in &page.items {
        assert!(
            span.contains(&raw.get().as_ptr()),
            "an event is not the bytes received"
        );
        // An event whose bytes do not parse (a lone surrogate escape, say) is
        // skipped by sync, as is one that is not an object.
        match serde_json::from_str::<Value>(raw.get()) {
            Ok(v) => {
                if let Some(id) = check_event(raw, &v) {
                    distinct.insert(id);
                }
            }
            Err(_) => assert_eq!(agent::event_meta(raw), None),
        }
    }
    if let Some(next) = &page.next_page_id {
        let url = agent()
            .events("c1", Some("2026-01-01T00:00:00.000000"), Some(next))
            .url;
        assert_eq!(
            query_param(&url, "page_id").as_deref(),
            Some(next.as_bytes())
        );
    }
    Some(distinct.len())
}

/// Check what sync reads of one event; how it tells events apart (its id, or
/// its bytes when it has no usable id), none if it is no event at all.
fn check_event(raw: &RawValue, value: &Value) -> Option<(bool, String)> {
    let meta = agent::event_meta(raw);
    let Some(o) = value.as_object() else {
        assert_eq!(meta, None, "a non-object read as an event");
        return None;
    };
    let meta = meta.unwrap_or_else(|| panic!("an event object was not read: {value}"));
    let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
    assert_eq!(meta.id, text("id"));
    assert_eq!(meta.timestamp, text("timestamp"));
    assert_eq!(meta.kind, text("kind"));
    if meta.kind.as_deref() == Some(STATE_UPDATE) {
        assert_eq!(meta.key, text("key"));
        assert_eq!(meta.value.as_ref(), o.get("value"));
    } else {
        assert_eq!((meta.key, meta.value), (None, None));
    }
    Some(match meta.id {
        Some(id) if !id.is_empty() && id.len() <= MAX_EVENT_ID => (true, id),
        _ => (false, raw.get().to_owned()),
    })
}

fn check_next_page_id(page: &serde_json::Map<String, Value>, got: Option<&str>) {
    assert_eq!(got, page.get("next_page_id").and_then(Value::as_str));
}
