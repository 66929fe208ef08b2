//! Runtime objects as the runtime API sends them, and the random values in them.
//!
//! Objects are raw JSON maps, never a typed struct: the contract says any field may be
//! missing or malformed, and tests must be able to produce exactly that.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde_json::{Map, Value, json};

/// A fresh runtime object, shaped like the real service's answer to `POST /start`.
pub(crate) fn new_runtime(
    runtime_id: &str,
    session_id: &str,
    url_template: &str,
    status: &str,
) -> Map<String, Value> {
    let mut object = Map::new();
    object.insert("runtime_id".to_owned(), json!(runtime_id));
    object.insert("session_id".to_owned(), json!(session_id));
    object.insert(
        "url".to_owned(),
        json!(render_url(url_template, runtime_id, session_id)),
    );
    object.insert("session_api_key".to_owned(), json!(new_session_api_key()));
    object.insert("restart_count".to_owned(), json!(0));
    object.insert("restart_reasons".to_owned(), json!([]));
    set_status(&mut object, status);
    object
}

/// Sets `status` and the `pod_status` an older service would report alongside it, so
/// the pod fallback (used when `status` is absent) agrees with the status.
pub(crate) fn set_status(object: &mut Map<String, Value>, status: &str) {
    object.insert("status".to_owned(), json!(status));
    object.insert("pod_status".to_owned(), json!(pod_status_for(status)));
}

/// Whether the object's `status` says "stopped" (any case). Stopped runtimes leave
/// `GET /list` and may be replaced by a new `POST /start` for the same session.
pub(crate) fn is_stopped(object: &Map<String, Value>) -> bool {
    object
        .get("status")
        .and_then(Value::as_str)
        .is_some_and(|status| status.eq_ignore_ascii_case("stopped"))
}

fn pod_status_for(status: &str) -> &'static str {
    match status.to_ascii_lowercase().as_str() {
        "running" => "ready",
        "starting" => "pending",
        "error" => "failed",
        "paused" | "stopped" => "not found",
        _ => "unknown",
    }
}

pub(crate) fn render_url(template: &str, runtime_id: &str, session_id: &str) -> String {
    template
        .replace("{runtime_id}", runtime_id)
        .replace("{session_id}", session_id)
}

pub(crate) fn new_runtime_id() -> String {
    format!("rt-{}", random_hex(12))
}

pub(crate) fn new_session_api_key() -> String {
    random_hex(16)
}

/// `len` random bytes as lower-case hex.
pub(crate) fn random_hex(len: usize) -> String {
    let mut bytes = vec![0u8; len];
    if getrandom::fill(&mut bytes).is_err() {
        fallback_fill(&mut bytes);
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Used only if the OS random source fails: keys must still differ from each other
/// (rotation is tested), and a fake has no secrets worth more than that.
fn fallback_fill(bytes: &mut [u8]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for chunk in bytes.chunks_mut(8) {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let value = RandomState::new().hash_one((n, SystemTime::now()));
        chunk.copy_from_slice(&value.to_le_bytes()[..chunk.len()]);
    }
}
