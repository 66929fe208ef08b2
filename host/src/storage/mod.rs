//! The host's storage: ordered key-value tables with atomic, durable multi-op
//! commits, as the WIT `storage` interface describes them, on one of two
//! backends behind one front, [`Store`]:
//!
//! - [`redb_store`]: redb, one file under the data directory (the embedded
//!   default: one process, no server);
//! - [`postgres`]: PostgreSQL, shared by any number of replicas.
//!
//! Invariants:
//! - Every request is checked against the contract's limits
//!   (`sandboxd_contract::storage`, the one place they are written) here, one
//!   function per operation, before any backend sees it, so every backend
//!   refuses the same things the same way.
//! - Tables live in a [`Namespace`]: the plugin's (`plugin.`, the only one the
//!   WIT import reaches) or the host's own (`host.`: the local runtime's records,
//!   the egress policy's callback origins).
//! - A commit is answered only once it is durable, and every commit is timed
//!   (`sandboxd_storage_commit_duration_seconds`).

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod postgres;
pub mod redb_store;

pub use postgres::PgStore;
pub use redb_store::RedbStore;

use std::ops::Bound as StdBound;

use sandboxd_contract::storage as limits;

use crate::bindings::storage::{Bound, Entry, Op, ScanRequest, StorageError};

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

/// Whose tables: the plugin's (reachable through the WIT import) or the host's
/// own (never reachable from the plugin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    Plugin,
    Host,
}

impl Namespace {
    /// The backend's name of table `name` of this namespace.
    pub fn table(self, name: &str) -> String {
        match self {
            Namespace::Plugin => format!("plugin.{name}"),
            Namespace::Host => format!("host.{name}"),
        }
    }
}

/// The store, whichever backend holds it.
#[derive(Clone)]
pub enum Store {
    Redb(RedbStore),
    /// Boxed: its pools and settings dwarf redb's two handles.
    Postgres(Box<PgStore>),
}

impl Store {
    /// Whether other processes share this store (replicas).
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    pub async fn get(
        &self,
        ns: Namespace,
        table: &str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StorageError> {
        check_get(table, key)?;
        match self {
            Store::Redb(s) => s.get(ns, table, key),
            Store::Postgres(s) => s.get(ns, table, key).await,
        }
    }

    pub async fn get_many(
        &self,
        ns: Namespace,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        check_get_many(table, keys)?;
        match self {
            Store::Redb(s) => s.get_many(ns, table, keys),
            Store::Postgres(s) => s.get_many(ns, table, keys).await,
        }
    }

    pub async fn scan(
        &self,
        ns: Namespace,
        request: &ScanRequest,
    ) -> Result<Vec<Entry>, StorageError> {
        if !check_scan(request)? {
            return Ok(Vec::new());
        }
        match self {
            Store::Redb(s) => s.scan(ns, request),
            Store::Postgres(s) => s.scan(ns, request).await,
        }
    }

    /// Apply `ops` atomically and durably, or none of them.
    pub async fn commit(&self, ns: Namespace, ops: Vec<Op>) -> Result<(), StorageError> {
        check_commit(&ops)?;
        let started = std::time::Instant::now();
        let result = match self {
            Store::Redb(s) => s.commit(ns, ops).await,
            Store::Postgres(s) => s.commit(ns, ops).await,
        };
        crate::metrics::storage_commit(started.elapsed());
        result
    }

    /// Every entry of one of the host's own tables, in key order.
    pub async fn host_scan_all(&self, table: &str) -> Result<Vec<Entry>, StorageError> {
        let mut all = Vec::new();
        let mut start = Bound::Unbounded;
        loop {
            let page = self
                .scan(
                    Namespace::Host,
                    &ScanRequest {
                        table: table.to_owned(),
                        start,
                        end: Bound::Unbounded,
                        reverse: false,
                        limit: u32::try_from(MAX_READ).unwrap_or(u32::MAX),
                    },
                )
                .await?;
            let full = page.len() == MAX_READ;
            start = match page.last() {
                Some(last) if full => Bound::Excluded(last.key.clone()),
                _ => {
                    all.extend(page);
                    return Ok(all);
                }
            };
            all.extend(page);
        }
    }

    /// Whether the store can be read (the readiness probe).
    pub async fn check(&self) -> Result<(), StorageError> {
        match self {
            Store::Redb(s) => s.check(),
            Store::Postgres(s) => s.check().await,
        }
    }
}
