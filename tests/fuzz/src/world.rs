//! What the fuzz targets share: a world of the plugin's imports to run the
//! service in, a way to cut one fuzz input into several bodies, and the checks
//! more than one target makes.
//!
//! The store is the plugin's own in-memory one (its `testing` feature), which
//! refuses what the host's storage refuses (the limits of
//! `sandboxd_contract::storage`), so a request the real host would turn into a
//! 500 fails here too. The environment and HTTP are the fuzzer's own: a quiet
//! clock that keeps nothing (runs are millions of calls), and answers from a
//! function of the input.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use sandboxd_plugin::error::Error;
use sandboxd_plugin::model::{RuntimeClass, SandboxSpec, Settings};
use sandboxd_plugin::ports::{BatchId, Env, Http, HttpError, Level, Request, Response, Store};
use sandboxd_plugin::runtime::Runtime;
use sandboxd_plugin::schema::conversations::{self as conv, ConversationRecord};
use sandboxd_plugin::schema::events::{self, EVENT_IDS, EVENTS};
use sandboxd_plugin::schema::{Phase, SandboxRecord};
use sandboxd_plugin::service::Service;
use sandboxd_plugin::session_key;
pub use sandboxd_plugin::testing::MemStore;
use serde_json::Value;

/// The runtime API's base URL in every world.
pub const RUNTIME_URL: &str = "http://runtime.test";

/// A fixed clock start: 2026-11-26T07:13:21Z.
pub const NOW_US: i64 = 1_795_677_201_000_000;

/// Cut `data` at its first `N - 1` NUL bytes into `N` parts (missing ones are
/// empty). JSON and TOML never contain a raw NUL, so a seed is written as its
/// bodies joined by `\0`.
pub fn parts<const N: usize>(data: &[u8]) -> [&[u8]; N] {
    let mut out = [&data[..0]; N];
    let mut rest = data;
    for slot in out.iter_mut().take(N - 1) {
        match rest.iter().position(|b| *b == 0) {
            Some(i) => {
                *slot = &rest[..i];
                rest = &rest[i + 1..];
            }
            None => {
                *slot = rest;
                rest = &rest[rest.len()..];
                break;
            }
        }
    }
    if !rest.is_empty() {
        out[N - 1] = rest;
    }
    out
}

/// A clock that moves a microsecond per reading, counting randomness, no logs,
/// and sleeps that only move the clock.
pub struct QuietEnv {
    now_us: Cell<i64>,
    random: Cell<u128>,
}

impl Default for QuietEnv {
    fn default() -> Self {
        QuietEnv {
            now_us: Cell::new(NOW_US),
            random: Cell::new(1),
        }
    }
}

impl Env for QuietEnv {
    fn now_micros(&self) -> i64 {
        let now = self.now_us.get();
        self.now_us.set(now + 1);
        now
    }

    fn random_16(&self) -> [u8; 16] {
        let n = self.random.get();
        self.random.set(
            n.wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407),
        );
        n.to_be_bytes()
    }

    fn log(&self, _: Level, _: &str, _: &[(&str, &str)]) {}

    fn sleep_ms(&self, ms: u64) {
        let us = i64::try_from(ms)
            .unwrap_or(i64::MAX / 2)
            .saturating_mul(1000);
        self.now_us.set(self.now_us.get().saturating_add(us));
    }
}

/// What answers the plugin's requests.
pub type Responder<'a> = Box<dyn Fn(&Request) -> Result<Response, HttpError> + 'a>;

/// HTTP answered by a function; batches are answered when started.
pub struct FnHttp<'a> {
    respond: Responder<'a>,
    open: RefCell<BTreeMap<BatchId, Vec<Result<Response, HttpError>>>>,
}

impl<'a> FnHttp<'a> {
    pub fn new(respond: impl Fn(&Request) -> Result<Response, HttpError> + 'a) -> Self {
        FnHttp {
            respond: Box::new(respond),
            open: RefCell::new(BTreeMap::new()),
        }
    }
}

impl Http for FnHttp<'_> {
    fn send(&self, request: Request) -> Result<Response, HttpError> {
        (self.respond)(&request)
    }

    fn send_batch(&self, requests: Vec<Request>) -> Vec<Result<Response, HttpError>> {
        requests.into_iter().map(|r| self.send(r)).collect()
    }

    fn start_batch(&self, requests: Vec<Request>) -> Result<BatchId, HttpError> {
        let answers = self.send_batch(requests);
        let mut open = self.open.borrow_mut();
        let id = open.keys().next_back().map_or(0, |k| k + 1);
        open.insert(id, answers);
        Ok(id)
    }

    fn finish_batch(&self, batch: BatchId) -> Result<Vec<Result<Response, HttpError>>, HttpError> {
        self.open
            .borrow_mut()
            .remove(&batch)
            .ok_or_else(|| HttpError::InvalidRequest(format!("no open batch {batch}")))
    }
}

/// A 200 answer with this body.
pub fn ok(body: &[u8]) -> Result<Response, HttpError> {
    Ok(Response::new(200, body.to_vec()))
}

/// The operator's settings every world uses.
pub fn settings() -> Settings {
    Settings {
        runtime_api_url: RUNTIME_URL.into(),
        web_url: None,
        resource_factor: 1,
        runtime_class: RuntimeClass::Gvisor,
        start_sandbox_timeout_secs: 120,
        max_num_sandboxes: 10,
        specs: vec![SandboxSpec {
            id: "image:default".into(),
            command: None,
            initial_env: Vec::new(),
            working_dir: "/workspace/project".into(),
            created_at: "2026-01-01T00:00:00.000000Z".into(),
        }],
        agent_request_timeout_ms: 10_000,
        spec_policies: Vec::new(),
        default_policy: Default::default(),
        teardown_grace_secs: 30,
        history_retention_secs: 604_800,
        warm_pools: Vec::new(),
    }
}

/// A store, an environment, settings and HTTP, shared by the calls of one run.
pub struct World<'a> {
    pub store: MemStore,
    pub env: QuietEnv,
    pub settings: Settings,
    pub http: FnHttp<'a>,
}

impl<'a> World<'a> {
    pub fn new(respond: impl Fn(&Request) -> Result<Response, HttpError> + 'a) -> Self {
        World {
            store: MemStore::default(),
            env: QuietEnv::default(),
            settings: settings(),
            http: FnHttp::new(respond),
        }
    }

    /// The service acting for `caller` (none: admin, the poller, webhooks).
    pub fn service(&self, caller: Option<&str>) -> Service<'_> {
        Service {
            store: &self.store,
            http: &self.http,
            env: &self.env,
            settings: &self.settings,
            caller: caller.map(str::to_owned),
        }
    }

    /// Store a started sandbox owned by `owner` whose session key is `key`.
    pub fn put_sandbox(&self, id: &str, owner: Option<&str>, key: &str, created_at_us: i64) {
        let record = SandboxRecord {
            id: id.into(),
            created_by_user_id: owner.map(str::to_owned),
            sandbox_spec_id: "image:default".into(),
            session_api_key_hash: Some(session_key::hash(key)),
            created_at_us,
            started_at_us: created_at_us,
            phase: Phase::Started,
            status: None,
            status_at_us: 0,
            retired_key: None,
            acted: None,
            warm: None,
        };
        must(self.store.commit(record.insert_ops()));
    }

    /// Store an empty conversation of `sandbox_id`, owned by `owner`.
    pub fn put_conversation(&self, id: &str, sandbox_id: &str, owner: Option<&str>, order_us: i64) {
        let record = ConversationRecord {
            id: id.into(),
            sandbox_id: sandbox_id.into(),
            created_by_user_id: owner.map(str::to_owned),
            title: None,
            execution_status: None,
            status_at_us: 0,
            llm_model: None,
            stats: None,
            metrics: None,
            tags: None,
            created_at: None,
            updated_at: None,
            raw: None,
            max_event_us: None,
            event_count: 0,
            order_us,
        };
        must(self.store.commit(record.insert_ops()));
    }

    /// Every stored conversation.
    pub fn conversations(&self) -> Vec<ConversationRecord> {
        self.store
            .rows_with_prefix(conv::CONVERSATIONS, b"")
            .iter()
            .map(|(_, v)| {
                ConversationRecord::decode(v)
                    .unwrap_or_else(|e| panic!("a stored conversation is unreadable: {e}"))
            })
            .collect()
    }

    /// The invariants of the event store: each conversation's `event_count` is
    /// the number of its events, and each event has its two entries.
    pub fn check_event_store(&self) {
        for c in self.conversations() {
            let prefix = events::conversation_prefix(&c.key());
            let stored = self.store.rows_with_prefix(EVENTS, &prefix).len();
            let ids = self.store.rows_with_prefix(EVENT_IDS, &prefix).len();
            assert_eq!(ids, stored, "events and event ids of {} differ", c.id);
            assert_eq!(
                c.event_count, stored as u64,
                "event_count of {} is not its number of events",
                c.id
            );
        }
    }
}

/// A step of a world's setup, which cannot fail.
fn must<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("setting up the world failed: {e:?}"))
}

/// Whether an error is one a caller may legitimately get for bad input, as
/// opposed to a fault (storage refused a request, internal error: a 500).
pub fn is_input_error(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidInput(_) | Error::NotFound(_) | Error::Unauthorized(_)
    )
}

/// The runtime a JSON value describes, read the plain way (for comparison with
/// the plugin's tolerant reader): a field is kept when it is a string.
pub fn runtime_of_value(v: &Value) -> Option<Runtime> {
    let o = v.as_object()?;
    let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
    Some(Runtime {
        runtime_id: s("runtime_id"),
        session_id: s("session_id"),
        url: s("url"),
        session_api_key: s("session_api_key"),
        status: s("status"),
        pod_status: s("pod_status"),
        status_detail: s("status_detail"),
    })
}

/// The value of query parameter `name` in `url`, percent-decoded.
pub fn query_param(url: &str, name: &str) -> Option<Vec<u8>> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode(v))
    })
}

/// Percent-decoding of what `urls::percent_encode` wrote.
pub fn percent_decode(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}
