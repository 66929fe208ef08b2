//! The host's storage: ordered key-value tables with atomic, durable multi-op
//! commits, as the WIT `storage` interface describes them.
//!
//! The interface is deliberately narrow (get, get-many, scan, commit) so that a
//! second backend (a shared database for several replicas) is one more file
//! beside [`redb_store`], not a rewrite. Limits (`sandboxd_contract::storage`,
//! the one place they are written) are checked here, one function per
//! operation, before any backend sees a request, so every backend refuses the
//! same things the same way.

pub mod redb_store;

pub use redb_store::RedbStore;

use std::ops::Bound as StdBound;

use sandboxd_contract::storage as limits;

use crate::bindings::storage::{Bound, Op, ScanRequest, StorageError};

pub use limits::MAX_READ;

fn invalid(refusal: limits::Refusal) -> StorageError {
    StorageError::Invalid(refusal)
}

/// A WIT bound as a standard one.
pub fn std_bound(b: &Bound) -> StdBound<&[u8]> {
    match b {
        Bound::Unbounded => StdBound::Unbounded,
        Bound::Included(k) => StdBound::Included(k.as_slice()),
        Bound::Excluded(k) => StdBound::Excluded(k.as_slice()),
    }
}

/// A `get` the contract allows.
pub fn check_get(table: &str, key: &[u8]) -> Result<(), StorageError> {
    limits::check_table(table).map_err(invalid)?;
    limits::check_key(key).map_err(invalid)
}

/// A `get-many` the contract allows.
pub fn check_get_many(table: &str, keys: &[Vec<u8>]) -> Result<(), StorageError> {
    limits::check_table(table).map_err(invalid)?;
    limits::check_read_count(keys.len()).map_err(invalid)?;
    keys.iter()
        .try_for_each(|k| limits::check_key(k))
        .map_err(invalid)
}

/// A `scan` the contract allows; `Ok(false)` for one that can return nothing
/// (an inverted range, a zero limit), which backends answer with no rows.
pub fn check_scan(request: &ScanRequest) -> Result<bool, StorageError> {
    limits::check_table(&request.table).map_err(invalid)?;
    limits::check_bound(std_bound(&request.start)).map_err(invalid)?;
    limits::check_bound(std_bound(&request.end)).map_err(invalid)?;
    Ok(request.limit > 0 && limits::is_ordered(std_bound(&request.start), std_bound(&request.end)))
}

/// A `commit` the contract allows.
pub fn check_commit(ops: &[Op]) -> Result<(), StorageError> {
    limits::check_op_count(ops.len()).map_err(invalid)?;
    for op in ops {
        let (table, key, value) = match op {
            Op::Put(p) => (&p.table, &p.key, Some(&p.value)),
            Op::RequireValue(v) => (&v.table, &v.key, Some(&v.value)),
            Op::Delete(k) | Op::RequireAbsent(k) | Op::RequirePresent(k) => {
                (&k.table, &k.key, None)
            }
        };
        limits::check_table(table).map_err(invalid)?;
        limits::check_key(key).map_err(invalid)?;
        if let Some(value) = value {
            limits::check_value(value).map_err(invalid)?;
        }
    }
    Ok(())
}
