//! Conversations of one agent server: ConversationInfo objects, their events, and
//! `GET /api/conversations/search`.
//!
//! Invariants:
//! - The key of a conversation is the UUID it was created with; the served `id` field
//!   is whatever the test left there (normally the dashed UUID), so a test can serve a
//!   malformed id and still address the conversation.
//! - ConversationInfo objects are raw JSON maps, never a typed struct: tests may add,
//!   remove or corrupt any field, and the fake serves it as it is.
//! - Sort keys (`created_at`, `updated_at`) are recomputed after every change the
//!   handle makes, so a search never parses timestamps.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::events::EventLog;
use super::ids::{self, dashed, new_uuid, parse_uuid};
use super::time::{self, SortKey};

/// The `execution_status` values of the real server.
pub(crate) const EXECUTION_STATUSES: [&str; 8] = [
    "idle",
    "running",
    "paused",
    "waiting_for_confirmation",
    "finished",
    "error",
    "stuck",
    "deleting",
];

/// The conversation search's `sort_order` values (the first is the default).
pub(crate) const SORT_ORDERS: [&str; 4] = [
    "CREATED_AT_DESC",
    "CREATED_AT",
    "UPDATED_AT",
    "UPDATED_AT_DESC",
];

pub(crate) struct Conversation {
    /// Creation order; ties in a sort keep it, as Python's stable sort does.
    seq: u64,
    pub info: Map<String, Value>,
    created: SortKey,
    updated: SortKey,
    pub events: EventLog,
}

impl Conversation {
    /// Recomputes what searches sort and filter on; call after changing `info`.
    pub fn refresh(&mut self) {
        self.created = time::sort_key(self.info.get("created_at"));
        self.updated = time::sort_key(self.info.get("updated_at"));
    }
}

/// What `GET /api/conversations/search` asked for, already validated.
pub(crate) struct ConversationQuery<'a> {
    pub page_id: Option<&'a str>,
    pub limit: usize,
    /// The `status` filter on `execution_status`.
    pub status: Option<&'a str>,
    /// One of [`SORT_ORDERS`].
    pub sort_order: &'a str,
}

/// The conversations of one agent server.
#[derive(Default)]
pub(crate) struct Conversations {
    by_id: HashMap<u128, Conversation>,
    next_seq: u64,
}

impl Conversations {
    /// Creates a conversation from the default ConversationInfo with `overrides`
    /// deep-merged into it. An `id` override that is a UUID string becomes the key.
    pub fn add(&mut self, overrides: Value) -> Result<u128, String> {
        let overrides = as_patch(overrides)?;
        let id = match overrides.get("id").and_then(Value::as_str) {
            Some(text) => parse_uuid(text).unwrap_or_else(new_uuid),
            None => new_uuid(),
        };
        if self.by_id.contains_key(&id) {
            return Err(format!("conversation {} already exists", dashed(id)));
        }
        let mut info = default_info(id);
        merge(&mut info, &overrides);
        let mut conversation = Conversation {
            seq: self.next_seq,
            info,
            created: None,
            updated: None,
            events: EventLog::default(),
        };
        conversation.refresh();
        self.next_seq += 1;
        self.by_id.insert(id, conversation);
        Ok(id)
    }

    pub fn get(&self, id: u128) -> Option<&Conversation> {
        self.by_id.get(&id)
    }

    pub fn get_mut(&mut self, id: u128) -> Option<&mut Conversation> {
        self.by_id.get_mut(&id)
    }

    pub fn remove(&mut self, id: u128) -> bool {
        self.by_id.remove(&id).is_some()
    }

    /// All conversations in creation order.
    pub fn in_creation_order(&self) -> Vec<&Conversation> {
        let mut all: Vec<&Conversation> = self.by_id.values().collect();
        all.sort_by_key(|conversation| conversation.seq);
        all
    }

    /// One page of the search and the page id (undashed, like the real server's
    /// `uuid.hex`) of the next one. Cost: O(c log c) in this agent's conversations.
    pub fn search(&self, query: &ConversationQuery<'_>) -> (Vec<&Conversation>, Option<String>) {
        let mut listed: Vec<(u128, &Conversation)> = self
            .by_id
            .iter()
            .filter(|(_, conversation)| {
                query.status.is_none_or(|wanted| {
                    conversation
                        .info
                        .get("execution_status")
                        .and_then(Value::as_str)
                        == Some(wanted)
                })
            })
            .map(|(&id, conversation)| (id, conversation))
            .collect();
        let (by_updated, descending) = match query.sort_order {
            "CREATED_AT" => (false, false),
            "UPDATED_AT" => (true, false),
            "UPDATED_AT_DESC" => (true, true),
            _ => (false, true),
        };
        listed.sort_by(|(_, a), (_, b)| {
            let (a_key, b_key) = if by_updated {
                (a.updated, b.updated)
            } else {
                (a.created, b.created)
            };
            let by_key = if descending {
                b_key.cmp(&a_key)
            } else {
                a_key.cmp(&b_key)
            };
            by_key.then(a.seq.cmp(&b.seq))
        });
        // An unknown page id starts over from the first page, as on the real server.
        let start = query
            .page_id
            .and_then(parse_uuid)
            .and_then(|page_id| listed.iter().position(|(id, _)| *id == page_id))
            .unwrap_or(0);
        let mut rest = listed.into_iter().skip(start);
        let items = rest
            .by_ref()
            .take(query.limit)
            .map(|(_, conversation)| conversation)
            .collect();
        let next = rest.next().map(|(id, _)| ids::hex(id));
        (items, next)
    }
}

/// A fresh ConversationInfo shaped like the real server's: the fields sandboxd reads,
/// and a few it does not (to prove it tolerates them).
fn default_info(id: u128) -> Map<String, Value> {
    let now = time::utc_now();
    let model = "litellm_proxy/anthropic/claude-sonnet-4-20250514";
    let hex = ids::hex(id);
    let info = json!({
        "id": dashed(id),
        "title": format!("Fake conversation {}", &hex[..8]),
        "execution_status": "idle",
        "created_at": now,
        "updated_at": now,
        "agent": {
            "kind": "Agent",
            "llm": {"model": model, "usage_id": "agent", "temperature": 0.0},
            "tools": [{"name": "terminal"}, {"name": "file_editor"}],
        },
        "stats": {"usage_to_metrics": {}},
        "metrics": {
            "model_name": model,
            "accumulated_cost": 0.0,
            "max_budget_per_task": null,
            "accumulated_token_usage": {
                "model": model,
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cache_read_tokens": 0,
                "cache_write_tokens": 0,
                "context_window": 200000,
                "per_turn_token": 0,
                "response_id": "",
            },
        },
        "tags": {},
        "workspace": {"kind": "LocalWorkspace", "working_dir": "/workspace"},
        "persistence_dir": format!("workspace/conversations/{hex}"),
        "max_iterations": 500,
        "stuck_detection": true,
        "confirmation_policy": {"kind": "NeverConfirm"},
        "security_analyzer": null,
        "activated_knowledge_skills": [],
        "blocked_actions": {},
        "blocked_messages": {},
        "secret_registry": {"secret_sources": {}},
    });
    match info {
        Value::Object(info) => info,
        _ => Map::new(),
    }
}

/// A patch or overrides argument: an object, or `null` for "nothing".
pub(crate) fn as_patch(patch: Value) -> Result<Map<String, Value>, String> {
    match patch {
        Value::Object(patch) => Ok(patch),
        Value::Null => Ok(Map::new()),
        other => Err(format!(
            "a patch must be a JSON object or null, not {other}"
        )),
    }
}

/// Deep merge: objects merge key by key; any other value (`null` included) replaces.
pub(crate) fn merge(target: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        match (target.get_mut(key), value) {
            (Some(Value::Object(inner)), Value::Object(patch)) => merge(inner, patch),
            _ => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_merge_deeply_and_null_replaces() {
        let mut conversations = Conversations::default();
        let id = conversations
            .add(json!({"agent": {"llm": {"model": "m"}}, "title": null, "extra": [1]}))
            .expect("added");
        let info = &conversations.get(id).expect("stored").info;
        assert_eq!(info["agent"]["llm"]["model"], "m");
        assert_eq!(info["agent"]["llm"]["usage_id"], "agent");
        assert_eq!(info["agent"]["kind"], "Agent");
        assert_eq!(info["title"], Value::Null);
        assert_eq!(info["extra"], json!([1]));
        assert_eq!(info["id"], dashed(id));
        assert!(conversations.add(json!([])).is_err());
    }

    #[test]
    fn an_id_override_is_the_key_when_it_is_a_uuid() {
        let mut conversations = Conversations::default();
        let wanted = new_uuid();
        let id = conversations
            .add(json!({"id": ids::hex(wanted)}))
            .expect("added");
        assert_eq!(id, wanted);
        assert!(conversations.add(json!({"id": dashed(wanted)})).is_err());
        // Not a UUID: served as given under a random key.
        let other = conversations.add(json!({"id": 7})).expect("added");
        assert_eq!(conversations.get(other).expect("stored").info["id"], 7);
    }
}
