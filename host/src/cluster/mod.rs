//! Replicas: several `sandboxd serve` processes on one PostgreSQL database,
//! splitting the background work between them.
//!
//! The background work (poll cycles, reconciliation, callback deliveries) is
//! cut into [`BUCKETS`] buckets by sandbox (and delivery) id, as the contract's
//! `share` says. Each bucket is a leased row in the database. Why leased rows,
//! and not advisory locks or a leader: a lease outlives a connection blip, is
//! visible to operators (`/admin/replicas`), expires by itself when its holder
//! dies without a goodbye (SIGKILL), and carries when its bucket was last
//! polled, so that a bucket changing hands mid-interval is not polled twice.
//!
//! Every heartbeat (a fifth of the polling interval) a replica:
//! 1. records itself alive, with its plugin's versions;
//! 2. renews its leases (they last half an interval, so two missed heartbeats
//!    are not yet a death);
//! 3. gives back leases beyond its fair share (64 / live replicas, rounded up),
//!    so that a replica that joins gets work;
//! 4. takes free or expired leases up to its fair share (`FOR UPDATE SKIP
//!    LOCKED`: two replicas never take the same one).
//!
//! So a replica that dies has its share taken over within
//! `TTL + HEARTBEAT` (0.7 intervals), and polled at the next cycle of its new
//! holder: within two polling intervals.
//!
//! A lone host (the embedded redb store) holds every bucket, with none of this.

mod leases;
mod notify;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::bindings::types::Share;
use crate::storage::PgStore;
use crate::storage::postgres::schema::BUCKETS;

pub use leases::ReplicaInfo;
pub use notify::bridge;

/// Who this process is among the replicas, and which work is its.
pub struct Cluster {
    id: String,
    shared: Option<Shared>,
}

struct Shared {
    store: PgStore,
    /// The buckets this replica held at its last heartbeat.
    held: Mutex<Vec<u16>>,
    heartbeat: Duration,
    ttl: Duration,
    /// A bucket polled less than this long ago is not due again.
    poll_every: Duration,
}

impl Cluster {
    /// A lone host: every bucket is its.
    pub fn single() -> Cluster {
        Cluster {
            id: replica_id(),
            shared: None,
        }
    }

    /// A replica on `store`, polling every `interval`: registered, with a first
    /// share taken, before it serves.
    pub async fn join(
        store: PgStore,
        interval: Duration,
        versions: (&str, &str),
    ) -> anyhow::Result<Cluster> {
        let heartbeat = (interval / 5).clamp(Duration::from_millis(200), Duration::from_secs(5));
        let cluster = Cluster {
            id: replica_id(),
            shared: Some(Shared {
                store,
                held: Mutex::new(Vec::new()),
                heartbeat,
                ttl: heartbeat * 5 / 2,
                poll_every: interval.mul_f64(0.8),
            }),
        };
        cluster.beat(versions).await?;
        Ok(cluster)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// How often heartbeats run (for a lone host, never).
    pub fn heartbeat_every(&self) -> Option<Duration> {
        self.shared.as_ref().map(|s| s.heartbeat)
    }

    /// The buckets held now: what reconciliation and deliveries act on.
    pub fn share(&self) -> Share {
        match &self.shared {
            None => all(),
            Some(s) => Share {
                of: BUCKETS,
                buckets: s.held.lock().map(|h| h.clone()).unwrap_or_default(),
            },
        }
    }

    /// The held buckets whose poll is due (not polled within the last
    /// interval, by this replica or the one that held them before).
    pub async fn due(&self) -> anyhow::Result<Share> {
        match &self.shared {
            None => Ok(all()),
            Some(s) => Ok(Share {
                of: BUCKETS,
                buckets: leases::due(&s.store, &self.id, s.poll_every).await?,
            }),
        }
    }

    /// Record that the buckets of `share` were just polled.
    pub async fn polled(&self, share: &Share) -> anyhow::Result<()> {
        match &self.shared {
            None => Ok(()),
            Some(s) => leases::polled(&s.store, &self.id, &share.buckets).await,
        }
    }

    /// One heartbeat: alive, leases renewed, fair share given back or taken.
    pub async fn beat(
        &self,
        (plugin_version, contract_version): (&str, &str),
    ) -> anyhow::Result<()> {
        let Some(s) = &self.shared else {
            return Ok(());
        };
        let held = {
            let held = s.held.lock().map(|h| h.clone()).unwrap_or_default();
            leases::beat(
                &s.store,
                &self.id,
                plugin_version,
                contract_version,
                s.ttl,
                &held,
            )
            .await?
        };
        if let Ok(mut h) = s.held.lock() {
            *h = held;
        }
        Ok(())
    }

    /// The live replicas (just this one for a lone host).
    pub async fn replicas(
        &self,
        (plugin_version, contract_version): (&str, &str),
    ) -> anyhow::Result<Vec<ReplicaInfo>> {
        match &self.shared {
            None => Ok(vec![ReplicaInfo {
                id: self.id.clone(),
                plugin_version: plugin_version.to_owned(),
                contract_version: contract_version.to_owned(),
                started_at: None,
                last_heartbeat: None,
                buckets: all().buckets,
                this: true,
                contract_differs: false,
            }]),
            Some(s) => leases::replicas(&s.store, &self.id, s.ttl).await,
        }
    }
}

/// Everything, for a lone host: one bucket of one.
fn all() -> Share {
    Share {
        of: 1,
        buckets: vec![0],
    }
}

/// A name for this process: the host name and a random suffix (a restarted
/// replica is a new one; its old leases simply expire).
fn replica_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "sandboxd".into());
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    format!("{host}-{}-{}", std::process::id(), hex::encode(bytes))
}

/// Heartbeats until the process ends; a failing one is logged and retried at
/// the next (the leases it could not renew may lapse meanwhile: another
/// replica then takes them, which is the point).
pub async fn run_heartbeats(cluster: Arc<Cluster>, plugin: Arc<crate::plugin::PluginHost>) {
    let Some(every) = cluster.heartbeat_every() else {
        return;
    };
    let mut known_mismatch = String::new();
    loop {
        tokio::time::sleep(every).await;
        let current = plugin.current();
        let versions = (&*current.plugin_version, current.contract_version.as_str());
        if let Err(e) = cluster.beat(versions).await {
            tracing::warn!(error = %e, "heartbeat failed; retrying at the next");
            continue;
        }
        // A replica on another contract version is named, once per change.
        if let Ok(replicas) = cluster.replicas(versions).await {
            let differing: Vec<String> = replicas
                .iter()
                .filter(|r| r.contract_differs)
                .map(|r| format!("{} (contract {})", r.id, r.contract_version))
                .collect();
            let text = differing.join(", ");
            if text != known_mismatch {
                if !differing.is_empty() {
                    tracing::warn!(replicas = %text, "replicas run plugins of another contract version than the others");
                }
                known_mismatch = text;
            }
        }
    }
}
