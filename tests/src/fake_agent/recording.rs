//! The record of what sandboxd sent, so tests can assert on calls, not just outcomes
//! ("one event search per conversation", "no search for an idle agent", "the session
//! key header is set").

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bytes::Bytes;
use hyper::http::request::Parts;
use serde_json::Value;

use super::state::lock;

/// One request as the fake received it, including requests it refused or dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Upper-case method, e.g. "GET".
    pub method: String,
    /// The whole path without the query, e.g. "/sb-1/api/conversations/search".
    pub path: String,
    /// The prefix of the agent the request reached ("" for the root agent), or `None`
    /// when it reached no agent (unknown or removed prefix).
    pub agent: Option<String>,
    /// The path inside the agent, e.g. "/api/conversations/search" (the whole path
    /// when `agent` is `None`).
    pub agent_path: String,
    /// The raw query string without `?` ("" when absent), e.g. "limit=5&page_id=x".
    pub query: String,
    /// Headers in arrival order, names in lower case; values that are not UTF-8 are
    /// converted lossily.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The first value of a header (the name is matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body parsed as JSON, or `None` when it is not JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The last value of a query parameter, decoded (the one the server uses).
    pub fn query_value(&self, name: &str) -> Option<String> {
        form_urlencoded::parse(self.query.as_bytes())
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.into_owned())
            .last()
    }
}

/// The request log. Recording copies headers into strings and holds the body (a cheap
/// reference-counted clone); benchmarks switch it off and still read the always-on
/// total.
pub(crate) struct Recorder {
    enabled: AtomicBool,
    total: AtomicU64,
    log: Mutex<Vec<RecordedRequest>>,
}

impl Recorder {
    pub fn new(enabled: bool) -> Recorder {
        Recorder {
            enabled: AtomicBool::new(enabled),
            total: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
        }
    }

    pub fn record(&self, parts: &Parts, body: &Bytes, agent: Option<&str>, agent_path: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let request = RecordedRequest {
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            agent: agent.map(str::to_owned),
            agent_path: agent_path.to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), value)
                })
                .collect(),
            body: body.clone(),
        };
        lock(&self.log).push(request);
    }

    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        lock(&self.log).clone()
    }

    pub fn count(&self, filter: impl Fn(&RecordedRequest) -> bool) -> usize {
        lock(&self.log)
            .iter()
            .filter(|request| filter(request))
            .count()
    }

    pub fn clear(&self) {
        lock(&self.log).clear();
    }
}
