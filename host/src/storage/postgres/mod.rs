//! The shared storage backend: PostgreSQL, for any number of replicas.
//!
//! Every promise of the storage interface holds across processes:
//! - Scans are ordered by bytes (`bytea` compares that way) forward and
//!   reverse, bounded and limited in SQL, so a deep page costs what the first
//!   does (the primary key `(tbl, key)` is the index).
//! - A commit is one statement (`sandboxd_commit`, see [`schema`]) on a
//!   connection whose transactions are SERIALIZABLE: the preconditions are
//!   checked against the state the writes land on, whatever other replicas
//!   commit at the same moment, and nothing is written if one fails. A
//!   serialization failure (another replica's commit interleaved) is retried,
//!   with backoff, a bounded number of times; it is never a caller's conflict.
//! - Reads run on their own pool at READ COMMITTED: each sees only committed
//!   commits, and a commit acknowledged on one replica is seen by a read on any
//!   replica that starts after it.
//!
//! The connection string can hold a password: it is kept as a [`Secret`] and
//! never logged; errors name the operation and PostgreSQL's message, which
//! never carries it.

pub mod schema;

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Config as PgConfig, NoTls};

use super::Namespace;
use crate::bindings::storage::{Bound, Entry, Op, ScanRequest, StorageError};
use crate::config::Secret;

/// Attempts of a commit that keeps meeting serialization failures.
const COMMIT_ATTEMPTS: u32 = 20;
/// The first wait after a serialization failure; it doubles, with jitter.
const RETRY_BASE: Duration = Duration::from_millis(2);

#[derive(Clone)]
pub struct PgStore {
    /// READ COMMITTED: gets and scans, and the cluster's bookkeeping.
    reads: Pool,
    /// SERIALIZABLE: commits.
    writes: Pool,
    /// For connections of their own (LISTEN).
    config: PgConfig,
}

fn backend(what: &str, e: &tokio_postgres::Error) -> StorageError {
    StorageError::Backend(format!("PostgreSQL {what}: {}", describe(e)))
}

/// PostgreSQL's own message when there is one (`db error: …` says little).
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> StorageError {
    StorageError::Backend(format!("no PostgreSQL connection: {e}"))
}

impl PgStore {
    /// Connect to `url` with at most `connections` connections per pool, and
    /// migrate the schema.
    pub async fn connect(url: &Secret, connections: usize) -> anyhow::Result<PgStore> {
        let config = PgConfig::from_str(url.expose()).map_err(|e| {
            anyhow::anyhow!("database_url is not a PostgreSQL connection string: {e}")
        })?;
        let pool = |config: PgConfig| {
            let manager = Manager::from_config(
                config,
                NoTls,
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(connections.max(1))
                .build()
                .map_err(|e| anyhow::anyhow!("cannot set up the PostgreSQL pool: {e}"))
        };
        let mut serializable = config.clone();
        serializable.options("-c default_transaction_isolation=serializable");
        let store = PgStore {
            reads: pool(config.clone())?,
            writes: pool(serializable)?,
            config,
        };
        let mut client = store
            .reads
            .get()
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}"))?;
        schema::migrate(&mut client).await?;
        Ok(store)
    }

    /// The READ COMMITTED pool, for the host's own bookkeeping (replicas,
    /// leases) beside the storage tables.
    pub fn pool(&self) -> &Pool {
        &self.reads
    }

    /// The connection settings, for a connection of one's own (LISTEN).
    pub fn config(&self) -> &PgConfig {
        &self.config
    }

    pub async fn get(
        &self,
        ns: Namespace,
        table: &str,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, StorageError> {
        let client = self.reads.get().await.map_err(pool_error)?;
        let stmt = client
            .prepare_cached("SELECT value FROM sandboxd_kv WHERE tbl = $1 AND key = $2")
            .await
            .map_err(|e| backend("get", &e))?;
        let row = client
            .query_opt(&stmt, &[&ns.table(table), &key])
            .await
            .map_err(|e| backend("get", &e))?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn get_many(
        &self,
        ns: Namespace,
        table: &str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let client = self.reads.get().await.map_err(pool_error)?;
        let stmt = client
            .prepare_cached("SELECT key, value FROM sandboxd_kv WHERE tbl = $1 AND key = ANY($2)")
            .await
            .map_err(|e| backend("get-many", &e))?;
        let rows = client
            .query(&stmt, &[&ns.table(table), &keys])
            .await
            .map_err(|e| backend("get-many", &e))?;
        let found: std::collections::HashMap<Vec<u8>, Vec<u8>> = rows
            .into_iter()
            .map(|r| (r.get::<_, Vec<u8>>(0), r.get::<_, Vec<u8>>(1)))
            .collect();
        // In the order asked; a key asked twice gets its value twice.
        Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
    }

    /// A range the contract allows and that can hold keys (`Store` checked).
    pub async fn scan(
        &self,
        ns: Namespace,
        request: &ScanRequest,
    ) -> Result<Vec<Entry>, StorageError> {
        let table = ns.table(&request.table);
        let limit =
            i64::from(request.limit).min(i64::try_from(super::MAX_READ).unwrap_or(i64::MAX));
        let mut sql = String::from("SELECT key, value FROM sandboxd_kv WHERE tbl = $1");
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&table];
        for (bound, inclusive, exclusive) in
            [(&request.start, ">=", ">"), (&request.end, "<=", "<")]
        {
            let (op, key) = match bound {
                Bound::Unbounded => continue,
                Bound::Included(k) => (inclusive, k),
                Bound::Excluded(k) => (exclusive, k),
            };
            params.push(key);
            sql.push_str(&format!(" AND key {op} ${}", params.len()));
        }
        params.push(&limit);
        sql.push_str(&format!(
            " ORDER BY key {} LIMIT ${}",
            if request.reverse { "DESC" } else { "ASC" },
            params.len()
        ));
        let client = self.reads.get().await.map_err(pool_error)?;
        let stmt = client
            .prepare_cached(&sql)
            .await
            .map_err(|e| backend("scan", &e))?;
        let rows = client
            .query(&stmt, &params)
            .await
            .map_err(|e| backend("scan", &e))?;
        Ok(rows
            .into_iter()
            .map(|r| Entry {
                key: r.get(0),
                value: r.get(1),
            })
            .collect())
    }

    /// Apply `ops` atomically, their preconditions checked against the state
    /// the writes land on; retried over serialization failures.
    pub async fn commit(&self, ns: Namespace, ops: Vec<Op>) -> Result<(), StorageError> {
        let (kinds, tables, keys, values) = columns(ns, &ops);
        let mut wait = RETRY_BASE;
        for attempt in 1..=COMMIT_ATTEMPTS {
            let client = self.writes.get().await.map_err(pool_error)?;
            let stmt = client
                .prepare_cached("SELECT sandboxd_commit($1, $2, $3, $4)")
                .await
                .map_err(|e| backend("commit", &e))?;
            match client
                .query_one(&stmt, &[&kinds, &tables, &keys, &values])
                .await
            {
                Ok(row) => {
                    let failed: i32 = row.get(0);
                    return match u32::try_from(failed) {
                        Ok(index) => Err(StorageError::Conflict(index)),
                        Err(_) => Ok(()),
                    };
                }
                Err(e) if retryable(&e) && attempt < COMMIT_ATTEMPTS => {
                    drop(client);
                    tokio::time::sleep(jitter(wait)).await;
                    wait = (wait * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(backend("commit", &e)),
            }
        }
        Err(StorageError::Backend(
            "PostgreSQL commit: gave up after repeated serialization failures".into(),
        ))
    }

    /// Whether a connection can be had and answers.
    pub async fn check(&self) -> Result<(), StorageError> {
        let client = self.reads.get().await.map_err(pool_error)?;
        client
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|e| backend("check", &e))
    }
}

/// The four arrays `sandboxd_commit` takes: kinds, tables, keys, values.
type Columns<'a> = (Vec<i16>, Vec<String>, Vec<&'a [u8]>, Vec<&'a [u8]>);

/// The commit's ops as the four arrays `sandboxd_commit` takes.
fn columns(ns: Namespace, ops: &[Op]) -> Columns<'_> {
    let mut kinds = Vec::with_capacity(ops.len());
    let mut tables = Vec::with_capacity(ops.len());
    let mut keys = Vec::with_capacity(ops.len());
    let mut values = Vec::with_capacity(ops.len());
    for op in ops {
        let (kind, table, key, value): (i16, &str, &[u8], &[u8]) = match op {
            Op::Put(p) => (0, &p.table, &p.key, &p.value),
            Op::Delete(k) => (1, &k.table, &k.key, &[]),
            Op::RequireAbsent(k) => (2, &k.table, &k.key, &[]),
            Op::RequirePresent(k) => (3, &k.table, &k.key, &[]),
            Op::RequireValue(v) => (4, &v.table, &v.key, &v.value),
        };
        kinds.push(kind);
        tables.push(ns.table(table));
        keys.push(key);
        values.push(value);
    }
    (kinds, tables, keys, values)
}

/// Serialization failures and deadlocks: another transaction won a race; the
/// same commit may well succeed now.
fn retryable(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
    )
}

/// `d` give or take half, so that replicas retrying together drift apart.
fn jitter(d: Duration) -> Duration {
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    d.mul_f64(0.5 + f64::from(byte[0]) / 255.0)
}
