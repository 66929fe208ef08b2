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
//! - Plugin tables live under the `plugin.` prefix, the host's own (such as the
//!   local runtime's records) under `host.`; the plugin cannot name the latter.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use redb::{
    Database, ReadableDatabase, ReadableTable, TableDefinition, TableError, WriteTransaction,
};
use tokio::sync::oneshot;

use super::{MAX_READ, check_commit, check_get, check_get_many, check_scan, std_bound};
use crate::bindings::storage::{Entry, Op, ScanRequest, StorageError};

/// Most commits folded into one write transaction.
const MAX_BATCH: usize = 512;

/// A key or value read from a table.
type Guard<'a> = redb::AccessGuard<'a, &'static [u8]>;

type Job = (
    Namespace,
    Vec<Op>,
    oneshot::Sender<Result<(), StorageError>>,
);

/// Whose tables: the plugin's (reachable through the WIT import) or the host's
/// own (never reachable from the plugin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    Plugin,
    Host,
}

impl Namespace {
    fn table(self, name: &str) -> String {
        match self {
            Namespace::Plugin => format!("plugin.{name}"),
            Namespace::Host => format!("host.{name}"),
        }
    }
}

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

fn plugin_table(name: &str) -> String {
    Namespace::Plugin.table(name)
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

    pub fn get(&self, table: &str, key: &[u8]) -> Result<Option<Vec<u8>>, StorageError> {
        check_get(table, key)?;
        let txn = self.db.begin_read().map_err(backend)?;
        let name = plugin_table(table);
        let table = match txn.open_table(TableDefinition::<&[u8], &[u8]>::new(&name)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(backend(e)),
        };
        Ok(table.get(key).map_err(backend)?.map(|v| v.value().to_vec()))
    }

    pub fn get_many(
        &self,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        check_get_many(table, keys)?;
        let txn = self.db.begin_read().map_err(backend)?;
        let name = plugin_table(table);
        let table = match txn.open_table(TableDefinition::<&[u8], &[u8]>::new(&name)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(vec![None; keys.len()]),
            Err(e) => return Err(backend(e)),
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

    pub fn scan(&self, request: &ScanRequest) -> Result<Vec<Entry>, StorageError> {
        if !check_scan(request)? {
            return Ok(Vec::new());
        }
        let limit = (request.limit as usize).min(MAX_READ);
        let txn = self.db.begin_read().map_err(backend)?;
        let name = plugin_table(&request.table);
        let table = match txn.open_table(TableDefinition::<&[u8], &[u8]>::new(&name)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(backend(e)),
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

    /// Apply `ops` atomically and durably (see the module docs for batching).
    pub async fn commit(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        self.commit_in(Namespace::Plugin, ops).await
    }

    /// Hand `ops` to the writer and wait until they are durable (or refused).
    async fn commit_in(&self, namespace: Namespace, ops: Vec<Op>) -> Result<(), StorageError> {
        check_commit(&ops)?;
        let started = std::time::Instant::now();
        let (tx, rx) = oneshot::channel();
        self.writer
            .send((namespace, ops, tx))
            .map_err(|_| StorageError::Backend("the storage writer has stopped".into()))?;
        let result = rx.await.unwrap_or_else(|_| {
            Err(StorageError::Backend(
                "the storage writer has stopped".into(),
            ))
        });
        crate::metrics::storage_commit(started.elapsed());
        result
    }

    /// Whether the store can be read (the readiness probe).
    pub fn check(&self) -> Result<(), StorageError> {
        self.db.begin_read().map(drop).map_err(backend)
    }
}

impl RedbStore {
    /// Every entry of one of the host's own tables.
    pub fn host_scan(&self, table: &str) -> Result<Vec<Entry>, StorageError> {
        sandboxd_contract::storage::check_table(table).map_err(StorageError::Invalid)?;
        let txn = self.db.begin_read().map_err(backend)?;
        let name = Namespace::Host.table(table);
        let table = match txn.open_table(TableDefinition::<&[u8], &[u8]>::new(&name)) {
            Ok(t) => t,
            Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(backend(e)),
        };
        table
            .iter()
            .map_err(backend)?
            .map(|item| {
                item.map(|(k, v)| Entry {
                    key: k.value().to_vec(),
                    value: v.value().to_vec(),
                })
                .map_err(backend)
            })
            .collect()
    }

    /// [`RedbStore::commit`] on the host's own tables.
    pub async fn host_commit(&self, ops: Vec<Op>) -> Result<(), StorageError> {
        self.commit_in(Namespace::Host, ops).await
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
