//! One local sandbox: its process, its record, and its lifecycle, one file per
//! concern:
//! - here: the [`Sandbox`] type, the updates of its record, and what happens
//!   when its process ends (`exited`);
//! - `start`: `POST /start`: ports, directory, environment, spawn;
//! - `ready`: the readiness probe that turns `starting` into `running`;
//! - `control`: pause, resume and stop;
//! - `adopt`: after a restart, re-adopting the processes an earlier run left.
//!
//! Invariants (the local runtime's, stated in `super`, kept here):
//! - A record is stored before its process is spawned (`start`) and on every
//!   change after: each goes through `Sandbox::update`, which stores it. Only a
//!   `/stop` removes it, once it has ended the process group.
//! - Lifecycle operations of one sandbox (pause, resume, stop, and the probe's
//!   verdict) run one at a time, under its `op` lock.
//! - Once `stopping` is set, the end of the process is expected: `exited`
//!   records nothing for it and the probe gives up at its next try; the stop
//!   records the outcome. A verdict the probe reached just before a stop began
//!   waits for the `op` lock, sees `stopping`, and is dropped.
//! - When the leader exits, `exited` kills what it left in its group, so a
//!   sandbox's processes never outlive it.

mod adopt;
mod control;
mod ready;
mod start;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use super::process;
use super::record::{Record, Status};
use super::{Inner, lock};
use crate::storage::Namespace;

pub use adopt::adopt_all;
pub use control::{pause, resume, stop};
pub use start::{StartBody, StartError, start};

/// Lines of stderr quoted in a status detail.
const STDERR_LINES: usize = 10;

pub struct Sandbox {
    pub runtime_id: String,
    pub session_id: String,
    record: Mutex<Record>,
    /// Serialises lifecycle operations (start, pause, resume, stop) of this sandbox.
    op: tokio::sync::Mutex<()>,
    /// Set once a stop began: an exit is then expected, not an error.
    stopping: AtomicBool,
}

impl Sandbox {
    fn new(record: Record) -> Arc<Sandbox> {
        Arc::new(Sandbox {
            runtime_id: record.runtime_id.clone(),
            session_id: record.session_id.clone(),
            record: Mutex::new(record),
            op: tokio::sync::Mutex::new(()),
            stopping: AtomicBool::new(false),
        })
    }

    pub fn record(&self) -> Record {
        lock(&self.record).clone()
    }

    pub fn is_live(&self) -> bool {
        lock(&self.record).status.is_live()
    }

    /// The runtime object the API answers for this sandbox.
    pub fn runtime_json(&self, inner: &Inner) -> Value {
        let r = self.record();
        let mut object = json!({
            "runtime_id": r.runtime_id,
            "session_id": r.session_id,
            "url": format!("{}/{}", inner.url, r.runtime_id),
            "session_api_key": inner.host_key.session_key(&r.runtime_id),
            "status": r.status.as_str(),
            "image": r.spec_id,
            "restart_count": 0,
        });
        if let Some(detail) = r.detail {
            object["status_detail"] = Value::String(detail);
        }
        object
    }

    /// Change the record and store it.
    async fn update(&self, inner: &Inner, change: impl FnOnce(&mut Record)) {
        let record = {
            let mut r = lock(&self.record);
            change(&mut r);
            r.clone()
        };
        persist(inner, &record).await;
    }
}

async fn persist(inner: &Inner, record: &Record) {
    if let Err(e) = inner
        .store
        .commit(Namespace::Host, vec![record.put()])
        .await
    {
        tracing::error!(runtime_id = %record.runtime_id, error = ?e, "cannot store a local sandbox record");
    }
}

/// The process is gone: end whatever it left in its group and record how.
async fn exited(inner: &Inner, sandbox: &Sandbox, ended: Result<(), String>) {
    let record = sandbox.record();
    if let Some(pid) = record.pid {
        process::signal_group(pid, Signal::SIGKILL);
    }
    if sandbox.stopping.load(Ordering::SeqCst) || !record.status.is_live() {
        return;
    }
    let workdir = std::path::Path::new(&record.workdir);
    let (status, detail) = match ended {
        Ok(()) => (Status::Stopped, Some("the process exited".to_owned())),
        Err(how) => {
            let tail = process::stderr_tail(workdir, STDERR_LINES);
            let detail = if tail.is_empty() {
                format!("the process {how}")
            } else {
                format!("the process {how}; stderr:\n{tail}")
            };
            (Status::Error, Some(detail))
        }
    };
    tracing::info!(runtime_id = %sandbox.runtime_id, status = status.as_str(), "local sandbox process ended");
    sandbox
        .update(inner, |r| {
            r.status = status;
            r.detail = detail;
        })
        .await;
}
