//! The state one fake runtime API shares between its server thread and the test's
//! handle: the runtimes, the recorded requests, the pending faults.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{Map, Value};

use super::faults::FaultSet;
use super::options::FakeRuntimeOptions;
use super::recording::Recorder;

/// Everything the server and the handle both touch. Fixed settings are plain fields;
/// what tests change while the server runs sits behind a lock or an atomic.
pub(crate) struct Shared {
    pub api_key: String,
    pub url_template: String,
    pub start_status: String,
    pub resume_returns_key: bool,
    pub keep_stopped: bool,
    latency_nanos: AtomicU64,
    pub recorder: Recorder,
    pub faults: Mutex<FaultSet>,
    pub store: Mutex<Store>,
}

impl Shared {
    pub fn new(options: &FakeRuntimeOptions) -> Shared {
        let shared = Shared {
            api_key: options.api_key.clone(),
            url_template: options.url_template.clone(),
            start_status: options.start_status.clone(),
            resume_returns_key: options.resume_returns_key,
            keep_stopped: options.keep_stopped,
            latency_nanos: AtomicU64::new(0),
            recorder: Recorder::new(options.record_requests),
            faults: Mutex::new(FaultSet::default()),
            store: Mutex::new(Store::default()),
        };
        shared.set_latency(options.latency);
        shared
    }

    pub fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos.load(Ordering::Relaxed))
    }

    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency_nanos.store(nanos, Ordering::Relaxed);
    }
}

/// Locks a mutex even if a panicking test thread poisoned it: the data is still
/// consistent (every critical section is a few map operations), and a poisoned lock
/// must not turn into panics on the server's request path.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One runtime the fake knows about.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The id assigned at creation. Lookups by runtime id use this, not the object's
    /// `runtime_id` field, so a test can corrupt that field and still stop the runtime.
    pub runtime_id: String,
    /// The session id it was created for (same reasoning as `runtime_id`).
    pub session_id: String,
    /// The object served on the wire, exactly as tests left it.
    pub object: Map<String, Value>,
    /// The `POST /start` body, when the runtime was created over HTTP.
    pub start_request: Option<Value>,
}

/// The runtimes, in creation order, indexed by session id and runtime id.
///
/// Creation order is the order of `GET /list` (stable answers make test failures
/// readable); the indices keep `GET /sessions/batch` cheap when benchmarks hold
/// thousands of runtimes.
#[derive(Debug, Default)]
pub(crate) struct Store {
    entries: BTreeMap<u64, Entry>,
    by_session: HashMap<String, u64>,
    by_runtime: HashMap<String, u64>,
    next_seq: u64,
}

impl Store {
    /// Adds a runtime, replacing any runtime of the same session (a new `/start` after
    /// a kept stopped runtime, or a test's `insert_runtime`).
    pub fn insert(&mut self, entry: Entry) {
        self.remove_session(&entry.session_id);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.by_session.insert(entry.session_id.clone(), seq);
        self.by_runtime.insert(entry.runtime_id.clone(), seq);
        self.entries.insert(seq, entry);
    }

    pub fn session(&self, session_id: &str) -> Option<&Entry> {
        self.by_session
            .get(session_id)
            .and_then(|seq| self.entries.get(seq))
    }

    pub fn session_mut(&mut self, session_id: &str) -> Option<&mut Entry> {
        self.by_session
            .get(session_id)
            .and_then(|seq| self.entries.get_mut(seq))
    }

    pub fn runtime_mut(&mut self, runtime_id: &str) -> Option<&mut Entry> {
        self.by_runtime
            .get(runtime_id)
            .and_then(|seq| self.entries.get_mut(seq))
    }

    pub fn remove_session(&mut self, session_id: &str) -> Option<Entry> {
        let seq = self.by_session.remove(session_id)?;
        let entry = self.entries.remove(&seq)?;
        self.by_runtime.remove(&entry.runtime_id);
        Some(entry)
    }

    pub fn remove_runtime(&mut self, runtime_id: &str) -> Option<Entry> {
        let seq = self.by_runtime.remove(runtime_id)?;
        let entry = self.entries.remove(&seq)?;
        self.by_session.remove(&entry.session_id);
        Some(entry)
    }

    /// All runtimes in creation order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }
}
