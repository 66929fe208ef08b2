//! A fake of the remote runtime API (contract section 1), for sandboxd's end-to-end
//! tests and benchmarks.
//!
//! It is a real HTTP/1.1 server on 127.0.0.1 (hyper and axum), not a mock: sandboxd talks to it
//! over TCP exactly as it talks to the cluster, so the tests cover its HTTP client,
//! headers, timeouts and error handling too. On top of the wire API, the handle lets a
//! test arrange the cluster's state (insert, corrupt or lose runtimes), see what
//! sandboxd sent, and inject the failures the contract warns about.
//!
//! Invariants:
//! - Every request is recorded (when recording is on) before anything else happens to
//!   it, so refused, faulted and dropped requests show up too.
//! - Order of handling: record, latency and `Delay` faults, other faults, the API key
//!   check (401), then the route.
//! - Runtime objects are raw JSON maps; the fake never assumes the fields a test left
//!   are well-formed when serving them.
//! - Dropping the [`FakeRuntime`] (or [`FakeRuntime::shutdown`]) closes the port and
//!   joins the server's thread before returning.
//!
//! ```
//! use sandboxd_tests::fake_runtime::{Fault, FakeRuntime};
//!
//! let fake = FakeRuntime::start();
//! let runtime_id = fake.insert_runtime("sandbox-1", "paused");
//! fake.inject(Fault::status(503, r#"{"detail":"busy"}"#).on("GET", "/list").once());
//! assert!(fake.url().starts_with("http://127.0.0.1:"));
//! assert!(runtime_id.starts_with("rt-"));
//! ```

mod faults;
mod options;
mod recording;
mod routes;
mod runtime_object;
mod state;

#[cfg(test)]
mod tests;

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

pub use faults::{Fault, FaultAction};
pub use options::FakeRuntimeOptions;
pub use recording::RecordedRequest;

use crate::serve::ServerThread;
use state::{Entry, Shared, lock};

/// A running fake runtime API. Cheap to share by reference across threads; every
/// method is safe to call while the server is answering.
pub struct FakeRuntime {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    /// Dropping this (with the handle) stops the server and joins its thread.
    server: Mutex<ServerThread>,
}

impl FakeRuntime {
    /// Starts a fake with the default options on a free port.
    ///
    /// # Panics
    /// If the port cannot be bound or the thread cannot start: a test cannot go on
    /// without its peer, and the panic message says why.
    pub fn start() -> FakeRuntime {
        FakeRuntime::start_with(FakeRuntimeOptions::default())
    }

    /// Starts a fake with these options.
    ///
    /// # Panics
    /// As [`start`](Self::start); use [`try_start_with`](Self::try_start_with) to get
    /// the error instead.
    pub fn start_with(options: FakeRuntimeOptions) -> FakeRuntime {
        match FakeRuntime::try_start_with(options) {
            Ok(fake) => fake,
            Err(error) => panic!("cannot start the fake runtime API: {error}"),
        }
    }

    /// Starts a fake with these options, or says why it could not.
    pub fn try_start_with(options: FakeRuntimeOptions) -> io::Result<FakeRuntime> {
        let listener = TcpListener::bind(options.addr)?;
        let mut addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(&options));
        let router = routes::router(Arc::clone(&shared));
        let serving = Arc::clone(&shared);
        let server = ServerThread::spawn(
            "fake-runtime",
            listener,
            options.worker_threads,
            move |request| routes::handle(Arc::clone(&serving), router.clone(), request),
        )?;
        // Listening on 0.0.0.0 still has to give clients an address they can dial.
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        Ok(FakeRuntime {
            shared,
            addr,
            url: format!("http://{addr}"),
            server: Mutex::new(server),
        })
    }

    /// The base URL, e.g. `http://127.0.0.1:40123` (no trailing slash): sandboxd's
    /// runtime `api_url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The key every request must carry in `X-API-Key`.
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// Stops the server: the port closes, open connections are cut, and the thread is
    /// joined before this returns. The state stays readable (requests, runtimes), so a
    /// test can simulate "the runtime API is down" and still inspect what happened.
    /// Idempotent; dropping the handle does the same.
    pub fn shutdown(&self) {
        lock(&self.server).stop();
    }

    // ---- The cluster's state ------------------------------------------------------

    /// Creates a runtime for `session_id` with `status`, as if `/start` had run
    /// earlier (no start request is stored). Replaces any runtime of that session.
    /// Returns the new runtime id.
    pub fn insert_runtime(&self, session_id: &str, status: &str) -> String {
        let runtime_id = runtime_object::new_runtime_id();
        let object =
            runtime_object::new_runtime(&runtime_id, session_id, &self.shared.url_template, status);
        lock(&self.shared.store).insert(Entry {
            runtime_id: runtime_id.clone(),
            session_id: session_id.to_owned(),
            object,
            start_request: None,
        });
        runtime_id
    }

    /// Sets the runtime's `status` (and the matching `pod_status`; use
    /// [`set_field`](Self::set_field) afterwards for a contradicting one). Setting
    /// "stopped" takes it out of `/list`.
    ///
    /// # Panics
    /// If no runtime exists for `session_id` (a mistake in the test).
    pub fn set_status(&self, session_id: &str, status: &str) {
        self.with_runtime(session_id, "set_status", |entry| {
            runtime_object::set_status(&mut entry.object, status);
        });
    }

    /// Sets any field of the runtime object to any JSON value, e.g. `"status": 5` or
    /// `"url": null`, to test that sandboxd tolerates it.
    ///
    /// # Panics
    /// If no runtime exists for `session_id`.
    pub fn set_field(&self, session_id: &str, key: &str, value: Value) {
        self.with_runtime(session_id, "set_field", |entry| {
            entry.object.insert(key.to_owned(), value);
        });
    }

    /// Removes a field of the runtime object; returns its old value.
    ///
    /// # Panics
    /// If no runtime exists for `session_id`.
    pub fn remove_field(&self, session_id: &str, key: &str) -> Option<Value> {
        self.with_runtime(session_id, "remove_field", |entry| entry.object.remove(key))
    }

    /// The runtime object of a session as the API would serve it.
    pub fn runtime(&self, session_id: &str) -> Option<Value> {
        lock(&self.shared.store)
            .session(session_id)
            .map(|entry| Value::Object(entry.object.clone()))
    }

    /// The id the runtime of a session was created with (even if a test has since
    /// changed or removed its `runtime_id` field).
    pub fn runtime_id(&self, session_id: &str) -> Option<String> {
        lock(&self.shared.store)
            .session(session_id)
            .map(|entry| entry.runtime_id.clone())
    }

    /// Every runtime object (stopped ones too, with `keep_stopped`), in creation order.
    pub fn runtimes(&self) -> Vec<Value> {
        lock(&self.shared.store)
            .iter()
            .map(|entry| Value::Object(entry.object.clone()))
            .collect()
    }

    /// Makes the runtime vanish, as if the cluster lost it; returns its last object.
    pub fn remove_runtime(&self, session_id: &str) -> Option<Value> {
        lock(&self.shared.store)
            .remove_session(session_id)
            .map(|entry| Value::Object(entry.object))
    }

    /// The `POST /start` body that created the session's current runtime.
    pub fn start_request(&self, session_id: &str) -> Option<Value> {
        lock(&self.shared.store)
            .session(session_id)
            .and_then(|entry| entry.start_request.clone())
    }

    fn with_runtime<T>(&self, session_id: &str, what: &str, f: impl FnOnce(&mut Entry) -> T) -> T {
        let outcome = lock(&self.shared.store).session_mut(session_id).map(f);
        // The lock is released before panicking so other threads are not poisoned.
        match outcome {
            Some(outcome) => outcome,
            None => panic!("fake runtime {what}: no runtime for session {session_id:?}"),
        }
    }

    // ---- Recorded requests --------------------------------------------------------

    /// Every recorded request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.snapshot()
    }

    /// How many recorded requests had this method (any case) and a path starting with
    /// `path_prefix`. Note that `/sessions/` also counts `/sessions/batch`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.shared.recorder.count(method, path_prefix)
    }

    /// Forgets the recorded requests (the total keeps counting).
    pub fn clear_requests(&self) {
        self.shared.recorder.clear();
    }

    /// Turns recording on or off; off, a request costs one atomic increment. The log
    /// grows without bound while on, so long benchmarks should turn it off.
    pub fn set_recording(&self, enabled: bool) {
        self.shared.recorder.set_enabled(enabled);
    }

    /// How many requests arrived since start, recorded or not.
    pub fn total_requests(&self) -> u64 {
        self.shared.recorder.total()
    }

    // ---- Faults and latency -------------------------------------------------------

    /// Adds a fault (see [`Fault`] for matching and ordering).
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).push(fault);
    }

    /// How many requests met a fault since start.
    pub fn faults_applied(&self) -> u64 {
        lock(&self.shared.faults).applied()
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Sets the delay added before every answer from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.set_latency(latency);
    }
}

impl std::fmt::Debug for FakeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeRuntime")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}
