//! Event callbacks and their deliveries.
//!
//! Tables:
//! - `callbacks`: callback id → [`CallbackRecord`].
//! - `deliveries`: delivery id → [`DeliveryRecord`]: one event owed to one callback.
//! - `deliveries_due`: time key of the next attempt ‖ delivery id → empty: what
//!   `deliver-due` scans, oldest first.
//! - `delivery_attempts`: callback id ‖ 0 ‖ reversed time key ‖ delivery id ‖
//!   attempt → [`AttemptRecord`]: the delivery log, newest first.
//!
//! Invariants: a delivery is created in the commit that stores its event, so an
//! event is owed to every matching callback exactly when it is stored; a pending
//! delivery has exactly one `deliveries_due` entry; a finished one (delivered or
//! out of attempts) has none and its record is removed, its attempts stay.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::history::{HistoryRecord, STATUS_EVENT_KIND};
use super::time_key;
use crate::error::Result;
use crate::ports::Op;

pub const CALLBACKS: &str = "callbacks";
pub const DELIVERIES: &str = "deliveries";
pub const DELIVERIES_DUE: &str = "deliveries_due";
pub const DELIVERY_ATTEMPTS: &str = "delivery_attempts";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRecord {
    pub id: String,
    pub url: String,
    /// Only events of this conversation (its key), if set.
    pub conversation_key: Option<String>,
    /// Only events of these kinds, if set.
    pub event_kinds: Option<Vec<String>>,
    /// Events of this user's conversations only; none: everyone's.
    pub created_by_user_id: Option<String>,
    pub created_at_us: i64,
}

impl CallbackRecord {
    pub fn visible_to(&self, caller: Option<&str>) -> bool {
        caller.is_none() || self.created_by_user_id.as_deref() == caller
    }

    /// Whether an event of `kind` in the conversation `conversation_key` owned by
    /// `owner` is owed to this callback.
    pub fn wants(&self, conversation_key: &str, owner: Option<&str>, kind: Option<&str>) -> bool {
        let owner_ok =
            self.created_by_user_id.is_none() || self.created_by_user_id.as_deref() == owner;
        let conversation_ok = self
            .conversation_key
            .as_deref()
            .is_none_or(|c| c == conversation_key);
        let kind_ok = self
            .event_kinds
            .as_ref()
            .is_none_or(|kinds| kind.is_some_and(|k| kinds.iter().any(|w| w == k)));
        owner_ok && conversation_ok && kind_ok
    }

    /// Whether the status changes of a sandbox owned by `owner` are owed to
    /// this callback: only when it names [`STATUS_EVENT_KIND`] (a callback made
    /// before lifecycle events existed keeps receiving what it asked for), is
    /// not limited to one conversation, and may see the owner's sandboxes.
    pub fn wants_status_of(&self, owner: Option<&str>) -> bool {
        let owner_ok =
            self.created_by_user_id.is_none() || self.created_by_user_id.as_deref() == owner;
        let named = self
            .event_kinds
            .as_ref()
            .is_some_and(|kinds| kinds.iter().any(|k| k == STATUS_EVENT_KIND));
        owner_ok && named && self.conversation_key.is_none()
    }

    pub fn encode(&self) -> Vec<u8> {
        super::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        super::decode("callback", bytes)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub id: String,
    pub callback_id: String,
    /// The conversation's key; for a status change, the sandbox id.
    pub conversation_key: String,
    /// The event's place in `events` (with the conversation key); for a
    /// status change, its place in `sandbox_history`.
    pub event_time_us: i64,
    pub event_id: String,
    /// Attempts made so far.
    pub attempts: u32,
    pub next_at_us: i64,
    /// A `SandboxStatusEvent` (a history entry), not a conversation's event.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub status_change: bool,
}

/// How many ops [`DeliveryRecord::reschedule_ops`] makes (a conflict's op
/// index, divided by this, names the delivery).
pub const RESCHEDULE_OPS: usize = 4;

impl DeliveryRecord {
    /// A new delivery of one event to one callback, due at `now_us`.
    pub fn new(
        callback_id: &str,
        conversation_key: &str,
        event_time_us: i64,
        event_id: &str,
        now_us: i64,
    ) -> Self {
        DeliveryRecord {
            id: delivery_id(callback_id, conversation_key, event_id),
            callback_id: callback_id.to_owned(),
            conversation_key: conversation_key.to_owned(),
            event_time_us,
            event_id: event_id.to_owned(),
            attempts: 0,
            next_at_us: now_us,
            status_change: false,
        }
    }

    /// A new delivery of one status change to one callback, due at `now_us`.
    pub fn for_status_change(callback_id: &str, entry: &HistoryRecord, now_us: i64) -> Self {
        DeliveryRecord {
            id: delivery_id(
                callback_id,
                &format!("sandbox/{}", entry.sandbox_id),
                &entry.id,
            ),
            callback_id: callback_id.to_owned(),
            conversation_key: entry.sandbox_id.clone(),
            event_time_us: entry.at_us,
            event_id: entry.id.clone(),
            attempts: 0,
            next_at_us: now_us,
            status_change: true,
        }
    }

    /// Where the delivered body is stored: the table and the key.
    pub fn body_key(&self) -> (&'static str, Vec<u8>) {
        if self.status_change {
            (
                super::history::HISTORY,
                super::history::entry_key(
                    &self.conversation_key,
                    self.event_time_us,
                    &self.event_id,
                ),
            )
        } else {
            (
                super::events::EVENTS,
                super::events::event_key(
                    &self.conversation_key,
                    self.event_time_us,
                    &self.event_id,
                ),
            )
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        super::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        super::decode("delivery", bytes)
    }

    pub fn due_key(&self) -> Vec<u8> {
        due_key(self.next_at_us, &self.id)
    }

    pub fn insert_ops(&self) -> [Op; 3] {
        [
            Op::RequireAbsent {
                table: DELIVERIES,
                key: self.id.as_bytes().to_vec(),
            },
            Op::Put {
                table: DELIVERIES,
                key: self.id.as_bytes().to_vec(),
                value: self.encode(),
            },
            Op::Put {
                table: DELIVERIES_DUE,
                key: self.due_key(),
                value: Vec::new(),
            },
        ]
    }

    /// Reschedule `old` (as stored) as `self`: [`RESCHEDULE_OPS`] ops, the
    /// precondition first.
    pub fn reschedule_ops(&self, old: &DeliveryRecord) -> [Op; RESCHEDULE_OPS] {
        [
            Op::RequireValue {
                table: DELIVERIES,
                key: self.id.as_bytes().to_vec(),
                value: old.encode(),
            },
            Op::Put {
                table: DELIVERIES,
                key: self.id.as_bytes().to_vec(),
                value: self.encode(),
            },
            Op::Delete {
                table: DELIVERIES_DUE,
                key: old.due_key(),
            },
            Op::Put {
                table: DELIVERIES_DUE,
                key: self.due_key(),
                value: Vec::new(),
            },
        ]
    }

    /// Finish `self` (as stored): delivered, out of attempts, or its callback gone.
    pub fn finish_ops(&self) -> [Op; 3] {
        [
            Op::RequireValue {
                table: DELIVERIES,
                key: self.id.as_bytes().to_vec(),
                value: self.encode(),
            },
            Op::Delete {
                table: DELIVERIES,
                key: self.id.as_bytes().to_vec(),
            },
            Op::Delete {
                table: DELIVERIES_DUE,
                key: self.due_key(),
            },
        ]
    }
}

/// A delivery's id: a digest of what it delivers to whom, so one event is never
/// owed twice to one callback.
pub fn delivery_id(callback_id: &str, conversation_key: &str, event_id: &str) -> String {
    let mut h = Sha256::new();
    for part in [callback_id, conversation_key, event_id] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

pub fn due_key(next_at_us: i64, delivery_id: &str) -> Vec<u8> {
    let mut key = time_key(next_at_us).to_vec();
    key.extend_from_slice(delivery_id.as_bytes());
    key
}

/// One attempt, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub delivery_id: String,
    pub event_id: String,
    pub conversation_key: String,
    pub attempt: u32,
    pub at_us: i64,
    pub status: Option<u16>,
    pub error: Option<String>,
    /// `pending` (will retry), `delivered` or `failed`.
    pub state: String,
}

impl AttemptRecord {
    pub fn key(&self, callback_id: &str) -> Vec<u8> {
        let mut key = attempts_prefix(callback_id);
        key.extend_from_slice(&time_key(self.at_us).map(|b| !b));
        key.extend_from_slice(self.delivery_id.as_bytes());
        key.extend_from_slice(&self.attempt.to_be_bytes());
        key
    }

    pub fn encode(&self) -> Vec<u8> {
        super::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        super::decode("delivery attempt", bytes)
    }
}

pub fn attempts_prefix(callback_id: &str) -> Vec<u8> {
    let mut key = callback_id.as_bytes().to_vec();
    key.push(0);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn callback(
        conversation: Option<&str>,
        kinds: Option<Vec<&str>>,
        owner: Option<&str>,
    ) -> CallbackRecord {
        CallbackRecord {
            id: "cb".into(),
            url: "http://x".into(),
            conversation_key: conversation.map(str::to_owned),
            event_kinds: kinds.map(|k| k.into_iter().map(str::to_owned).collect()),
            created_by_user_id: owner.map(str::to_owned),
            created_at_us: 0,
        }
    }

    #[test]
    fn callbacks_filter_by_owner_conversation_and_kind() {
        let all = callback(None, None, None);
        assert!(all.wants("c1", Some("bob"), Some("MessageEvent")));
        assert!(all.wants("c1", None, None));
        let alices = callback(None, None, Some("alice"));
        assert!(alices.wants("c1", Some("alice"), None));
        assert!(!alices.wants("c1", Some("bob"), None));
        assert!(!alices.wants("c1", None, None));
        let one = callback(Some("c1"), Some(vec!["ActionEvent"]), None);
        assert!(one.wants("c1", None, Some("ActionEvent")));
        assert!(!one.wants("c2", None, Some("ActionEvent")));
        assert!(!one.wants("c1", None, Some("MessageEvent")));
        assert!(!one.wants("c1", None, None));
    }

    #[test]
    fn delivery_ids_are_stable_and_distinct() {
        assert_eq!(delivery_id("a", "b", "c"), delivery_id("a", "b", "c"));
        assert_ne!(delivery_id("a", "bc", ""), delivery_id("ab", "c", ""));
        assert_eq!(delivery_id("a", "b", "c").len(), 32);
    }
}
