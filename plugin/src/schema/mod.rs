//! The plugin's storage schema: every table, key layout and record, in one place.
//!
//! Each submodule owns the tables of one kind of record and the commit ops that
//! keep those tables consistent with each other; nothing else builds keys.
//!
//! - [`sandboxes`]: sandboxes, their owner and creation indexes, session-key
//!   hashes, the warm pools.
//! - [`conversations`]: conversations, their owner, creation and sandbox indexes.
//! - [`events`]: events in timestamp order per conversation, and the event-id
//!   index that makes every event stored once.
//! - [`callbacks`]: event callbacks, their queued deliveries and delivery log.
//! - [`history`]: every sandbox's status changes with their causes.

pub mod callbacks;
pub mod conversations;
pub mod events;
pub mod history;
mod sandboxes;

pub use sandboxes::{
    ACTIVE_BY_OWNER, BY_CREATED, BY_KEY_HASH, BY_OWNER, Phase, RetiredKey, SANDBOXES,
    SandboxRecord, WARM, Warm, warm_prefix,
};

use serde::Serialize;

use crate::error::{Error, Result};

/// The key prefix of one owner's entries in an owner index. Length-prefixed, so
/// no owner's prefix is a prefix of another's; things created without a user have
/// their own tag.
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
    let mut key = Vec::with_capacity(8 + id.len());
    key.extend_from_slice(&time_key(created_at_us).map(|b| !b));
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

/// The big-endian, order-preserving encoding of a signed time: smaller times sort
/// first.
pub fn time_key(micros: i64) -> [u8; 8] {
    ((micros as u64) ^ (1 << 63)).to_be_bytes()
}

/// The time encoded by [`time_key`].
pub fn time_of_key(key: &[u8]) -> Option<i64> {
    let bytes: [u8; 8] = key.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// JSON encoding of a record; serialising plain data cannot fail.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).unwrap_or_default()
}

/// JSON decoding of a stored record, as a storage error when unreadable.
pub fn decode<T: serde::de::DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Storage(format!("a stored {what} record is unreadable: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn time_keys_sort_by_time_and_round_trip() {
        let mut keys = [
            time_key(5),
            time_key(-7),
            time_key(0),
            time_key(i64::MAX),
            time_key(i64::MIN),
        ];
        keys.sort();
        let times: Vec<i64> = keys.iter().filter_map(|k| time_of_key(k)).collect();
        assert_eq!(times, vec![i64::MIN, -7, 0, 5, i64::MAX]);
    }
}
