//! sandboxd's schema in PostgreSQL, created and migrated by sandboxd itself.
//!
//! Migrations are numbered and applied in order, each in its own transaction,
//! under a session advisory lock: replicas that start at once migrate one at a
//! time, and each finds the others' work done. The version reached is recorded
//! in `sandboxd_schema`; a database migrated by a newer sandboxd (a version
//! this one does not know) is refused rather than used.
//!
//! The tables:
//! - `sandboxd_kv`: the storage interface's tables, one row per key
//!   (`tbl` is the namespaced table name, `key` and `value` bytes; bytea sorts
//!   by bytes, which is the order scans promise).
//! - `sandboxd_replicas`: who is alive (heartbeats), with what plugin.
//! - `sandboxd_leases`: the buckets of background work, each held by at most
//!   one live replica, and when each was last polled.
//! - `sandboxd_commit(…)`: one commit, preconditions first, in one statement.

use tokio_postgres::Client;

/// The lock that serialises migrations across replicas (any fixed number
/// unlikely to be someone else's).
const MIGRATION_LOCK: i64 = 0x5a4e_4442_0001;

/// How many buckets the background work is split into: enough that three or
/// five replicas get near-equal shares, few enough that a lease pass is cheap.
pub const BUCKETS: u16 = 64;

/// Every migration, in order; the version of a database is how many it has.
const MIGRATIONS: &[&str] = &[
    // 1: the key-value tables, replicas, leases and the commit function.
    r#"
CREATE TABLE sandboxd_kv (
    tbl   text  NOT NULL,
    key   bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (tbl, key)
);

CREATE TABLE sandboxd_replicas (
    id               text        PRIMARY KEY,
    plugin_version   text        NOT NULL,
    contract_version text        NOT NULL,
    started_at       timestamptz NOT NULL,
    heartbeat_at     timestamptz NOT NULL,
    buckets          int2[]      NOT NULL DEFAULT '{}'
);

CREATE TABLE sandboxd_leases (
    bucket     int2        PRIMARY KEY,
    holder     text,
    expires_at timestamptz,
    polled_at  timestamptz
);
INSERT INTO sandboxd_leases (bucket) SELECT generate_series(0, 63);

-- One commit: every precondition is checked before anything is written; the
-- first that fails is returned (its index in the op list) and nothing is
-- written. Kinds: 0 put, 1 delete, 2 require absent, 3 require present,
-- 4 require value. Run at SERIALIZABLE, so that the preconditions hold at the
-- moment the writes take effect, whatever other replicas do.
CREATE FUNCTION sandboxd_commit(kinds int2[], tbls text[], keys bytea[], vals bytea[])
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    n int := coalesce(array_length(kinds, 1), 0);
    cur bytea;
BEGIN
    FOR i IN 1 .. n LOOP
        IF kinds[i] >= 2 THEN
            SELECT value INTO cur FROM sandboxd_kv WHERE tbl = tbls[i] AND key = keys[i];
            IF (kinds[i] = 2 AND FOUND)
                OR (kinds[i] = 3 AND NOT FOUND)
                OR (kinds[i] = 4 AND (NOT FOUND OR cur <> vals[i])) THEN
                RETURN i - 1;
            END IF;
        END IF;
    END LOOP;
    FOR i IN 1 .. n LOOP
        IF kinds[i] = 0 THEN
            INSERT INTO sandboxd_kv (tbl, key, value) VALUES (tbls[i], keys[i], vals[i])
            ON CONFLICT (tbl, key) DO UPDATE SET value = EXCLUDED.value;
        ELSIF kinds[i] = 1 THEN
            DELETE FROM sandboxd_kv WHERE tbl = tbls[i] AND key = keys[i];
        END IF;
    END LOOP;
    RETURN -1;
END
$$;
"#,
];

/// Bring the database to the newest schema this sandboxd knows.
pub async fn migrate(client: &mut Client) -> anyhow::Result<()> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let result = apply(client).await;
    // The lock is the session's: released here, or with the connection.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await;
    result
}

async fn apply(client: &mut Client) -> anyhow::Result<()> {
    client
        .batch_execute("CREATE TABLE IF NOT EXISTS sandboxd_schema (version int NOT NULL)")
        .await?;
    let version: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM sandboxd_schema", &[])
        .await?
        .get(0);
    let known = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    if version > known {
        anyhow::bail!(
            "the database has sandboxd schema version {version}, newer than this sandboxd \
             knows ({known}): it was migrated by a newer release"
        );
    }
    for (n, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let next = i32::try_from(n + 1).unwrap_or(i32::MAX);
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO sandboxd_schema (version) VALUES ($1)",
            &[&next],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version = next, "migrated the PostgreSQL schema");
    }
    Ok(())
}
