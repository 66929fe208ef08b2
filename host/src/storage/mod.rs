//! The host's storage: ordered key-value tables with atomic, durable multi-op
//! commits, as the WIT `storage` interface describes them.
//!
//! The interface is deliberately narrow (get, get-many, scan, commit) so that a
//! second backend (a shared database for several replicas) is one more file
//! beside [`redb_store`], not a rewrite. Limits are checked here, before any
//! backend sees a request, so every backend refuses the same things the same way.

pub mod redb_store;

pub use redb_store::RedbStore;

use crate::bindings::storage::{Bound, Op, StorageError};

/// Longest table name.
pub const MAX_TABLE_NAME: usize = 64;
/// Largest key (a page cursor carries one, so keep them short).
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Most ops in one commit.
pub const MAX_OPS: usize = 100_000;
/// Most keys in one get-many and rows in one scan.
pub const MAX_READ: usize = 100_000;

pub fn check_table(name: &str) -> Result<(), StorageError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TABLE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "table name '{}' must be 1 to {MAX_TABLE_NAME} characters of a-z, 0-9, '_' and '-'",
            name.chars().take(80).collect::<String>()
        )))
    }
}

pub fn check_key(key: &[u8]) -> Result<(), StorageError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(StorageError::Invalid(format!(
            "key of {} bytes exceeds {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

pub fn check_bound(bound: &Bound) -> Result<(), StorageError> {
    match bound {
        Bound::Unbounded => Ok(()),
        Bound::Included(k) | Bound::Excluded(k) => check_key(k),
    }
}

pub fn check_ops(ops: &[Op]) -> Result<(), StorageError> {
    if ops.len() > MAX_OPS {
        return Err(StorageError::Invalid(format!(
            "{} ops exceed the limit of {MAX_OPS} per commit",
            ops.len()
        )));
    }
    for op in ops {
        let (table, key, value) = match op {
            Op::Put(p) => (&p.table, &p.key, Some(&p.value)),
            Op::RequireValue(v) => (&v.table, &v.key, Some(&v.value)),
            Op::Delete(k) | Op::RequireAbsent(k) | Op::RequirePresent(k) => {
                (&k.table, &k.key, None)
            }
        };
        check_table(table)?;
        check_key(key)?;
        if let Some(value) = value
            && value.len() > MAX_VALUE_BYTES
        {
            return Err(StorageError::Invalid(format!(
                "value of {} bytes exceeds {MAX_VALUE_BYTES}",
                value.len()
            )));
        }
    }
    Ok(())
}

/// Whether a range can hold any key (start before end). Backends answer an
/// empty result for the others instead of failing.
pub fn is_ordered(start: &Bound, end: &Bound) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s <= e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => s < e,
        _ => true,
    }
}
