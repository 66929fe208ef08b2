//! Webhook bodies: the input is what an agent server posts, up to three parts
//! joined by NUL bytes: a `ConversationInfo` body (`POST /webhooks/conversations`),
//! an events array body (`POST /webhooks/events/{conversation_id}`), and the
//! conversation id of that path (default: a fixed UUID).
//!
//! Both bodies go through the plugin's ingestion (`plugin/src/sync/webhook.rs`)
//! as the sandbox's agent server, against an in-memory store.
//!
//! Asserts:
//! - ingestion answers only "invalid input", "unauthorized" (a wrong key, or a
//!   conversation of another user) or success, never a fault;
//! - a stored conversation keeps the info as received, with the sandbox's owner;
//! - each distinct event of a batch is stored once, and the same batch again
//!   stores nothing; `event_count` always equals the events stored;
//! - conversation ids have one canonical key, stable under re-keying;
//! - the events array parser agrees with a plain `serde_json::Value` reading,
//!   and takes exactly the arrays of objects.

use std::collections::HashSet;

use crate::world::{NOW_US, World, is_input_error, ok, parts};
use sandboxd_plugin::agent;
use sandboxd_plugin::error::Error;
use sandboxd_plugin::schema::conversations as conv;
use sandboxd_plugin::schema::events::MAX_EVENT_ID;
use serde_json::Value;

const CONVERSATION: &str = "a1b2c3d4-0000-4000-8000-00000000000f";
/// A conversation that belongs to another user's sandbox.
const BOBS: &str = "b0b00000-0000-4000-8000-000000000000";

/// One input, checked.
pub fn run(data: &[u8]) {
    let [info, events, id] = parts::<3>(data);
    let id = match std::str::from_utf8(id) {
        Ok("") | Err(_) => CONVERSATION,
        Ok(id) => id,
    };
    check_key(id);
    if let Some(info_id) = serde_json::from_slice::<Value>(info)
        .ok()
        .as_ref()
        .and_then(|v| v.get("id"))
        .and_then(Value::as_str)
    {
        check_key(info_id);
    }
    let distinct = check_event_array(events);

    let world = World::new(|_| ok(b"{}"));
    world.put_sandbox("sb-1", Some("alice"), "key-1", NOW_US - 1_000_000);
    world.put_sandbox("sb-bob", Some("bob"), "key-bob", NOW_US - 1_000_000);
    world.put_conversation(BOBS, "sb-bob", Some("bob"), NOW_US - 500_000);
    let bob_key = conv::key_of(BOBS).unwrap_or_default();
    let hook = world.service(None);

    // A key no sandbox holds is refused before anything is read.
    for key in ["", "key-0"] {
        assert!(matches!(
            hook.ingest_conversation(key, info),
            Err(Error::Unauthorized(_))
        ));
        assert!(matches!(
            hook.ingest_events(key, id, events),
            Err(Error::Unauthorized(_))
        ));
    }

    // POST /webhooks/conversations
    let value: Option<Value> = serde_json::from_slice(info).ok();
    let info_key = value
        .as_ref()
        .and_then(|v| v.get("id"))
        .and_then(Value::as_str)
        .and_then(conv::key_of);
    match hook.ingest_conversation("key-1", info) {
        Ok(summary) => {
            let v = value.unwrap_or_else(|| panic!("an info was ingested from invalid JSON"));
            let deleting = v.get("execution_status").and_then(Value::as_str) == Some("deleting");
            let key = info_key.clone();
            if deleting {
                assert!(summary.changed_conversations.is_empty());
            } else {
                let key = key.unwrap_or_else(|| panic!("an info without a usable id: {v}"));
                assert_ne!(key, bob_key, "another user's conversation was taken over");
                let record = world
                    .conversations()
                    .into_iter()
                    .find(|c| c.key() == key)
                    .unwrap_or_else(|| panic!("an ingested conversation is not stored"));
                assert_eq!(record.raw.as_ref(), Some(&v));
                assert_eq!(record.sandbox_id, "sb-1");
                assert_eq!(record.created_by_user_id.as_deref(), Some("alice"));
                let got = hook
                    .get_conversation(&record.id)
                    .unwrap_or_else(|e| panic!("an ingested conversation cannot be read: {e}"));
                assert!(serde_json::from_str::<Value>(&got).is_ok());
            }
        }
        Err(Error::Unauthorized(m)) => {
            assert_eq!(info_key.as_deref(), Some(bob_key.as_str()), "{m}");
        }
        Err(e) => assert!(is_input_error(&e), "ingesting a conversation failed: {e:?}"),
    }
    world.check_event_store();

    // POST /webhooks/events/{id}, twice.
    let stored_before = world
        .conversations()
        .iter()
        .find(|c| Some(c.key()) == conv::key_of(id))
        .map(|c| c.event_count);
    match hook.ingest_events("key-1", id, events) {
        Ok(summary) => {
            let key = conv::key_of(id).unwrap_or_else(|| panic!("events for '{id}' were taken"));
            assert_ne!(key, bob_key, "events went into another user's conversation");
            let distinct = distinct.unwrap_or_else(|| panic!("events taken from a non-array"));
            if stored_before.unwrap_or(0) == 0 {
                assert_eq!(
                    summary.new_events as usize, distinct,
                    "events stored ≠ distinct"
                );
            }
            let again = hook
                .ingest_events("key-1", id, events)
                .unwrap_or_else(|e| panic!("the same batch failed the second time: {e}"));
            assert_eq!(again.new_events, 0, "the same events were stored twice");
            assert!(again.changed_conversations.is_empty());
        }
        Err(Error::Unauthorized(m)) => {
            assert_eq!(conv::key_of(id), Some(bob_key.clone()), "{m}");
        }
        Err(e) => assert!(is_input_error(&e), "ingesting events failed: {e:?}"),
    }
    world.check_event_store();
}

/// A conversation id has at most one key, which is its own key, and which its
/// dashed form keys back to.
fn check_key(id: &str) {
    let Some(key) = conv::key_of(id) else {
        return;
    };
    assert!(!key.is_empty() && key.len() <= 128, "{key:?}");
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
        "{key:?} is unsafe in a path"
    );
    assert_eq!(conv::key_of(&key).as_deref(), Some(key.as_str()), "{id:?}");
    assert_eq!(
        conv::key_of(&conv::dashed(&key)).as_deref(),
        Some(key.as_str()),
        "{id:?}"
    );
}

/// Check the events array parser; the number of distinct events if it reads.
fn check_event_array(body: &[u8]) -> Option<usize> {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let parsed = agent::parse_event_array(body);
    match (&parsed, &value) {
        (Ok(raws), Some(Value::Array(items))) => {
            assert_eq!(raws.len(), items.len());
            let mut distinct = HashSet::new();
            for (raw, item) in raws.iter().zip(items) {
                let got: Value = serde_json::from_str(raw.get())
                    .unwrap_or_else(|e| panic!("an event's bytes are not JSON: {e}"));
                assert_eq!(&got, item);
                let meta = agent::event_meta(raw)
                    .unwrap_or_else(|| panic!("a batch with a non-event was taken: {item}"));
                distinct.insert(match meta.id {
                    Some(id) if !id.is_empty() && id.len() <= MAX_EVENT_ID => (true, id),
                    _ => (false, raw.get().to_owned()),
                });
            }
            Some(distinct.len())
        }
        (Ok(_), other) => panic!("an events array was read from {other:?}"),
        (Err(_), Some(Value::Array(items))) => {
            assert!(
                !items.iter().all(Value::is_object),
                "a JSON array of event objects was refused"
            );
            None
        }
        (Err(_), _) => None,
    }
}
