//! One local sandbox: its process, its record, and its lifecycle.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::Deserialize;
use serde_json::{Value, json};

use super::process::{self, group_alive};
use super::record::{Ports, Record, Status, TABLE};
use super::{Inner, lock};
use crate::config::Probe;

/// How long a stop waits for the group after SIGKILL.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// How often a re-adopted process (not our child: we cannot `wait` for it) is
/// checked.
const ADOPTED_POLL: Duration = Duration::from_millis(500);
/// How often the readiness probe tries.
const PROBE_EVERY: Duration = Duration::from_millis(200);
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
    if let Err(e) = inner.store.host_commit(vec![record.put()]).await {
        tracing::error!(runtime_id = %record.runtime_id, error = ?e, "cannot store a local sandbox record");
    }
}

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
    buf.iter().map(|b| format!("{b:02x}")).collect()
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

fn release_ports(inner: &Inner, ports: &Ports) {
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
            tokio::spawn(probe(inner.clone(), sandbox.clone()));
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

/// Watch a re-adopted process (not our child) until it is gone.
async fn watch_adopted(inner: Arc<Inner>, sandbox: Arc<Sandbox>, pid: u32, ticks: u64) {
    while process::same_process_alive(pid, ticks) {
        tokio::time::sleep(ADOPTED_POLL).await;
    }
    exited(&inner, &sandbox, Ok(())).await;
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

/// Probe until ready (then `running`), gone, or out of time (then `error`).
async fn probe(inner: Arc<Inner>, sandbox: Arc<Sandbox>) {
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
        if let Err(e) = inner.store.host_commit(vec![r.delete()]).await {
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

/// Load every record an earlier run left: re-adopt the processes that still
/// run, report the others stopped. Returns how many were adopted.
pub async fn adopt_all(inner: &Arc<Inner>) -> anyhow::Result<usize> {
    let rows = inner
        .store
        .host_scan(TABLE)
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
                    tokio::spawn(probe(inner.clone(), sandbox.clone()));
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
