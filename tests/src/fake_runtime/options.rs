//! How a fake runtime API behaves from the moment it starts.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::runtime_object::random_hex;

/// Settings for [`FakeRuntime::start_with`](super::FakeRuntime::start_with).
///
/// Build it with struct-update syntax so new fields never break callers:
/// `FakeRuntimeOptions { keep_stopped: true, ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct FakeRuntimeOptions {
    /// The key every request must carry in `X-API-Key`. The default is random so a
    /// test that forgets to pass the key to sandboxd fails loudly instead of passing
    /// by accident against a well-known key.
    pub api_key: String,
    /// Template of each runtime's agent-server `url`; `{runtime_id}` and
    /// `{session_id}` are replaced. The default uses path routing on port 9 (discard),
    /// which refuses connections at once, so nothing hangs when a test does not run
    /// an agent server.
    pub url_template: String,
    /// The `status` a runtime created by `POST /start` gets ("running" by default;
    /// "starting" lets tests exercise the STARTING state).
    pub start_status: String,
    /// Whether the `POST /resume` answer carries the rotated `session_api_key`. The
    /// key rotates either way; `false` mimics deployments that only expose the new key
    /// through `GET /sessions/{id}`.
    pub resume_returns_key: bool,
    /// `false` (the default, like the real service): a stopped runtime is forgotten,
    /// so `GET /sessions/{id}` answers 404. `true`: it stays, with status "stopped",
    /// visible to `GET /sessions/…` but never in `GET /list`.
    pub keep_stopped: bool,
    /// A fixed delay added before every answer (also changeable later with
    /// [`FakeRuntime::set_latency`](super::FakeRuntime::set_latency)), to model a
    /// remote cluster in benchmarks and timeout tests.
    pub latency: Duration,
    /// Worker threads of the fake's own tokio runtime. One is plenty for tests;
    /// benchmarks that hammer the fake may want more so it is not the bottleneck.
    pub worker_threads: usize,
    /// Where to listen. The default `127.0.0.1:0` lets the OS pick a free port, so
    /// tests run in parallel without clashing.
    pub addr: SocketAddr,
    /// Whether requests are recorded from the start (see
    /// [`FakeRuntime::set_recording`](super::FakeRuntime::set_recording)).
    pub record_requests: bool,
}

impl Default for FakeRuntimeOptions {
    fn default() -> Self {
        FakeRuntimeOptions {
            api_key: format!("fake-key-{}", random_hex(16)),
            url_template: "http://127.0.0.1:9/{runtime_id}".to_owned(),
            start_status: "running".to_owned(),
            resume_returns_key: true,
            keep_stopped: false,
            latency: Duration::ZERO,
            worker_threads: 1,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            record_requests: true,
        }
    }
}
