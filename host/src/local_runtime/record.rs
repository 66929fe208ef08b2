//! What the local runtime remembers of each sandbox, in the host's own table
//! `local_runtime` of the redb file (never visible to the plugin).
//!
//! Written before a process is spawned and on every change of state, so that a
//! sandboxd killed at any moment finds, on restart, every process it may have
//! left running: each is re-adopted (if the pid still names the same process,
//! judged by its start time) or reported stopped.

use serde::{Deserialize, Serialize};

use crate::bindings::storage::{KeyRef, Op, PutOp};

pub const TABLE: &str = "local_runtime";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Starting,
    Running,
    Paused,
    Error,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Error => "error",
            Status::Stopped => "stopped",
        }
    }

    /// Whether a process may still be running.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Starting | Status::Running | Status::Paused)
    }
}

/// The four ports a sandbox's services listen on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    pub agent: u16,
    pub vscode: u16,
    pub worker_1: u16,
    pub worker_2: u16,
}

impl Ports {
    pub fn all(&self) -> [u16; 4] {
        [self.agent, self.vscode, self.worker_1, self.worker_2]
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub runtime_id: String,
    pub session_id: String,
    pub spec_id: String,
    pub ports: Ports,
    pub workdir: String,
    /// The process group leader, once spawned.
    pub pid: Option<u32>,
    /// Its start time (ticks since boot), to recognise it after a restart.
    pub start_ticks: Option<u64>,
    pub status: Status,
    /// Whether the readiness probe passed (a resumed sandbox is running again only
    /// if it was ready before).
    pub ready: bool,
    pub detail: Option<String>,
}

impl Record {
    pub fn put(&self) -> Op {
        Op::Put(PutOp {
            table: TABLE.to_owned(),
            key: self.runtime_id.as_bytes().to_vec(),
            value: serde_json::to_vec(self).unwrap_or_default(),
        })
    }

    pub fn delete(&self) -> Op {
        Op::Delete(KeyRef {
            table: TABLE.to_owned(),
            key: self.runtime_id.as_bytes().to_vec(),
        })
    }
}
