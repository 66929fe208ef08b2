//! Conversations.
//!
//! Tables:
//! - `conversations`: conversation key → [`ConversationRecord`] (JSON).
//! - `conversations_by_owner`: owner prefix ‖ order key → empty: one user's
//!   conversations, newest first.
//! - `conversations_by_created`: order key → empty: everyone's, newest first.
//! - `conversations_by_sandbox`: sandbox id ‖ 0 ‖ order key → empty.
//!
//! A conversation's key is its id in one canonical form: a UUID (with or without
//! dashes, any case) becomes 32 lower-case hex digits; any other id is kept as
//! given. Its order key is fixed when it is first stored, so its index entries
//! never move; updates replace only the record.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{order_key, owner_prefix};
use crate::error::Result;
use crate::ports::Op;

pub const CONVERSATIONS: &str = "conversations";
pub const BY_OWNER: &str = "conversations_by_owner";
pub const BY_CREATED: &str = "conversations_by_created";
pub const BY_SANDBOX: &str = "conversations_by_sandbox";

/// Longest conversation id accepted that is not a UUID.
const MAX_ID_LEN: usize = 128;

/// What sandboxd keeps of a conversation: the fields the app asks for, the
/// agent server's last `ConversationInfo` as received, and the sync cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationRecord {
    /// As the agent server spells it (a dashed UUID, normally).
    pub id: String,
    pub sandbox_id: String,
    /// The owner of the sandbox it runs in.
    pub created_by_user_id: Option<String>,
    pub title: Option<String>,
    pub execution_status: Option<String>,
    /// When the source of `execution_status` happened (µs): an info's
    /// `updated_at` or a state-update event's timestamp. Older news is ignored.
    pub status_at_us: i64,
    pub llm_model: Option<String>,
    pub stats: Option<Value>,
    pub metrics: Option<Value>,
    pub tags: Option<Value>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    /// The last `ConversationInfo` received, unchanged.
    pub raw: Option<Value>,
    /// The newest event timestamp stored (µs): where the next poll resumes.
    pub max_event_us: Option<i64>,
    pub event_count: u64,
    /// When sandboxd first stored it (µs); with the key, its place in listings.
    pub order_us: i64,
}

impl ConversationRecord {
    pub fn key(&self) -> String {
        key_of(&self.id).unwrap_or_else(|| self.id.clone())
    }

    pub fn encode(&self) -> Vec<u8> {
        super::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        super::decode("conversation", bytes)
    }

    pub fn visible_to(&self, caller: Option<&str>) -> bool {
        caller.is_none() || self.created_by_user_id.as_deref() == caller
    }

    fn order_key(&self) -> Vec<u8> {
        order_key(self.order_us, &self.key())
    }

    /// Store a new conversation and its index entries; fails if the key exists.
    pub fn insert_ops(&self) -> Vec<Op> {
        let key = self.key().into_bytes();
        let mut owner = owner_prefix(self.created_by_user_id.as_deref());
        owner.extend_from_slice(&self.order_key());
        vec![
            Op::RequireAbsent {
                table: CONVERSATIONS,
                key: key.clone(),
            },
            Op::Put {
                table: CONVERSATIONS,
                key,
                value: self.encode(),
            },
            Op::Put {
                table: BY_OWNER,
                key: owner,
                value: Vec::new(),
            },
            Op::Put {
                table: BY_CREATED,
                key: self.order_key(),
                value: Vec::new(),
            },
            Op::Put {
                table: BY_SANDBOX,
                key: sandbox_key(&self.sandbox_id, &self.order_key()),
                value: Vec::new(),
            },
        ]
    }

    /// Replace `old` (as stored) by `self`; the indexes do not change.
    pub fn update_ops(&self, old: &ConversationRecord) -> Vec<Op> {
        let key = self.key().into_bytes();
        vec![
            Op::RequireValue {
                table: CONVERSATIONS,
                key: key.clone(),
                value: old.encode(),
            },
            Op::Put {
                table: CONVERSATIONS,
                key,
                value: self.encode(),
            },
        ]
    }

    /// The document the API answers: the stored fields and the raw info.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "sandbox_id": self.sandbox_id,
            "created_by_user_id": self.created_by_user_id,
            "title": self.title,
            "execution_status": self.execution_status,
            "llm_model": self.llm_model,
            "stats": self.stats,
            "metrics": self.metrics,
            "tags": self.tags,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "event_count": self.event_count,
            "raw": self.raw,
        })
    }
}

/// The index key of a conversation in `conversations_by_sandbox`.
pub fn sandbox_key(sandbox_id: &str, order_key: &[u8]) -> Vec<u8> {
    let mut key = sandbox_prefix(sandbox_id);
    key.extend_from_slice(order_key);
    key
}

/// The prefix of one sandbox's entries in `conversations_by_sandbox`.
pub fn sandbox_prefix(sandbox_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(sandbox_id.len() + 1);
    key.extend_from_slice(sandbox_id.as_bytes());
    key.push(0);
    key
}

/// The canonical key of a conversation id, or none for an id that cannot be one
/// (empty, too long, `.` or `..`, or with characters unsafe in a URL path).
pub fn key_of(id: &str) -> Option<String> {
    let id = id.trim();
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    if hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some(hex.to_ascii_lowercase());
    }
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| id.to_owned())
}

/// The dashed form of a 32-hex-digit key (the form agent servers use in JSON);
/// any other key as it is.
pub fn dashed(key: &str) -> String {
    if key.len() == 32 && key.chars().all(|c| c.is_ascii_hexdigit()) {
        format!(
            "{}-{}-{}-{}-{}",
            &key[..8],
            &key[8..12],
            &key[12..16],
            &key[16..20],
            &key[20..]
        )
    } else {
        key.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_ids_have_one_key_with_or_without_dashes() {
        let key = "a1b2c3d400004000800000000000000f";
        assert_eq!(
            key_of("A1B2C3D4-0000-4000-8000-00000000000F").as_deref(),
            Some(key)
        );
        assert_eq!(key_of(key).as_deref(), Some(key));
        assert_eq!(dashed(key), "a1b2c3d4-0000-4000-8000-00000000000f");
    }

    #[test]
    fn the_raw_info_keeps_its_numbers_through_storage() {
        // Found by the webhook_bodies fuzz target: `0.000…0001` (1e-126) was
        // parsed one bit off, stored as 1.0000000000000001e-126, and read back
        // as yet another number.
        let text = format!(
            r#"{{"id": "c", "stats": {{"cost": 0.{}1}}}}"#,
            "0".repeat(125)
        );
        let info: Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(info["stats"]["cost"].as_f64(), Some(1e-126));
        let record = ConversationRecord {
            id: "c".into(),
            sandbox_id: "sb".into(),
            created_by_user_id: None,
            title: None,
            execution_status: None,
            status_at_us: 0,
            llm_model: None,
            stats: None,
            metrics: None,
            tags: None,
            created_at: None,
            updated_at: None,
            raw: Some(info.clone()),
            max_event_us: None,
            event_count: 0,
            order_us: 0,
        };
        let stored = ConversationRecord::decode(&record.encode()).map(|r| r.raw);
        assert_eq!(stored, Ok(Some(info)));
    }

    #[test]
    fn other_ids_are_kept_if_safe() {
        assert_eq!(key_of("conv-1").as_deref(), Some("conv-1"));
        assert_eq!(key_of("a/b"), None);
        assert_eq!(key_of(""), None);
        assert_eq!(key_of(&"x".repeat(200)), None);
    }
}
