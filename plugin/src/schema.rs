//! The plugin's storage schema: every table, key layout and record, in one place.
//!
//! Tables:
//! - `sandboxes`: sandbox id → [`SandboxRecord`] (JSON).
//! - `sandboxes_by_owner`: [`owner_prefix`] ‖ [`order_key`] → empty. One user's
//!   sandboxes, newest first, for user-scoped paging.
//! - `sandboxes_by_created`: [`order_key`] → empty. Everyone's, newest first, for
//!   callers that see all.
//! - `sandboxes_by_key_hash`: session-key hash (hex) → sandbox id, for webhook
//!   authentication.
//!
//! Invariant: the index entries of a record are written and removed in the same
//! commit as the record itself ([`SandboxRecord::insert_ops`],
//! [`SandboxRecord::update_ops`], [`SandboxRecord::delete_ops`]), so an index never
//! names a missing record and a record is never missing from its indexes. Updates
//! carry the record's previous bytes as a precondition: two calls racing on one
//! sandbox cannot silently overwrite each other.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ports::Op;

pub const SANDBOXES: &str = "sandboxes";
pub const BY_OWNER: &str = "sandboxes_by_owner";
pub const BY_CREATED: &str = "sandboxes_by_created";
pub const BY_KEY_HASH: &str = "sandboxes_by_key_hash";

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
}

impl SandboxRecord {
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::Storage(format!("a stored sandbox record is unreadable: {e}")))
    }

    /// Whether `caller` may see this sandbox (none sees everything).
    pub fn visible_to(&self, caller: Option<&str>) -> bool {
        caller.is_none() || self.created_by_user_id.as_deref() == caller
    }

    fn order_key(&self) -> Vec<u8> {
        order_key(self.created_at_us, &self.id)
    }

    fn owner_key(&self) -> Vec<u8> {
        let mut key = owner_prefix(self.created_by_user_id.as_deref());
        key.extend_from_slice(&self.order_key());
        key
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
            Op::Put {
                table: BY_OWNER,
                key: self.owner_key(),
                value: Vec::new(),
            },
            Op::Put {
                table: BY_CREATED,
                key: self.order_key(),
                value: Vec::new(),
            },
        ];
        if let Some(hash) = &self.session_api_key_hash {
            ops.push(Op::Put {
                table: BY_KEY_HASH,
                key: hash.as_bytes().to_vec(),
                value: self.id.as_bytes().to_vec(),
            });
        }
        ops
    }

    /// Replace `old` (as stored) by `self`. Only the session-key hash and the
    /// timestamps of a start may change; id, owner and creation time are fixed.
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
        if old.session_api_key_hash != self.session_api_key_hash {
            if let Some(hash) = &old.session_api_key_hash {
                ops.push(Op::Delete {
                    table: BY_KEY_HASH,
                    key: hash.as_bytes().to_vec(),
                });
            }
            if let Some(hash) = &self.session_api_key_hash {
                ops.push(Op::Put {
                    table: BY_KEY_HASH,
                    key: hash.as_bytes().to_vec(),
                    value: self.id.as_bytes().to_vec(),
                });
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
            Op::Delete {
                table: BY_OWNER,
                key: self.owner_key(),
            },
            Op::Delete {
                table: BY_CREATED,
                key: self.order_key(),
            },
        ];
        if let Some(hash) = &self.session_api_key_hash {
            ops.push(Op::Delete {
                table: BY_KEY_HASH,
                key: hash.as_bytes().to_vec(),
            });
        }
        ops
    }
}

/// The key prefix of one owner's entries in `sandboxes_by_owner`. Length-prefixed,
/// so no owner's prefix is a prefix of another's; sandboxes created without a user
/// have their own tag.
pub fn owner_prefix(owner: Option<&str>) -> Vec<u8> {
    match owner {
        None => vec![0],
        Some(owner) => {
            let mut key = Vec::with_capacity(5 + owner.len());
            key.push(1);
            key.extend_from_slice(&(owner.len() as u32).to_be_bytes());
            key.extend_from_slice(owner.as_bytes());
            key
        }
    }
}

/// Sorts newest first: the creation time, order-preserving as unsigned and then
/// inverted, followed by the id (which makes keys unique and ties stable).
pub fn order_key(created_at_us: i64, id: &str) -> Vec<u8> {
    let ascending = (created_at_us as u64) ^ (1 << 63);
    let mut key = Vec::with_capacity(8 + id.len());
    key.extend_from_slice(&(!ascending).to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// The sandbox id at the end of an order key (after the 8 time bytes).
pub fn id_of_order_key(key: &[u8]) -> Option<&str> {
    std::str::from_utf8(key.get(8..)?).ok()
}

/// The smallest key greater than every key that starts with `prefix`; none when
/// no such key exists (an empty or all-0xFF prefix).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> SandboxRecord {
        SandboxRecord {
            id: "abc".into(),
            created_by_user_id: Some("alice".into()),
            sandbox_spec_id: "img".into(),
            session_api_key_hash: Some("h1".into()),
            created_at_us: 1_000,
            started_at_us: 1_000,
            phase: Phase::Started,
        }
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
    fn order_keys_sort_newest_first_including_negative_times() {
        let mut keys = [
            order_key(5, "a"),
            order_key(-3, "b"),
            order_key(1_000_000, "c"),
            order_key(5, "0"),
        ];
        keys.sort();
        let ids: Vec<_> = keys.iter().filter_map(|k| id_of_order_key(k)).collect();
        assert_eq!(ids, vec!["c", "0", "a", "b"]);
    }

    #[test]
    fn owner_prefixes_never_prefix_each_other() {
        let a = owner_prefix(Some("al"));
        let b = owner_prefix(Some("alice"));
        assert!(!b.starts_with(&a) && !a.starts_with(&b));
        assert!(!a.starts_with(&owner_prefix(None)));
    }

    #[test]
    fn prefix_end_bounds_the_prefix() {
        assert_eq!(prefix_end(&[1, 2]), Some(vec![1, 3]));
        assert_eq!(prefix_end(&[1, 255]), Some(vec![2]));
        assert_eq!(prefix_end(&[255, 255]), None);
        assert_eq!(prefix_end(&[]), None);
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
