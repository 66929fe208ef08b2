//! How a fake agent server behaves from the moment it starts.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Settings for [`FakeAgentServer::start_with`](super::FakeAgentServer::start_with).
///
/// Build it with struct-update syntax so new fields never break callers:
/// `FakeAgentServerOptions { worker_threads: 4, ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct FakeAgentServerOptions {
    /// Worker threads of the fake's own tokio runtime. One is plenty for tests;
    /// benchmarks that sync hundreds of agents at once may want more so the fake is
    /// not the bottleneck.
    pub worker_threads: usize,
    /// A fixed delay added before every answer (also changeable later with
    /// [`FakeAgentServer::set_latency`](super::FakeAgentServer::set_latency)), to model
    /// the network between sandboxd and its sandboxes.
    pub latency: Duration,
    /// Whether requests are recorded from the start (see
    /// [`FakeAgentServer::set_recording`](super::FakeAgentServer::set_recording)).
    /// Long benchmarks should turn it off: the log grows without bound.
    pub record_requests: bool,
    /// Where to listen. The default `127.0.0.1:0` lets the OS pick a free port, so
    /// tests run in parallel without clashing.
    pub addr: SocketAddr,
}

impl Default for FakeAgentServerOptions {
    fn default() -> Self {
        FakeAgentServerOptions {
            worker_threads: 1,
            latency: Duration::ZERO,
            record_requests: true,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        }
    }
}
