//! `POST /start`: a new sandbox. Its ports (four free loopback ports no other
//! sandbox holds), its directory, its environment (the spec's, with the ports
//! and the session key filled in), then its process.
//!
//! Invariant: the record is stored before the process is spawned, so a crash at
//! any point after leaves a record for `adopt` to find; and the spawned child is
//! watched until it exits (`watch_child`), which reaps it.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::{Sandbox, exited, persist, ready};
use crate::local_runtime::record::{Ports, Record, Status};
use crate::local_runtime::{Inner, lock, process};

/// The `/start` body (contract section 1); what the local runtime does not use
/// (image resources, uid) is ignored.
#[derive(Debug, Deserialize)]
pub struct StartBody {
    pub session_id: String,
    #[serde(default)]
    pub image: Option<String>,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub environment: Option<serde_json::Map<String, Value>>,
}

/// Why a `/start` was refused.
pub enum StartError {
    Invalid(String),
    Conflict(String),
    Internal(String),
}

fn valid_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if getrandom::fill(&mut buf).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        buf.iter_mut()
            .zip(nanos.to_le_bytes().iter().cycle())
            .for_each(|(b, n)| *b = *n);
    }
    hex::encode(buf)
}

/// Four distinct free loopback ports not handed to another sandbox.
fn allocate_ports(inner: &Inner) -> std::io::Result<Ports> {
    let mut taken = lock(&inner.ports);
    let mut listeners = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < 4 {
        let l = std::net::TcpListener::bind(("127.0.0.1", 0))?;
        let port = l.local_addr()?.port();
        if !taken.contains(&port) {
            ports.push(port);
        }
        listeners.push(l);
    }
    taken.extend(ports.iter().copied());
    Ok(Ports {
        agent: ports[0],
        vscode: ports[1],
        worker_1: ports[2],
        worker_2: ports[3],
    })
}

pub(super) fn release_ports(inner: &Inner, ports: &Ports) {
    let mut taken = lock(&inner.ports);
    for p in ports.all() {
        taken.remove(&p);
    }
}

/// `{port}`, `{vscode_port}`, `{worker_1_port}`, `{worker_2_port}`, `{workspace}`.
fn fill(template: &str, ports: &Ports, workspace: &str) -> String {
    template
        .replace("{port}", &ports.agent.to_string())
        .replace("{vscode_port}", &ports.vscode.to_string())
        .replace("{worker_1_port}", &ports.worker_1.to_string())
        .replace("{worker_2_port}", &ports.worker_2.to_string())
        .replace("{workspace}", workspace)
}

/// `POST /start`: record, spawn, answer at once (`starting`, or `error` if the
/// command cannot even be run).
pub async fn start(inner: &Arc<Inner>, body: StartBody) -> Result<Arc<Sandbox>, StartError> {
    if !valid_session_id(&body.session_id) {
        return Err(StartError::Invalid(
            "session_id must be 1 to 128 letters, digits, '-', '_' or '.'".into(),
        ));
    }
    let command = body.command.filter(|c| !c.is_empty()).ok_or_else(|| {
        StartError::Invalid("the local runtime needs a command (the spec has none)".into())
    })?;
    {
        let mut all = lock(&inner.sandboxes);
        if let Some(existing) = all
            .values()
            .find(|s| s.session_id == body.session_id)
            .cloned()
        {
            if existing.is_live() {
                return Err(StartError::Conflict(format!(
                    "session '{}' already has a runtime",
                    body.session_id
                )));
            }
            all.remove(&existing.runtime_id);
        }
    }
    let runtime_id = format!("rt-{}", random_hex(8));
    let ports =
        allocate_ports(inner).map_err(|e| StartError::Internal(format!("no free ports: {e}")))?;
    let workdir = inner.root.join(&runtime_id);
    for dir in [
        workdir.clone(),
        workdir.join("project"),
        workdir.join("tmp"),
    ] {
        std::fs::create_dir_all(&dir)
            .map_err(|e| StartError::Internal(format!("cannot create {}: {e}", dir.display())))?;
    }
    let workspace = workdir.display().to_string();
    let key = inner.host_key.session_key(&runtime_id);

    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into()),
        ),
        ("HOME".into(), workspace.clone()),
        ("TMPDIR".into(), workdir.join("tmp").display().to_string()),
        (
            "LANG".into(),
            std::env::var("LANG").unwrap_or_else(|_| "C.UTF-8".into()),
        ),
    ];
    for (k, v) in body.environment.unwrap_or_default() {
        let value = match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        env.push((k, fill(&value, &ports, &workspace)));
    }
    // The workers listen where the runtime proxies `work-1` and `work-2` to, and
    // the agent server accepts the session key the runtime hands out.
    for (k, v) in [
        ("WORKER_1", ports.worker_1.to_string()),
        ("WORKER_2", ports.worker_2.to_string()),
        ("SESSION_API_KEY", key.clone()),
        ("OH_SESSION_API_KEYS_0", key),
    ] {
        env.retain(|(name, _)| name != k);
        env.push((k.to_owned(), v));
    }
    let command: Vec<String> = command
        .iter()
        .map(|a| fill(a, &ports, &workspace))
        .collect();

    let record = Record {
        runtime_id: runtime_id.clone(),
        session_id: body.session_id,
        spec_id: body.image.unwrap_or_default(),
        ports,
        workdir: workspace,
        pid: None,
        start_ticks: None,
        status: Status::Starting,
        ready: false,
        detail: None,
    };
    // Recorded before anything runs: a crash from here on leaves a record.
    persist(inner, &record).await;
    let sandbox = Sandbox::new(record);
    lock(&inner.sandboxes).insert(runtime_id.clone(), sandbox.clone());

    match process::spawn(&command, &env, &workdir, inner.config.isolation) {
        Ok(child) => {
            let pid = child.id().unwrap_or_default();
            let ticks = process::start_ticks(pid);
            sandbox
                .update(inner, |r| {
                    r.pid = Some(pid);
                    r.start_ticks = ticks;
                })
                .await;
            tracing::info!(%runtime_id, pid, "local sandbox started");
            tokio::spawn(watch_child(inner.clone(), sandbox.clone(), child));
            tokio::spawn(ready::probe(inner.clone(), sandbox.clone()));
        }
        Err(e) => {
            let detail = format!(
                "cannot run '{}': {e}",
                command.first().map_or("", String::as_str)
            );
            tracing::warn!(%runtime_id, %detail, "local sandbox failed to start");
            sandbox
                .update(inner, |r| {
                    r.status = Status::Error;
                    r.detail = Some(detail);
                })
                .await;
        }
    }
    Ok(sandbox)
}

/// Wait for our child to exit, reap it, and say how it ended.
async fn watch_child(inner: Arc<Inner>, sandbox: Arc<Sandbox>, mut child: tokio::process::Child) {
    let status = child.wait().await;
    let ended = match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(match s.code() {
            Some(code) => format!("exited with status {code}"),
            None => format!("was killed ({s})"),
        }),
        Err(e) => Err(format!("could not be waited for: {e}")),
    };
    exited(&inner, &sandbox, ended).await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_filled() {
        let ports = super::Ports {
            agent: 1,
            vscode: 2,
            worker_1: 3,
            worker_2: 4,
        };
        assert_eq!(
            super::fill(
                "{port} {vscode_port} {worker_1_port} {worker_2_port} {workspace}/x",
                &ports,
                "/w"
            ),
            "1 2 3 4 /w/x"
        );
    }
}
