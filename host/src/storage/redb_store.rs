//! The embedded storage backend: one redb file under the data directory.
//!
//! Reads run on the caller's thread in their own read transaction (redb's MVCC
//! makes them cheap and never blocked by a writer). Commits go to one writer
//! thread that applies every commit waiting at that moment in a single write
//! transaction, one fsync for all of them ("group commit"): under concurrent
//! load, durability costs one disk flush per batch rather than per request.
//!
//! Invariants:
//! - Each commit's preconditions are checked against the state left by the
//!   commits before it in the batch, and a commit whose check fails writes
//!   nothing. A commit is answered only after the transaction holding it is
//!   durable.
//! - Tables are named by their namespace (`plugin.` or `host.`, see
//!   [`Namespace`]); requests arrive checked against the contract's limits.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use redb::{
    Database, ReadableDatabase, ReadableTable, TableDefinition, TableError, WriteTransaction,
};
use tokio::sync::oneshot;

use super::{MAX_READ, Namespace, std_bound};
use crate::bindings::storage::{Entry, Op, ScanRequest, StorageError};

/// Most commits folded into one write transaction.
const MAX_BATCH: usize = 512;

/// A table in a read transaction.
type ReadTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// A key or value read from a table.
type Guard<'a> = redb::AccessGuard<'a, &'static [u8]>;

type Job = (
    Namespace,
    Vec<Op>,
    oneshot::Sender<Result<(), StorageError>>,
);

#[derive(Clone)]
pub struct RedbStore {
    db: Arc<Database>,
    writer: std_mpsc::Sender<Job>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("another process is using {0} (is a second sandboxd running with the same data_dir?)")]
    InUse(String),
    #[error("cannot open the database {path}: {source}")]
    Other {
        path: String,
        source: redb::DatabaseError,
    },
    #[error("cannot start the storage writer thread: {0}")]
    Thread(std::io::Error),
}

fn backend(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(e.to_string())
}

impl RedbStore {
    /// Open (or create) the store at `path`, keeping at most `cache_bytes` of
    /// its pages in memory.
    pub fn open(path: &Path, cache_bytes: usize) -> Result<RedbStore, OpenError> {
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    OpenError::InUse(path.display().to_string())
                }
                source => OpenError::Other {
                    path: path.display().to_string(),
                    source,
                },
            })?;
        let db = Arc::new(db);
        let (tx, rx) = std_mpsc::channel::<Job>();
        let writer_db = db.clone();
        std::thread::Builder::new()
            .name("sandboxd-storage-writer".into())
            .spawn(move || writer_loop(&writer_db, &rx))
            .map_err(OpenError::Thread)?;
        Ok(RedbStore { db, writer: tx })
    }

    /// The table `name` of `ns` in a read transaction (none if never written).
    fn read_table(
        &self,
        txn: &redb::ReadTransaction,
        ns: Namespace,
        name: &str,
    ) -> Result<Option<ReadTable>, StorageError> {
        let name = ns.table(name);
        match txn.open_table(TableDefinition::<&[u8], &[u8]>::new(&name)) {
            Ok(t) => Ok(Some(t)),
            Err(TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    pub fn get(
        &self,
        ns: Namespace,
        table: &str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let Some(table) = self.read_table(&txn, ns, table)? else {
            return Ok(None);
        };
        Ok(table.get(key).map_err(backend)?.map(|v| v.value().to_vec()))
    }

    pub fn get_many(
        &self,
        ns: Namespace,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        let txn = self.db.begin_read().map_err(backend)?;
        let Some(table) = self.read_table(&txn, ns, table)? else {
            return Ok(vec![None; keys.len()]);
        };
        keys.iter()
            .map(|k| {
                Ok(table
                    .get(k.as_slice())
                    .map_err(backend)?
                    .map(|v| v.value().to_vec()))
            })
            .collect()
    }

    /// A range the contract allows and that can hold keys (`Store` checked).
    pub fn scan(&self, ns: Namespace, request: &ScanRequest) -> Result<Vec<Entry>, StorageError> {
        let limit = (request.limit as usize).min(MAX_READ);
        let txn = self.db.begin_read().map_err(backend)?;
        let Some(table) = self.read_table(&txn, ns, &request.table)? else {
            return Ok(Vec::new());
        };
        let range = table
            .range::<&[u8]>((std_bound(&request.start), std_bound(&request.end)))
            .map_err(backend)?;
        let to_entry = |item: Result<(Guard<'_>, Guard<'_>), redb::StorageError>| {
            item.map(|(k, v)| Entry {
                key: k.value().to_vec(),
                value: v.value().to_vec(),
            })
            .map_err(backend)
        };
        if request.reverse {
            range.rev().take(limit).map(to_entry).collect()
        } else {
            range.take(limit).map(to_entry).collect()
        }
    }

    /// Hand `ops` to the writer and wait until they are durable (or refused).
    pub async fn commit(&self, ns: Namespace, ops: Vec<Op>) -> Result<(), StorageError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send((ns, ops, tx))
            .map_err(|_| StorageError::Backend("the storage writer has stopped".into()))?;
        rx.await.unwrap_or_else(|_| {
            Err(StorageError::Backend(
                "the storage writer has stopped".into(),
            ))
        })
    }

    /// Whether the store can be read (the readiness probe).
    pub fn check(&self) -> Result<(), StorageError> {
        self.db.begin_read().map(drop).map_err(backend)
    }
}

/// Take every commit waiting, apply them in one transaction, answer each.
fn writer_loop(db: &Database, rx: &std_mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let results = apply_batch(db, &jobs);
        for ((_, _, reply), result) in jobs.into_iter().zip(results) {
            // The caller may have given up (its call timed out); nothing to do.
            let _ = reply.send(result);
        }
    }
}

fn apply_batch(db: &Database, jobs: &[Job]) -> Vec<Result<(), StorageError>> {
    let txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => return jobs.iter().map(|_| Err(backend(&e))).collect(),
    };
    let mut results = Vec::with_capacity(jobs.len());
    let applied = (|| -> Result<(), StorageError> {
        let mut tables = Tables::new(&txn);
        for (ns, ops, _) in jobs {
            tables.namespace = *ns;
            results.push(apply_one(&mut tables, ops)?);
        }
        Ok(())
    })();
    if let Err(e) = applied.and_then(|()| txn.commit().map_err(backend)) {
        // Nothing of this batch is durable; every commit in it failed.
        return jobs.iter().map(|_| Err(e.clone())).collect();
    }
    results
}

/// The write transaction's tables, opened once per batch.
struct Tables<'txn> {
    txn: &'txn WriteTransaction,
    /// The namespace of the commit being applied.
    namespace: Namespace,
    open: HashMap<String, redb::Table<'txn, &'static [u8], &'static [u8]>>,
}

impl<'txn> Tables<'txn> {
    fn new(txn: &'txn WriteTransaction) -> Self {
        Tables {
            txn,
            namespace: Namespace::Plugin,
            open: HashMap::new(),
        }
    }

    fn get(
        &mut self,
        table: &str,
    ) -> Result<&mut redb::Table<'txn, &'static [u8], &'static [u8]>, StorageError> {
        let name = self.namespace.table(table);
        if !self.open.contains_key(&name) {
            let t = self
                .txn
                .open_table(TableDefinition::<&[u8], &[u8]>::new(&name))
                .map_err(backend)?;
            self.open.insert(name.clone(), t);
        }
        self.open
            .get_mut(&name)
            .ok_or_else(|| StorageError::Backend("table vanished".into()))
    }
}

/// Check one commit's preconditions, then apply its writes. `Ok(Err(conflict))`:
/// a precondition failed and nothing was written; `Err`: the backend failed.
fn apply_one(
    tables: &mut Tables<'_>,
    ops: &[Op],
) -> Result<Result<(), StorageError>, StorageError> {
    for (i, op) in ops.iter().enumerate() {
        let holds = match op {
            Op::RequireAbsent(k) => tables
                .get(&k.table)?
                .get(k.key.as_slice())
                .map_err(backend)?
                .is_none(),
            Op::RequirePresent(k) => tables
                .get(&k.table)?
                .get(k.key.as_slice())
                .map_err(backend)?
                .is_some(),
            Op::RequireValue(v) => tables
                .get(&v.table)?
                .get(v.key.as_slice())
                .map_err(backend)?
                .is_some_and(|current| current.value() == v.value.as_slice()),
            Op::Put(_) | Op::Delete(_) => true,
        };
        if !holds {
            return Ok(Err(StorageError::Conflict(
                u32::try_from(i).unwrap_or(u32::MAX),
            )));
        }
    }
    for op in ops {
        match op {
            Op::Put(p) => {
                tables
                    .get(&p.table)?
                    .insert(p.key.as_slice(), p.value.as_slice())
                    .map_err(backend)?;
            }
            Op::Delete(k) => {
                tables
                    .get(&k.table)?
                    .remove(k.key.as_slice())
                    .map_err(backend)?;
            }
            Op::RequireAbsent(_) | Op::RequirePresent(_) | Op::RequireValue(_) => {}
        }
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests;
