//! Sandboxes.
//!
//! Tables:
//! - `sandboxes`: sandbox id → [`SandboxRecord`] (JSON).
//! - `sandboxes_by_owner`: [`owner_prefix`] ‖ [`order_key`] → empty. One user's
//!   sandboxes, newest first, for user-scoped paging.
//! - `sandboxes_by_created`: [`order_key`] → empty. Everyone's, newest first, for
//!   callers that see all.
//! - `sandboxes_by_key_hash`: session-key hash (hex) → sandbox id, for webhook
//!   authentication: the current key's, and a paused sandbox's old key's until
//!   its teardown grace ends ([`RetiredKey`]).
//! - `sandboxes_active_by_owner`: [`owner_prefix`] ‖ [`order_key`] → sandbox id, for
//!   the records that [count as active](SandboxRecord::is_active): started or
//!   resumed by sandboxd and not paused or deleted since. The per-user limit
//!   counts these instead of every sandbox the user ever kept, so a start costs
//!   the same with 10 stored sandboxes as with 10,000. It is a superset of what
//!   runs (a runtime may stop by itself); the limit asks the runtime about
//!   these before it pauses anything.
//! - `sandboxes_warm`: [`warm_prefix`] of the spec ‖ [`order_key`] → sandbox id,
//!   for the warm pool: sandboxes started ahead of any request and not handed
//!   out yet ([`SandboxRecord::warm`]). A warm record is in this index and in
//!   `sandboxes_by_key_hash` only: no user's or admin's listing shows it and no
//!   limit counts it until a start takes it, which moves it into the others.
//!
//! Invariant: the index entries of a record are written and removed in the same
//! commit as the record itself ([`SandboxRecord::insert_ops`],
//! [`SandboxRecord::update_ops`], [`SandboxRecord::delete_ops`], all three from
//! [`SandboxRecord::index_entries`]), so an index never
//! names a missing record and a record is never missing from its indexes. Updates
//! carry the record's previous bytes as a precondition: two calls racing on one
//! sandbox cannot silently overwrite each other.

use serde::{Deserialize, Serialize};

use super::{order_key, owner_prefix};
use crate::error::Result;
use crate::model::{Cause, Status};
use crate::ports::Op;

pub const SANDBOXES: &str = "sandboxes";
pub const BY_OWNER: &str = "sandboxes_by_owner";
pub const BY_CREATED: &str = "sandboxes_by_created";
pub const BY_KEY_HASH: &str = "sandboxes_by_key_hash";
pub const ACTIVE_BY_OWNER: &str = "sandboxes_active_by_owner";
pub const WARM: &str = "sandboxes_warm";

/// Where a start stands. A record is written `Starting` before the runtime is
/// asked and becomes `Started` once the runtime answered, so a crash in between
/// leaves a record that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Starting,
    Started,
}

/// What we remember of a sandbox: the runtime API forgets stopped runtimes, so the
/// owner and the spec live here. Never the session key itself, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    pub created_by_user_id: Option<String>,
    pub sandbox_spec_id: String,
    /// Lower-case hex SHA-256 of the current session key; none while paused.
    pub session_api_key_hash: Option<String>,
    /// Microseconds since the Unix epoch.
    pub created_at_us: i64,
    /// When the runtime was last asked to start or resume, for the start timeout.
    pub started_at_us: i64,
    pub phase: Phase,
    // Added with contract 0.5.0. Each is left out of the JSON while it has its
    // default, so a record stored before encodes to the bytes it was stored
    // as (updates carry those bytes as their precondition).
    /// The status the history last recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// When `status` was recorded (µs).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub status_at_us: i64,
    /// A paused sandbox's old session key, valid for its agent server's final
    /// webhooks until the teardown grace ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_key: Option<RetiredKey>,
    /// The policy that paused it since its last start or resume:
    /// a policy acts once per reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acted: Option<Cause>,
    /// Started ahead for the warm pool of its spec and not handed out yet:
    /// visible to no caller, in no listing, counted by no limit, without
    /// history (its history begins when a start takes it). Added in 0.5.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<Warm>,
}

/// Where a warm sandbox stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Warm {
    /// In the pool: a start may take it once its runtime runs.
    Pooled,
    /// Being removed from the pool (its runtime failed, or the pool shrank):
    /// no start takes it, and the pass stops its runtime and then forgets it.
    Leaving,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetiredKey {
    pub hash: String,
    /// Refused from this moment (µs).
    pub until_us: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// The key prefix of one spec's entries in [`WARM`]: length-prefixed, so no
/// spec's prefix is a prefix of another's.
pub fn warm_prefix(spec_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + spec_id.len());
    key.extend_from_slice(&(spec_id.len() as u32).to_be_bytes());
    key.extend_from_slice(spec_id.as_bytes());
    key
}

/// One entry of an index: table, key, value.
type Entry = (&'static str, Vec<u8>, Vec<u8>);

impl SandboxRecord {
    pub fn encode(&self) -> Vec<u8> {
        super::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        super::decode("sandbox", bytes)
    }

    /// Whether `caller` may see this sandbox (none sees everything).
    pub fn visible_to(&self, caller: Option<&str>) -> bool {
        self.warm.is_none() && (caller.is_none() || self.created_by_user_id.as_deref() == caller)
    }

    fn order_key(&self) -> Vec<u8> {
        order_key(self.created_at_us, &self.id)
    }

    /// Whether the record is in [`ACTIVE_BY_OWNER`]: a start in flight, or a
    /// sandbox with a session key (started or resumed, not paused since: a
    /// pause clears the key's hash first).
    pub fn is_active(&self) -> bool {
        self.warm.is_none()
            && (self.phase == Phase::Starting || self.session_api_key_hash.is_some())
    }

    /// The session-key hashes that lead to this record in [`BY_KEY_HASH`].
    pub fn key_hashes(&self) -> impl Iterator<Item = &str> {
        self.session_api_key_hash
            .as_deref()
            .into_iter()
            .chain(self.retired_key.as_ref().map(|k| k.hash.as_str()))
    }

    /// The record's entry in [`ACTIVE_BY_OWNER`].
    pub fn active_entry(&self) -> Op {
        Op::Put {
            table: ACTIVE_BY_OWNER,
            key: self.owner_key(),
            value: self.id.as_bytes().to_vec(),
        }
    }

    /// The record's key in [`BY_OWNER`] and [`ACTIVE_BY_OWNER`].
    pub fn owner_key(&self) -> Vec<u8> {
        let mut key = owner_prefix(self.created_by_user_id.as_deref());
        key.extend_from_slice(&self.order_key());
        key
    }

    /// Every index entry of the record, as it is: the one description of
    /// which indexes a record is in, that inserts, updates and deletes follow.
    pub fn index_entries(&self) -> Vec<Entry> {
        let id = self.id.as_bytes().to_vec();
        let mut entries = Vec::with_capacity(5);
        if self.warm.is_some() {
            let mut key = warm_prefix(&self.sandbox_spec_id);
            key.extend_from_slice(&self.order_key());
            entries.push((WARM, key, id.clone()));
        } else {
            entries.push((BY_OWNER, self.owner_key(), Vec::new()));
            entries.push((BY_CREATED, self.order_key(), Vec::new()));
        }
        for hash in self.key_hashes() {
            entries.push((BY_KEY_HASH, hash.as_bytes().to_vec(), id.clone()));
        }
        if self.is_active() {
            entries.push((ACTIVE_BY_OWNER, self.owner_key(), id));
        }
        entries
    }

    /// Create the record and its index entries; fails on an existing id.
    pub fn insert_ops(&self) -> Vec<Op> {
        let mut ops = vec![
            Op::RequireAbsent {
                table: SANDBOXES,
                key: self.id.as_bytes().to_vec(),
            },
            Op::Put {
                table: SANDBOXES,
                key: self.id.as_bytes().to_vec(),
                value: self.encode(),
            },
        ];
        ops.extend(
            self.index_entries()
                .into_iter()
                .map(|(table, key, value)| Op::Put { table, key, value }),
        );
        ops
    }

    /// Replace `old` (as stored) by `self`, moving whatever index entries
    /// differ (a new key hash, a pause leaving the active index, a warm
    /// sandbox handed out to its owner). The id is fixed.
    pub fn update_ops(&self, old: &SandboxRecord) -> Vec<Op> {
        let mut ops = vec![
            Op::RequireValue {
                table: SANDBOXES,
                key: self.id.as_bytes().to_vec(),
                value: old.encode(),
            },
            Op::Put {
                table: SANDBOXES,
                key: self.id.as_bytes().to_vec(),
                value: self.encode(),
            },
        ];
        let before = old.index_entries();
        let after = self.index_entries();
        for (table, key, _) in &before {
            if !after.iter().any(|(t, k, _)| t == table && k == key) {
                ops.push(Op::Delete {
                    table,
                    key: key.clone(),
                });
            }
        }
        for entry in after {
            if !before.contains(&entry) {
                let (table, key, value) = entry;
                ops.push(Op::Put { table, key, value });
            }
        }
        ops
    }

    /// Remove the record (as stored) and every index entry of it.
    pub fn delete_ops(&self) -> Vec<Op> {
        let mut ops = vec![
            Op::RequireValue {
                table: SANDBOXES,
                key: self.id.as_bytes().to_vec(),
                value: self.encode(),
            },
            Op::Delete {
                table: SANDBOXES,
                key: self.id.as_bytes().to_vec(),
            },
        ];
        let entries = self.index_entries();
        // Whether or not it is active: deleting an absent key is a no-op, and
        // a record stored before that index existed may still have one.
        if self.warm.is_none() && !entries.iter().any(|(t, _, _)| *t == ACTIVE_BY_OWNER) {
            ops.push(Op::Delete {
                table: ACTIVE_BY_OWNER,
                key: self.owner_key(),
            });
        }
        ops.extend(
            entries
                .into_iter()
                .map(|(table, key, _)| Op::Delete { table, key }),
        );
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn record() -> SandboxRecord {
        SandboxRecord {
            id: "abc".into(),
            created_by_user_id: Some("alice".into()),
            sandbox_spec_id: "img".into(),
            session_api_key_hash: Some("h1".into()),
            created_at_us: 1_000,
            started_at_us: 1_000,
            phase: Phase::Started,
            status: None,
            status_at_us: 0,
            retired_key: None,
            acted: None,
            warm: None,
        }
    }

    #[test]
    fn a_record_stored_before_0_5_encodes_to_its_stored_bytes() {
        let stored = br#"{"id":"abc","created_by_user_id":"alice","sandbox_spec_id":"img","session_api_key_hash":"h1","created_at_us":1000,"started_at_us":1000,"phase":"started"}"#;
        let decoded = SandboxRecord::decode(stored).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(decoded, record());
        assert_eq!(decoded.encode(), stored.to_vec());
    }

    #[test]
    fn a_retired_key_keeps_its_index_entry_until_it_is_dropped() {
        let running = record();
        let paused = SandboxRecord {
            session_api_key_hash: None,
            retired_key: Some(RetiredKey {
                hash: "h1".into(),
                until_us: 5,
            }),
            ..record()
        };
        let ops = paused.update_ops(&running);
        assert!(!ops.iter().any(|op| matches!(
            op,
            Op::Delete {
                table: BY_KEY_HASH,
                ..
            }
        )));
        let dropped = SandboxRecord {
            retired_key: None,
            ..paused.clone()
        };
        assert!(dropped.update_ops(&paused).contains(&Op::Delete {
            table: BY_KEY_HASH,
            key: b"h1".to_vec()
        }));
        assert!(paused.delete_ops().contains(&Op::Delete {
            table: BY_KEY_HASH,
            key: b"h1".to_vec()
        }));
    }

    #[test]
    fn records_round_trip() {
        let r = record();
        assert_eq!(SandboxRecord::decode(&r.encode()), Ok(r));
        assert!(matches!(
            SandboxRecord::decode(b"{"),
            Err(Error::Storage(_))
        ));
    }

    #[test]
    fn visibility_is_by_owner_unless_the_caller_sees_all() {
        let r = record();
        assert!(r.visible_to(None));
        assert!(r.visible_to(Some("alice")));
        assert!(!r.visible_to(Some("bob")));
        let unowned = SandboxRecord {
            created_by_user_id: None,
            ..record()
        };
        assert!(!unowned.visible_to(Some("alice")));
    }

    #[test]
    fn update_moves_the_key_hash_index() {
        let old = record();
        let new = SandboxRecord {
            session_api_key_hash: Some("h2".into()),
            ..record()
        };
        let ops = new.update_ops(&old);
        assert!(ops.contains(&Op::Delete {
            table: BY_KEY_HASH,
            key: b"h1".to_vec()
        }));
        assert!(ops.contains(&Op::Put {
            table: BY_KEY_HASH,
            key: b"h2".to_vec(),
            value: b"abc".to_vec()
        }));
        assert!(matches!(ops[0], Op::RequireValue { .. }));
    }
}
