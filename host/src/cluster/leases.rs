//! The replicas and leases tables: each statement the cluster runs.
//!
//! All on the READ COMMITTED pool; each statement is atomic on its own, and
//! taking leases uses `FOR UPDATE SKIP LOCKED`, so two replicas taking at the
//! same moment never take the same bucket.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;

use crate::storage::PgStore;
use crate::storage::postgres::describe;
use crate::storage::postgres::schema::BUCKETS;

/// A replica as `/admin/replicas` lists it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReplicaInfo {
    pub id: String,
    pub plugin_version: String,
    pub contract_version: String,
    /// RFC 3339; null for a lone host.
    pub started_at: Option<String>,
    /// RFC 3339; null for a lone host (it has no heartbeat).
    pub last_heartbeat: Option<String>,
    /// The buckets of background work it holds (of 64; a lone host holds the
    /// one bucket there is).
    pub buckets: Vec<u16>,
    /// Whether it is the replica that answered.
    pub this: bool,
    /// Whether its plugin's contract version differs from the one most
    /// replicas run.
    pub contract_differs: bool,
}

fn db(what: &str) -> impl Fn(tokio_postgres::Error) -> anyhow::Error + '_ {
    move |e| anyhow::anyhow!("{what}: {}", describe(&e))
}

fn buckets_of(rows: &[tokio_postgres::Row]) -> Vec<u16> {
    let mut buckets: Vec<u16> = rows
        .iter()
        .filter_map(|r| u16::try_from(r.get::<_, i16>(0)).ok())
        .collect();
    buckets.sort_unstable();
    buckets
}

/// One heartbeat (see the module docs of `cluster`); the buckets held after it.
pub async fn beat(
    store: &PgStore,
    me: &str,
    plugin_version: &str,
    contract_version: &str,
    ttl: Duration,
    held_before: &[u16],
) -> anyhow::Result<Vec<u16>> {
    let client = store.pool().get().await?;
    let ttl_secs = ttl.as_secs_f64();
    let before: Vec<i16> = held_before
        .iter()
        .filter_map(|b| i16::try_from(*b).ok())
        .collect();
    client
        .execute(
            "INSERT INTO sandboxd_replicas (id, plugin_version, contract_version, started_at, heartbeat_at, buckets)
             VALUES ($1, $2, $3, now(), now(), $4)
             ON CONFLICT (id) DO UPDATE
             SET plugin_version = $2, contract_version = $3, heartbeat_at = now(), buckets = $4",
            &[&me, &plugin_version, &contract_version, &before],
        )
        .await
        .map_err(db("recording the heartbeat"))?;
    // Rows of replicas dead long ago go; their leases expired long before.
    client
        .execute(
            "DELETE FROM sandboxd_replicas WHERE heartbeat_at < now() - make_interval(secs => $1)",
            &[&(ttl_secs * 20.0)],
        )
        .await
        .map_err(db("forgetting dead replicas"))?;
    let live: i64 = client
        .query_one(
            "SELECT count(*) FROM sandboxd_replicas WHERE heartbeat_at > now() - make_interval(secs => $1)",
            &[&ttl_secs],
        )
        .await
        .map_err(db("counting the live replicas"))?
        .get(0);
    let fair = usize::from(BUCKETS).div_ceil(usize::try_from(live.max(1)).unwrap_or(1));

    let renewed = client
        .query(
            "UPDATE sandboxd_leases SET expires_at = now() + make_interval(secs => $2)
             WHERE holder = $1 AND expires_at > now() RETURNING bucket",
            &[&me, &ttl_secs],
        )
        .await
        .map_err(db("renewing the leases"))?;
    let mut held = buckets_of(&renewed);
    if held.len() > fair {
        let extra: Vec<i16> = held[fair..]
            .iter()
            .filter_map(|b| i16::try_from(*b).ok())
            .collect();
        client
            .execute(
                "UPDATE sandboxd_leases SET holder = NULL, expires_at = NULL
                 WHERE holder = $1 AND bucket = ANY($2)",
                &[&me, &extra],
            )
            .await
            .map_err(db("giving back leases"))?;
        held.truncate(fair);
    } else if held.len() < fair {
        let wanted = i64::try_from(fair - held.len()).unwrap_or(0);
        let taken = client
            .query(
                "UPDATE sandboxd_leases SET holder = $1, expires_at = now() + make_interval(secs => $2)
                 WHERE bucket IN (
                     SELECT bucket FROM sandboxd_leases
                     WHERE holder IS NULL OR expires_at IS NULL OR expires_at <= now()
                     ORDER BY bucket LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 RETURNING bucket",
                &[&me, &ttl_secs, &wanted],
            )
            .await
            .map_err(db("taking leases"))?;
        held.extend(buckets_of(&taken));
        held.sort_unstable();
    }
    let after: Vec<i16> = held.iter().filter_map(|b| i16::try_from(*b).ok()).collect();
    client
        .execute(
            "UPDATE sandboxd_replicas SET buckets = $2 WHERE id = $1",
            &[&me, &after],
        )
        .await
        .map_err(db("recording the share"))?;
    Ok(held)
}

/// The buckets `me` holds whose last poll is at least `every` ago.
pub async fn due(store: &PgStore, me: &str, every: Duration) -> anyhow::Result<Vec<u16>> {
    let client = store.pool().get().await?;
    let rows = client
        .query(
            "SELECT bucket FROM sandboxd_leases
             WHERE holder = $1 AND expires_at > now()
               AND (polled_at IS NULL OR polled_at <= now() - make_interval(secs => $2))",
            &[&me, &every.as_secs_f64()],
        )
        .await
        .map_err(db("reading the due buckets"))?;
    Ok(buckets_of(&rows))
}

/// Mark `buckets` (still held by `me`) as polled now.
pub async fn polled(store: &PgStore, me: &str, buckets: &[u16]) -> anyhow::Result<()> {
    let buckets: Vec<i16> = buckets
        .iter()
        .filter_map(|b| i16::try_from(*b).ok())
        .collect();
    let client = store.pool().get().await?;
    client
        .execute(
            "UPDATE sandboxd_leases SET polled_at = now() WHERE holder = $1 AND bucket = ANY($2)",
            &[&me, &buckets],
        )
        .await
        .map_err(db("recording the poll"))?;
    Ok(())
}

/// The live replicas, oldest first, with who runs another contract version
/// than most.
pub async fn replicas(
    store: &PgStore,
    me: &str,
    ttl: Duration,
) -> anyhow::Result<Vec<ReplicaInfo>> {
    let client = store.pool().get().await?;
    let rows = client
        .query(
            "SELECT id, plugin_version, contract_version,
                    to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                    to_char(heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                    buckets
             FROM sandboxd_replicas
             WHERE heartbeat_at > now() - make_interval(secs => $1)
             ORDER BY started_at, id",
            &[&ttl.as_secs_f64()],
        )
        .await
        .map_err(db("listing the replicas"))?;
    let mut votes: HashMap<String, usize> = HashMap::new();
    for row in &rows {
        *votes.entry(row.get::<_, String>(2)).or_default() += 1;
    }
    let majority = votes
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(v, _)| v.clone())
        .unwrap_or_default();
    Ok(rows
        .into_iter()
        .map(|row| {
            let id: String = row.get(0);
            let contract_version: String = row.get(2);
            let mut buckets: Vec<u16> = row
                .get::<_, Vec<i16>>(5)
                .into_iter()
                .filter_map(|b| u16::try_from(b).ok())
                .collect();
            buckets.sort_unstable();
            ReplicaInfo {
                this: id == me,
                contract_differs: contract_version != majority,
                id,
                plugin_version: row.get(1),
                contract_version,
                started_at: Some(row.get(3)),
                last_heartbeat: Some(row.get(4)),
                buckets,
            }
        })
        .collect())
}
