//! Live plugin swaps, as an operator does them: writing the plugin file the way
//! `cp` and editors do, waiting for the new version to serve, and a steady load
//! of API calls that records every request around the swaps.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::client::Api;

/// Write `bytes` over `path` the way `cp` does: truncate, then write in chunks
/// (with a pause in the middle, so a watcher sees a half-written file).
pub fn write_like_cp(path: &Path, bytes: &[u8]) {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let half = bytes.len() / 2;
    for (i, chunk) in bytes.chunks(64 << 10).enumerate() {
        file.write_all(chunk)
            .unwrap_or_else(|e| panic!("write: {e}"));
        if i * (64 << 10) <= half && half < (i + 1) * (64 << 10) {
            let _ = file.flush();
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// Replace `path` the way editors and deploy tools do: write a temporary file
/// next to it, then rename it over.
pub fn write_like_editor(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("wasm.tmp~");
    std::fs::write(&tmp, bytes).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("rename: {e}"));
}

/// `GET /admin/plugin`.
pub async fn plugin_status(admin: &Api) -> Value {
    admin.get("/admin/plugin").await.ok()
}

/// Poll until `version` serves (or `timeout` passes); how long it took.
pub async fn wait_for_version(admin: &Api, version: &str, timeout: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        let status = plugin_status(admin).await;
        if status["plugin"]["plugin_version"] == version {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    None
}

/// One request of the steady load.
#[derive(Debug, Clone)]
pub struct Sample {
    pub started: SystemTime,
    pub elapsed: Duration,
    pub what: &'static str,
    /// The status, or 0 when no answer arrived.
    pub status: u16,
    /// Whether the answer was the expected one.
    pub ok: bool,
}

impl Sample {
    /// Whether the request was in flight at `t`.
    pub fn straddles(&self, t: SystemTime) -> bool {
        self.started <= t && t <= self.started + self.elapsed
    }
}

/// Mixed API calls from `clients` concurrent clients until stopped: get, search,
/// batch get, a missing id (expects 404), specs.
pub struct SteadyLoad {
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<Vec<Sample>>>,
}

impl SteadyLoad {
    pub fn start(api: &Api, ids: &[String], clients: usize) -> SteadyLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let workers = (0..clients)
            .map(|c| {
                let api = api.clone();
                let ids = ids.to_vec();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    let mut i = c;
                    while !stop.load(Ordering::Relaxed) {
                        let id = &ids[i % ids.len()];
                        let (what, path, expected) = match i % 5 {
                            0 => (
                                "search",
                                "/api/v1/sandboxes/search?limit=10".to_owned(),
                                200,
                            ),
                            1 => (
                                "batch get",
                                format!(
                                    "/api/v1/sandboxes?id={id}&id={}",
                                    ids[(i + 1) % ids.len()]
                                ),
                                200,
                            ),
                            2 => (
                                "missing",
                                "/api/v1/sandboxes/no-such-sandbox".to_owned(),
                                404,
                            ),
                            3 => ("specs", "/api/v1/sandbox-specs/search".to_owned(), 200),
                            _ => ("get", format!("/api/v1/sandboxes/{id}"), 200),
                        };
                        let started = SystemTime::now();
                        let t = Instant::now();
                        let status = api
                            .try_request(reqwest::Method::GET, &path)
                            .await
                            .map_or(0, |reply| reply.status.as_u16());
                        samples.push(Sample {
                            started,
                            elapsed: t.elapsed(),
                            what,
                            status,
                            ok: status == expected,
                        });
                        i += clients;
                    }
                    samples
                })
            })
            .collect();
        SteadyLoad { stop, workers }
    }

    /// Stop and return every sample, in no particular order.
    pub async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for w in self.workers {
            if let Ok(samples) = w.await {
                all.extend(samples);
            }
        }
        all
    }
}

/// Parse the RFC 3339 time sandboxd reports (`loaded_at`).
pub fn parse_time(s: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| SystemTime::from(t.with_timezone(&chrono::Utc)))
}
