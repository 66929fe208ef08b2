//! The readiness probe: a sandbox is `starting` until its agent server answers
//! (the spec's probe: an HTTP route, or a TCP connection), then `running`; one
//! that is not ready within `local_runtime.ready_timeout` is killed and recorded
//! as an `error`, with the end of its stderr.
//!
//! Invariant: the verdict is recorded under the sandbox's `op` lock, one at a
//! time with pause, resume and stop, and only if no stop has begun (checked
//! again once the lock is held, so a verdict reached just before a stop never
//! stores the record of a sandbox the stop removed); a sandbox that is
//! stopping, gone or already ready when the probe tries again is left alone. A sandbox paused before it
//! was ready is not probed (it cannot answer), but its deadline keeps running.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{STDERR_LINES, Sandbox};
use crate::config::Probe;
use crate::local_runtime::record::Status;
use crate::local_runtime::{Inner, process};

/// How often the readiness probe tries.
const PROBE_EVERY: Duration = Duration::from_millis(200);

/// Probe until ready (then `running`), gone, or out of time (then `error`).
pub(super) async fn probe(inner: Arc<Inner>, sandbox: Arc<Sandbox>) {
    let record = sandbox.record();
    let spec_probe = inner
        .specs
        .iter()
        .find(|s| s.id == record.spec_id)
        .map_or_else(Probe::default, |s| s.probe.clone());
    let deadline = Instant::now() + inner.config.ready_timeout;
    loop {
        let r = sandbox.record();
        if r.ready || !r.status.is_live() || sandbox.stopping.load(Ordering::SeqCst) {
            return;
        }
        if r.status == Status::Starting && answers(&inner, &spec_probe, r.ports.agent).await {
            let _op = sandbox.op.lock().await;
            // A stop may have begun (and even removed the record) while the
            // probe waited for the lock: its verdict must not bring it back.
            if sandbox.stopping.load(Ordering::SeqCst) {
                return;
            }
            sandbox
                .update(&inner, |r| {
                    r.ready = true;
                    if r.status == Status::Starting {
                        r.status = Status::Running;
                    }
                })
                .await;
            tracing::info!(runtime_id = %sandbox.runtime_id, "local sandbox ready");
            return;
        }
        if Instant::now() >= deadline {
            let _op = sandbox.op.lock().await;
            if sandbox.stopping.load(Ordering::SeqCst) {
                return;
            }
            let tail = process::stderr_tail(std::path::Path::new(&r.workdir), STDERR_LINES);
            let mut detail = format!("not ready within {}s", inner.config.ready_timeout.as_secs());
            if !tail.is_empty() {
                detail.push_str("; stderr:\n");
                detail.push_str(&tail);
            }
            sandbox.stopping.store(true, Ordering::SeqCst);
            if let Some(pid) = r.pid {
                process::signal_group(pid, Signal::SIGKILL);
            }
            sandbox
                .update(&inner, |r| {
                    r.status = Status::Error;
                    r.detail = Some(detail);
                })
                .await;
            return;
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

async fn answers(inner: &Inner, probe: &Probe, port: u16) -> bool {
    match probe {
        Probe::Tcp => tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok(),
        Probe::Http(path) => inner
            .probe_client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            .is_ok_and(|r| r.status().as_u16() < 500),
    }
}
