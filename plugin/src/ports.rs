//! The plugin's view of its imports, as small traits.
//!
//! In the component these are implemented by the WIT imports (`glue`); in native
//! tests by in-memory fakes (`testing`). The service code sees only these traits,
//! so every rule can be tested without a host.

use std::fmt;

/// HTTP method of an outbound request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        })
    }
}

/// A secret the host attaches on the plugin's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    None,
    RuntimeApi,
    /// Sign the body with the secret of the event callback with this id.
    CallbackSignature(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub credential: Credential,
    pub timeout_ms: Option<u32>,
}

impl Request {
    pub fn new(method: Method, url: String) -> Self {
        Request {
            method,
            url,
            headers: Vec::new(),
            body: None,
            credential: Credential::None,
            timeout_ms: None,
        }
    }

    /// Attach a JSON body (and its content type).
    pub fn json(mut self, body: Vec<u8>) -> Self {
        self.headers
            .push(("content-type".into(), "application/json".into()));
        self.body = Some(body);
        self
    }

    pub fn credential(mut self, credential: Credential) -> Self {
        self.credential = credential;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// A response with no headers.
    pub fn new(status: u16, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why no response arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    Timeout,
    Connect(String),
    Denied(String),
    InvalidRequest(String),
    TooLarge,
    Transport(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Timeout => f.write_str("timed out"),
            HttpError::Connect(m) => write!(f, "could not connect: {m}"),
            HttpError::Denied(m) => write!(f, "refused by the host's policy: {m}"),
            HttpError::InvalidRequest(m) => write!(f, "invalid request: {m}"),
            HttpError::TooLarge => f.write_str("response body too large"),
            HttpError::Transport(m) => write!(f, "connection failed: {m}"),
        }
    }
}

/// A batch of requests on the wire (see [`Http::start_batch`]).
pub type BatchId = u32;

pub trait Http {
    fn send(&self, request: Request) -> Result<Response, HttpError>;
    fn send_batch(&self, requests: Vec<Request>) -> Vec<Result<Response, HttpError>>;
    /// Start a batch and return at once; its answers come from `finish_batch`.
    fn start_batch(&self, requests: Vec<Request>) -> Result<BatchId, HttpError>;
    fn finish_batch(&self, batch: BatchId) -> Result<Vec<Result<Response, HttpError>>, HttpError>;
}

/// One end of a key range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Unbounded,
    Included(Vec<u8>),
    Excluded(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub table: &'static str,
    pub start: Bound,
    pub end: Bound,
    pub reverse: bool,
    pub limit: u32,
}

/// One step of an atomic commit; preconditions are checked before anything is
/// written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put {
        table: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        table: &'static str,
        key: Vec<u8>,
    },
    RequireAbsent {
        table: &'static str,
        key: Vec<u8>,
    },
    RequirePresent {
        table: &'static str,
        key: Vec<u8>,
    },
    RequireValue {
        table: &'static str,
        key: Vec<u8>,
        value: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The precondition at this index of the op list failed.
    Conflict(u32),
    Invalid(String),
    Backend(String),
}

pub type Entry = (Vec<u8>, Vec<u8>);

pub trait Store {
    fn get(&self, table: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn get_many(
        &self,
        table: &'static str,
        keys: &[Vec<u8>],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError>;
    fn scan(&self, scan: Scan) -> Result<Vec<Entry>, StoreError>;
    /// Atomically and durably.
    fn commit(&self, ops: Vec<Op>) -> Result<(), StoreError>;
    /// Atomically and visibly at once, durable with the next `commit` (the
    /// contract's `commit-relaxed`): only for what a crash can be settled
    /// without.
    fn commit_relaxed(&self, ops: Vec<Op>) -> Result<(), StoreError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Logging, clock and randomness: the ambient facilities of a call.
pub trait Env {
    /// Microseconds since the Unix epoch.
    fn now_micros(&self) -> i64;
    /// 16 bytes from a cryptographically secure source.
    fn random_16(&self) -> [u8; 16];
    fn log(&self, level: Level, message: &str, fields: &[(&str, &str)]);
    /// Wait, for a retry's backoff. The host suspends the call, not a thread.
    fn sleep_ms(&self, ms: u64);
}
