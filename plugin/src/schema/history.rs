//! Sandbox histories: every status change, with its time and cause.
//!
//! Tables:
//! - `sandbox_history`: sandbox id ‖ 0 ‖ reversed time key ‖ entry id →
//!   [`HistoryRecord`]: one sandbox's changes, newest first.
//! - `sandbox_history_expiry`: time key of the expiry ‖ sandbox id → empty: the
//!   histories of deleted sandboxes, oldest expiry first, for the policy pass
//!   to purge.
//!
//! Invariants: an entry is written in the commit that makes the change it
//! records (or that records a change the runtime reported), so the history
//! never claims a change that did not happen and never misses one sandboxd
//! made. A history outlives its sandbox: the delete's commit adds the final
//! entry and the expiry, and only the purge removes it. Each entry keeps the
//! owner, so a history stays scoped after its record is gone.

use serde::{Deserialize, Serialize};

use super::time_key;
use crate::error::Result;
use crate::model::{Cause, Status};
use crate::ports::Op;

pub const HISTORY: &str = "sandbox_history";
pub const HISTORY_EXPIRY: &str = "sandbox_history_expiry";

/// The event kind of a status change, as callbacks name it in `event_kinds`.
pub const STATUS_EVENT_KIND: &str = "SandboxStatusEvent";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// Unique among the sandbox's entries; the lifecycle event's `id`.
    pub id: String,
    pub sandbox_id: String,
    /// The sandbox's owner, for scoping after the sandbox is deleted.
    pub owner: Option<String>,
    pub at_us: i64,
    pub status: Status,
    pub previous_status: Option<Status>,
    pub cause: Cause,
    pub detail: Option<String>,
}

impl HistoryRecord {
    pub fn key(&self) -> Vec<u8> {
        entry_key(&self.sandbox_id, self.at_us, &self.id)
    }

    pub fn put(&self) -> Op {
        Op::Put {
            table: HISTORY,
            key: self.key(),
            value: super::encode(self),
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        super::decode("history", bytes)
    }

    /// Whether `caller` may read this entry (none reads everything).
    pub fn visible_to(&self, caller: Option<&str>) -> bool {
        caller.is_none() || self.owner.as_deref() == caller
    }

    /// The `SandboxStatusEvent` delivered to callbacks.
    pub fn event_json(&self) -> Vec<u8> {
        super::encode(&serde_json::json!({
            "kind": STATUS_EVENT_KIND,
            "id": self.id,
            "timestamp": crate::time::iso8601(self.at_us),
            "sandbox_id": self.sandbox_id,
            "status": self.status,
            "previous_status": self.previous_status,
            "cause": self.cause,
            "detail": self.detail,
        }))
    }
}

/// The key prefix of one sandbox's entries (ids never hold a 0 byte).
pub fn prefix(sandbox_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(sandbox_id.len() + 1);
    key.extend_from_slice(sandbox_id.as_bytes());
    key.push(0);
    key
}

pub fn entry_key(sandbox_id: &str, at_us: i64, entry_id: &str) -> Vec<u8> {
    let mut key = prefix(sandbox_id);
    key.extend_from_slice(&time_key(at_us).map(|b| !b));
    key.extend_from_slice(entry_id.as_bytes());
    key
}

/// The entry that marks sandbox `id`'s history for purging at `expires_at_us`.
pub fn expiry_put(sandbox_id: &str, expires_at_us: i64) -> Op {
    Op::Put {
        table: HISTORY_EXPIRY,
        key: expiry_key(sandbox_id, expires_at_us),
        value: Vec::new(),
    }
}

pub fn expiry_key(sandbox_id: &str, expires_at_us: i64) -> Vec<u8> {
    let mut key = time_key(expires_at_us).to_vec();
    key.extend_from_slice(sandbox_id.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_sort_newest_first_within_their_sandbox() {
        let mut keys = [
            entry_key("a", 5, "x"),
            entry_key("a", 9, "y"),
            entry_key("ab", 1, "z"),
        ];
        keys.sort();
        assert_eq!(keys[0], entry_key("a", 9, "y"));
        assert_eq!(keys[1], entry_key("a", 5, "x"));
        assert!(keys.iter().take(2).all(|k| k.starts_with(&prefix("a"))));
        assert!(!keys[2].starts_with(&prefix("a")));
    }

    #[test]
    fn the_event_names_its_kind_status_and_cause_as_the_api_spells_them() {
        let record = HistoryRecord {
            id: "h1".into(),
            sandbox_id: "sb".into(),
            owner: Some("alice".into()),
            at_us: 0,
            status: Status::Paused,
            previous_status: Some(Status::Running),
            cause: Cause::MaxRunning,
            detail: None,
        };
        let event: serde_json::Value =
            serde_json::from_slice(&record.event_json()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(event["kind"], "SandboxStatusEvent");
        assert_eq!(event["status"], "PAUSED");
        assert_eq!(event["previous_status"], "RUNNING");
        assert_eq!(event["cause"], "max_running");
        assert_eq!(event["timestamp"], "1970-01-01T00:00:00.000000Z");
        assert!(event.get("owner").is_none());
    }
}
