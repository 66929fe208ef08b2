//! After a restart (or a crash) of sandboxd: every record an earlier run left is
//! loaded, its ports are taken again, and its process is re-adopted if it still
//! runs, or the sandbox is reported stopped.
//!
//! Invariant: a process is recognised by its pid and its start time together,
//! never by its name, so a pid reused by an unrelated process is never adopted.
//! A re-adopted process is not our child: it cannot be
//! waited for, so `watch_adopted` polls until it is gone.

use std::sync::Arc;
use std::time::Duration;

use super::{Sandbox, exited, ready};
use crate::local_runtime::record::{Record, Status, TABLE};
use crate::local_runtime::{Inner, lock, process};

/// How often a re-adopted process (not our child: we cannot `wait` for it) is
/// checked.
const ADOPTED_POLL: Duration = Duration::from_millis(500);

/// Load every record an earlier run left: re-adopt the processes that still
/// run, report the others stopped. Returns how many were adopted.
pub async fn adopt_all(inner: &Arc<Inner>) -> anyhow::Result<usize> {
    let rows = inner
        .store
        .host_scan_all(TABLE)
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the local runtime's records: {e:?}"))?;
    let mut adopted = 0;
    for (k, v) in rows.iter().map(|e| (&e.key, &e.value)) {
        let Ok(record) = serde_json::from_slice::<Record>(v) else {
            tracing::error!(key = %String::from_utf8_lossy(k), "unreadable local sandbox record; left as it is");
            continue;
        };
        lock(&inner.ports).extend(record.ports.all());
        let sandbox = Sandbox::new(record.clone());
        lock(&inner.sandboxes).insert(record.runtime_id.clone(), sandbox.clone());
        if !record.status.is_live() {
            continue;
        }
        match (record.pid, record.start_ticks) {
            (Some(pid), Some(ticks)) if process::same_process_alive(pid, ticks) => {
                adopted += 1;
                tracing::info!(runtime_id = %record.runtime_id, pid, "re-adopted a local sandbox");
                tokio::spawn(watch_adopted(inner.clone(), sandbox.clone(), pid, ticks));
                if !record.ready {
                    tokio::spawn(ready::probe(inner.clone(), sandbox.clone()));
                }
            }
            _ => {
                tracing::info!(runtime_id = %record.runtime_id, "a local sandbox ended while sandboxd was not running");
                sandbox
                    .update(inner, |r| {
                        r.status = Status::Stopped;
                        r.detail = Some("the process ended while sandboxd was not running".into());
                    })
                    .await;
            }
        }
    }
    Ok(adopted)
}

/// Watch a re-adopted process (not our child) until it is gone.
async fn watch_adopted(inner: Arc<Inner>, sandbox: Arc<Sandbox>, pid: u32, ticks: u64) {
    while process::same_process_alive(pid, ticks) {
        tokio::time::sleep(ADOPTED_POLL).await;
    }
    exited(&inner, &sandbox, Ok(())).await;
}
