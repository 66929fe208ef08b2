//! The embedded local runtime: the runtime API contract (section 1) served on
//! loopback by sandboxd itself, with real processes as sandboxes.
//!
//! The plugin cannot tell it from a cluster: it gets a URL and the host attaches
//! a random API key, exactly as for a remote runtime API. Each sandbox is a
//! process started from its spec's command, in its own process group and its own
//! directory under the data directory, with four ports of its own; the runtime's
//! server proxies `/{runtime_id}/…`, `/{runtime_id}/vscode/…`,
//! `/{runtime_id}/work-1/…` and `/{runtime_id}/work-2/…` to them, so the exposed
//! URLs the plugin builds (path routing) all work.
//!
//! Invariants:
//! - The status is the truth about the process: `starting` until the readiness
//!   probe passes, `running` after, `paused` while SIGSTOPped, `error` when it
//!   exited non-zero or never became ready (with the end of its stderr),
//!   `stopped` after a clean exit.
//! - A record is written before a process is spawned and on every change, so no
//!   process is ever left without one; after a crash, processes that still run
//!   are re-adopted (checked by pid and start time, never by name).
//! - Stopping a sandbox ends its whole process group (SIGTERM, then SIGKILL after
//!   the grace period) and reaps the leader: no zombie, no stray.

mod process;
mod proxy;
mod record;
mod sandbox;
mod server;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::config::{Isolation, LocalRuntimeConfig, SpecConfig};
use crate::host_key::HostKey;
use crate::storage::Store;

pub use sandbox::Sandbox;

/// Resumes a paused sandbox, by its session id, through the service (so the
/// store, the limit and the history see it), for wake on request.
pub type Waker =
    Arc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Where the plugin reaches the runtime, and the key the host attaches.
pub struct Endpoint {
    pub url: String,
    pub api_key: String,
}

#[derive(Clone)]
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub config: LocalRuntimeConfig,
    pub specs: Vec<SpecConfig>,
    /// `<data_dir>/sandboxes`: one directory per sandbox.
    pub root: PathBuf,
    pub store: Store,
    pub host_key: HostKey,
    pub api_key: String,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub sandboxes: Mutex<HashMap<String, Arc<Sandbox>>>,
    /// Ports handed to sandboxes and not yet given back.
    pub ports: Mutex<HashSet<u16>>,
    pub probe_client: reqwest::Client,
    /// Set when `[lifecycle] wake_on_request` is on: a request through a
    /// paused sandbox's URLs wakes it.
    pub waker: OnceLock<Waker>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LocalRuntime {
    /// Adopt what an earlier run left, start serving, and say where.
    pub async fn start(
        config: LocalRuntimeConfig,
        specs: Vec<SpecConfig>,
        data_dir: &std::path::Path,
        store: Store,
        host_key: HostKey,
    ) -> anyhow::Result<(LocalRuntime, Endpoint)> {
        if config.isolation == Isolation::Bwrap {
            process::bwrap_available()
                .map_err(|e| anyhow::anyhow!("local_runtime.isolation = \"bwrap\": {e}"))?;
        }
        let root = data_dir.join("sandboxes");
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .context("the local runtime cannot listen on loopback")?;
        let url = format!("http://{}", listener.local_addr()?);
        let mut key = [0u8; 24];
        getrandom::fill(&mut key)
            .map_err(|e| anyhow::anyhow!("no randomness for the local runtime key: {e}"))?;
        let api_key = hex::encode(key);
        let inner = Arc::new(Inner {
            config,
            specs,
            root,
            store,
            host_key,
            api_key: api_key.clone(),
            url: url.clone(),
            sandboxes: Mutex::new(HashMap::new()),
            ports: Mutex::new(HashSet::new()),
            probe_client: reqwest::Client::builder()
                .no_proxy()
                .timeout(std::time::Duration::from_secs(2))
                .build()?,
            waker: OnceLock::new(),
        });
        let adopted = sandbox::adopt_all(&inner).await?;
        // What a sandbox's process leaves behind when it exits before its own
        // children is re-parented to sandboxd instead of init (which, in some
        // containers, never reaps), and reaped here.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!(error = %e, "cannot become a subreaper; orphans of sandboxes go to init");
        }
        tokio::spawn(reap_orphans(inner.clone()));
        tokio::spawn(server::serve(listener, inner.clone()));
        tracing::info!(%url, adopted, isolation = ?inner.config.isolation, "local runtime ready");
        Ok((LocalRuntime { inner }, Endpoint { url, api_key }))
    }

    /// Wake paused sandboxes on a request to their URLs, with `waker`.
    pub fn wake_with(&self, waker: Waker) {
        let _ = self.inner.waker.set(waker);
    }

    /// Stop every sandbox (unless configured to leave them running for the next
    /// start to adopt).
    pub async fn shutdown(&self) {
        if self.inner.config.keep_on_exit {
            tracing::info!("leaving local sandboxes running (local_runtime.keep_on_exit)");
            return;
        }
        let all: Vec<Arc<Sandbox>> = lock(&self.inner.sandboxes).values().cloned().collect();
        let stops = all
            .iter()
            .filter(|s| s.is_live())
            .map(|s| sandbox::stop(&self.inner, s, false));
        let stopped = futures::future::join_all(stops).await.len();
        if stopped > 0 {
            tracing::info!(stopped, "stopped the local sandboxes");
        }
    }
}

/// How often exited orphans are reaped.
const REAP_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Reap zombie children of sandboxd that are not sandbox leaders (those are
/// reaped by their own watchers, which must get their exit status).
async fn reap_orphans(inner: Arc<Inner>) {
    let me = std::process::id();
    loop {
        tokio::time::sleep(REAP_EVERY).await;
        let leaders: HashSet<u32> = lock(&inner.sandboxes)
            .values()
            .filter_map(|s| s.record().pid)
            .collect();
        for pid in process::zombie_children(me) {
            if !leaders.contains(&pid) {
                process::reap(pid);
            }
        }
    }
}
