//! Pause, resume and stop: signals to the sandbox's whole process group.
//!
//! Invariants: each runs under the sandbox's `op` lock; pause and resume change
//! the status only after the signal was sent (a resumed sandbox is `running`
//! again only if it was ready before); a stop ends the whole group (SIGTERM,
//! SIGKILL after the grace period, and waits for it) before the record says
//! `stopped` or is removed, and gives the ports back only with the record.

use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::sys::signal::Signal;

use super::Sandbox;
use super::start::release_ports;
use crate::local_runtime::record::Status;
use crate::local_runtime::{
    Inner, lock,
    process::{self, group_alive},
};
use crate::storage::Namespace;

/// How long a stop waits for the group after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);

pub async fn pause(inner: &Inner, sandbox: &Sandbox) -> Result<(), String> {
    let _op = sandbox.op.lock().await;
    let r = sandbox.record();
    match (r.status, r.pid) {
        (Status::Paused, _) => Ok(()),
        (Status::Starting | Status::Running, Some(pid)) => {
            process::signal_group(pid, Signal::SIGSTOP);
            sandbox.update(inner, |r| r.status = Status::Paused).await;
            Ok(())
        }
        (status, _) => Err(format!(
            "cannot pause a sandbox that is {}",
            status.as_str()
        )),
    }
}

pub async fn resume(inner: &Inner, sandbox: &Sandbox) -> Result<(), String> {
    let _op = sandbox.op.lock().await;
    let r = sandbox.record();
    match (r.status, r.pid) {
        (Status::Running | Status::Starting, _) => Ok(()),
        (Status::Paused, Some(pid)) => {
            process::signal_group(pid, Signal::SIGCONT);
            sandbox
                .update(inner, |r| {
                    r.status = if r.ready {
                        Status::Running
                    } else {
                        Status::Starting
                    }
                })
                .await;
            Ok(())
        }
        (status, _) => Err(format!(
            "cannot resume a sandbox that is {}",
            status.as_str()
        )),
    }
}

/// End the sandbox's whole process group: SIGTERM (and SIGCONT, in case it is
/// paused), SIGKILL after the grace period. With `forget`, the record, the
/// directory and the ports go too (a `/stop`); without, the record says
/// `stopped` (sandboxd shutting down).
pub async fn stop(inner: &Inner, sandbox: &Sandbox, forget: bool) {
    let _op = sandbox.op.lock().await;
    sandbox.stopping.store(true, Ordering::SeqCst);
    let r = sandbox.record();
    if let (Some(pid), true) = (r.pid, r.status.is_live() || group_alive(r.pid.unwrap_or(0))) {
        process::signal_group(pid, Signal::SIGTERM);
        process::signal_group(pid, Signal::SIGCONT);
        if !process::wait_group_gone(pid, inner.config.stop_grace).await {
            process::signal_group(pid, Signal::SIGKILL);
            if !process::wait_group_gone(pid, KILL_WAIT).await {
                tracing::warn!(runtime_id = %sandbox.runtime_id, pid, "processes of a stopped sandbox are still there after SIGKILL");
            }
        }
    }
    if forget {
        lock(&inner.sandboxes).remove(&sandbox.runtime_id);
        if let Err(e) = inner.store.commit(Namespace::Host, vec![r.delete()]).await {
            tracing::error!(runtime_id = %sandbox.runtime_id, error = ?e, "cannot remove a local sandbox record");
        }
        if let Err(e) = std::fs::remove_dir_all(&r.workdir) {
            tracing::warn!(runtime_id = %sandbox.runtime_id, error = %e, "cannot remove a local sandbox's directory");
        }
        release_ports(inner, &r.ports);
        tracing::info!(runtime_id = %sandbox.runtime_id, "local sandbox stopped and removed");
    } else {
        sandbox
            .update(inner, |r| {
                if r.status.is_live() {
                    r.status = Status::Stopped;
                    r.detail = Some("stopped when sandboxd shut down".into());
                }
            })
            .await;
    }
}
