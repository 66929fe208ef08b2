//! The load test: many concurrent clients, each its own user, mixing every
//! operation against one sandboxd whose runtime API fails a small share of its
//! requests, for a bounded time. Shared by `tests/tests/e2e/load.rs` (which asserts)
//! and the `load-test` binary (which prints the README table).
//!
//! Each client keeps a model of its own sandboxes (ids, whether its session key
//! is known to work) and of the events it pushed, so the run can end with a check
//! that the store agrees with the runtime and with what every client was told:
//!
//! - every sandbox whose start was answered 200 and not deleted has its record;
//! - every runtime the fake runtime still runs has a record (none orphaned);
//! - a record without a runtime is one whose start was answered "unknown";
//! - every event a webhook accepted is stored exactly once.
//!
//! What counts as an expected error: 502 or 504 naming the runtime API (a fault
//! sandboxd passed on, as the fault table says), and a delete's 503 asking to
//! be retried. Anything else that is not 2xx is
//! unexpected, and kept (up to a few samples) for the report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

use crate::fake_agent::{FakeAgentServer, FakeAgentServerOptions};
use crate::fake_runtime::{FakeRuntime, FakeRuntimeOptions, Fault};
use crate::sandboxd::{Options, Sandboxd};

/// The shape of a run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub clients: usize,
    pub duration: Duration,
    /// The share of runtime API requests that meet a fault is `1 / fault_one_in`.
    pub fault_one_in: u32,
    /// At most this many sandboxes per client at a time.
    pub sandboxes_per_client: usize,
    pub seed: u64,
}

impl Plan {
    /// The default plan, shaped by `LOAD_SECS`, `LOAD_CLIENTS` and `LOAD_SEED`.
    pub fn from_env() -> Plan {
        let env_or = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let default = Plan::default();
        Plan {
            clients: env_or("LOAD_CLIENTS", default.clients as u64) as usize,
            duration: Duration::from_secs(env_or("LOAD_SECS", default.duration.as_secs())),
            seed: env_or("LOAD_SEED", default.seed),
            ..default
        }
    }
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            clients: 256,
            duration: Duration::from_secs(60),
            fault_one_in: 100,
            sandboxes_per_client: 3,
            seed: 1,
        }
    }
}

/// The operations a client mixes, with their weights.
const OPS: [(Op, u32); 12] = [
    (Op::Get, 20),
    (Op::Search, 12),
    (Op::BatchGet, 8),
    (Op::Start, 8),
    (Op::Pause, 4),
    (Op::Resume, 5),
    (Op::Delete, 6),
    (Op::Webhook, 12),
    (Op::Conversations, 6),
    (Op::Events, 8),
    (Op::Specs, 3),
    (Op::ConversationInfo, 8),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    Get,
    Search,
    BatchGet,
    Start,
    Pause,
    Resume,
    Delete,
    Webhook,
    Conversations,
    Events,
    Specs,
    ConversationInfo,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Report {
    pub elapsed: Duration,
    pub requests: usize,
    /// Sorted latencies, per operation.
    pub latencies: BTreeMap<Op, Vec<Duration>>,
    pub expected_errors: usize,
    pub unexpected_errors: usize,
    /// A few of the unexpected errors: operation, status, body.
    pub unexpected_samples: Vec<String>,
    /// Resident memory of sandboxd, sampled through the run (KiB).
    pub rss_kib: Vec<(Duration, u64)>,
    /// Peak resident memory (`VmHWM`, KiB).
    pub peak_kib: u64,
    /// What the end-of-run check found wrong (empty: the store is consistent).
    pub inconsistencies: Vec<String>,
    pub runtime_requests: u64,
    pub faults_injected: u64,
    pub sandboxes_at_end: usize,
    pub events_stored: usize,
}

impl Report {
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// All operations together, sorted.
    pub fn all_latencies(&self) -> Vec<Duration> {
        let mut all: Vec<Duration> = self.latencies.values().flatten().copied().collect();
        all.sort();
        all
    }

    /// The largest resident size seen in the given share of the run (0.0..1.0).
    pub fn rss_peak_between(&self, from: f64, to: f64) -> u64 {
        let total = self.elapsed.as_secs_f64();
        self.rss_kib
            .iter()
            .filter(|(t, _)| {
                let share = t.as_secs_f64() / total;
                share >= from && share <= to
            })
            .map(|(_, kib)| *kib)
            .max()
            .unwrap_or(0)
    }

    /// A Markdown table: throughput, latency percentiles, memory.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| operation | requests | p50 | p99 | p99.9 |\n|---|---:|---:|---:|---:|\n",
        );
        let row = |name: &str, l: &[Duration]| {
            format!(
                "| {name} | {} | {} | {} | {} |\n",
                l.len(),
                ms(percentile(l, 0.50)),
                ms(percentile(l, 0.99)),
                ms(percentile(l, 0.999)),
            )
        };
        for (op, l) in &self.latencies {
            out.push_str(&row(&format!("{op:?}"), l));
        }
        out.push_str(&row("**all**", &self.all_latencies()));
        out.push_str(&format!(
            "\n{} requests in {:.1} s: **{:.0} requests/s**; {} expected errors (runtime faults passed on), {} unexpected.\n\
             Runtime API: {} requests, {} faults injected. Peak memory (VmHWM) {:.1} MiB; \
             resident peak in the 2nd quarter {:.1} MiB, 3rd {:.1} MiB, last {:.1} MiB.\n\
             At the end: {} sandboxes, {} events stored.\n",
            self.requests,
            self.elapsed.as_secs_f64(),
            self.throughput(),
            self.expected_errors,
            self.unexpected_errors,
            self.runtime_requests,
            self.faults_injected,
            self.peak_kib as f64 / 1024.0,
            self.rss_peak_between(0.25, 0.5) as f64 / 1024.0,
            self.rss_peak_between(0.5, 0.75) as f64 / 1024.0,
            self.rss_peak_between(0.75, 1.0) as f64 / 1024.0,
            self.sandboxes_at_end,
            self.events_stored,
        ));
        out
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A small, seeded pseudo-random source (splitmix64): runs are repeatable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One of a client's sandboxes, as the client understands it.
#[derive(Debug, Clone)]
struct Mine {
    id: String,
    /// The session key, while the client knows a working one (cleared by a pause
    /// attempt, which clears the stored hash first; learned again by a get).
    key: Option<String>,
    /// A pause or a delete was attempted and no resume succeeded since: the
    /// stored key is retired (pause: for webhooks, after the teardown grace)
    /// or revoked (delete) even when the call itself failed, so the client
    /// counts on no key.
    paused: bool,
    /// The conversation this client pushes events for, through webhooks.
    conversation: String,
    /// Ids of events a webhook accepted.
    events: Vec<String>,
}

/// What a client leaves behind for the end-of-run check.
#[derive(Default)]
struct ClientOutcome {
    latencies: HashMap<Op, Vec<Duration>>,
    expected: usize,
    unexpected: usize,
    samples: Vec<String>,
    alive: Vec<Mine>,
    /// Deleted sandboxes' conversations: their events must still be stored.
    retired: Vec<Mine>,
    /// Starts answered "whether the runtime started is unknown".
    unknown_starts: Vec<String>,
}

struct LoadClient {
    http: Client,
    base: String,
    key: String,
    index: usize,
    agents: Arc<FakeAgentServer>,
    rng: Rng,
    out: ClientOutcome,
    mine: Vec<Mine>,
    limit: usize,
    counter: u64,
}

/// The API key of client `i` (each client is its own user).
fn client_key(i: usize) -> String {
    format!("load-client-key-{i:05}-0123456789")
}

const ADMIN_KEY: &str = "load-admin-key-0123456789abcdef";

impl LoadClient {
    async fn call(
        &mut self,
        op: Op,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Option<Value> {
        self.call_with(op, method, path, body, None).await
    }

    /// One request; its latency is recorded and its outcome classified. The
    /// body of a 2xx answer, or `None`.
    async fn call_with(
        &mut self,
        op: Op,
        method: Method,
        path: &str,
        body: Option<Value>,
        session_key: Option<&str>,
    ) -> Option<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        req = match session_key {
            Some(k) => req.header("x-session-api-key", k),
            None => req.bearer_auth(&self.key),
        };
        if let Some(b) = body {
            req = req.json(&b);
        }
        let started = Instant::now();
        let answer = match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let bytes = resp.bytes().await.unwrap_or_default();
                Ok((status, bytes))
            }
            Err(e) => Err(e),
        };
        self.out
            .latencies
            .entry(op)
            .or_default()
            .push(started.elapsed());
        match answer {
            Ok((status, bytes)) if status.is_success() => {
                Some(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
            }
            Ok((status, bytes)) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                // A delete whose stop may work later asks to be retried (503).
                let expected = (matches!(
                    status,
                    StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT
                ) || (op == Op::Delete
                    && status == StatusCode::SERVICE_UNAVAILABLE))
                    && text.contains("runtime");
                if expected {
                    self.out.expected += 1;
                    if op == Op::Start && text.contains("unknown") {
                        // The record is kept until the runtime shows up.
                        if let Some(id) = text.split('\'').nth(1) {
                            self.out.unknown_starts.push(id.to_owned());
                        }
                    }
                } else {
                    self.unexpected(format!("{op:?} {path}: {status} {text}"));
                }
                None
            }
            Err(e) => {
                self.unexpected(format!("{op:?} {path}: transport error {e}"));
                None
            }
        }
    }

    fn unexpected(&mut self, what: String) {
        self.out.unexpected += 1;
        if self.out.samples.len() < 5 {
            self.out.samples.push(what);
        }
    }

    fn pick(&mut self) -> Op {
        let total: u32 = OPS.iter().map(|(_, w)| w).sum();
        let mut roll = (self.rng.next() % u64::from(total)) as u32;
        for (op, w) in OPS {
            if roll < w {
                return op;
            }
            roll -= w;
        }
        Op::Get
    }

    fn any_mine(&mut self) -> Option<usize> {
        (!self.mine.is_empty()).then(|| self.rng.below(self.mine.len()))
    }

    async fn step(&mut self) {
        let mut op = self.pick();
        if self.mine.is_empty() || (op == Op::Start && self.mine.len() >= self.limit) {
            op = if self.mine.is_empty() {
                Op::Start
            } else {
                Op::Get
            };
        }
        match op {
            Op::Start => self.start().await,
            Op::Get => {
                let Some(i) = self.any_mine() else { return };
                let id = self.mine[i].id.clone();
                if let Some(sb) = self
                    .call(
                        Op::Get,
                        Method::GET,
                        &format!("/api/v1/sandboxes/{id}"),
                        None,
                    )
                    .await
                {
                    self.learn_key(i, &sb);
                }
            }
            Op::Search => {
                self.call(
                    Op::Search,
                    Method::GET,
                    "/api/v1/sandboxes/search?limit=20",
                    None,
                )
                .await;
            }
            Op::BatchGet => {
                let ids: Vec<String> = self.mine.iter().map(|m| format!("id={}", m.id)).collect();
                self.call(
                    Op::BatchGet,
                    Method::GET,
                    &format!("/api/v1/sandboxes?{}&id=not-there", ids.join("&")),
                    None,
                )
                .await;
            }
            Op::Pause => {
                let Some(i) = self.any_mine() else { return };
                // The hash is cleared before the runtime is asked, so whatever the
                // answer, the old key stops working.
                self.mine[i].key = None;
                self.mine[i].paused = true;
                let id = self.mine[i].id.clone();
                self.call(
                    Op::Pause,
                    Method::POST,
                    &format!("/api/v1/sandboxes/{id}/pause"),
                    None,
                )
                .await;
            }
            Op::Resume => {
                let Some(i) = self.any_mine() else { return };
                let id = self.mine[i].id.clone();
                if self
                    .call(
                        Op::Resume,
                        Method::POST,
                        &format!("/api/v1/sandboxes/{id}/resume"),
                        None,
                    )
                    .await
                    .is_some()
                {
                    // Keys rotate on resume: the new one comes with the next get.
                    self.mine[i].key = None;
                    self.mine[i].paused = false;
                }
            }
            Op::Delete => {
                let Some(i) = self.any_mine() else { return };
                let id = self.mine[i].id.clone();
                if self
                    .call(
                        Op::Delete,
                        Method::DELETE,
                        &format!("/api/v1/sandboxes/{id}"),
                        None,
                    )
                    .await
                    .is_some()
                {
                    let gone = self.mine.swap_remove(i);
                    self.out.retired.push(gone);
                } else {
                    // Not deleted, but its key was revoked first.
                    self.mine[i].key = None;
                    self.mine[i].paused = true;
                }
            }
            Op::Webhook => {
                let Some(i) = self.any_mine() else { return };
                let Some(key) = self.mine[i].key.clone() else {
                    return;
                };
                let conversation = self.mine[i].conversation.clone();
                let batch: Vec<String> = (0..1 + self.rng.below(3))
                    .map(|_| {
                        self.counter += 1;
                        format!("ev-{}-{}", self.index, self.counter)
                    })
                    .collect();
                let events: Vec<Value> = batch
                    .iter()
                    .enumerate()
                    .map(|(n, id)| {
                        json!({"kind": "MessageEvent", "id": id, "source": "agent",
                               "timestamp": format!("2026-11-26T08:{:02}:{:02}.{:06}", n % 60, self.counter % 60, self.counter)})
                    })
                    .collect();
                if self
                    .call_with(
                        Op::Webhook,
                        Method::POST,
                        &format!("/api/v1/webhooks/events/{conversation}"),
                        Some(Value::Array(events)),
                        Some(&key),
                    )
                    .await
                    .is_some()
                {
                    self.mine[i].events.extend(batch);
                }
            }
            Op::Conversations => {
                let Some(i) = self.any_mine() else { return };
                let id = self.mine[i].id.clone();
                self.call(
                    Op::Conversations,
                    Method::GET,
                    &format!("/api/v1/conversations/search?sandbox_id={id}&limit=20"),
                    None,
                )
                .await;
            }
            Op::ConversationInfo | Op::Events => {
                let Some(i) = self.any_mine() else { return };
                if self.mine[i].events.is_empty() {
                    return;
                }
                let conversation = self.mine[i].conversation.clone();
                let path = if op == Op::Events {
                    format!("/api/v1/conversations/{conversation}/events/search?limit=20")
                } else {
                    format!("/api/v1/conversations/{conversation}")
                };
                self.call(op, Method::GET, &path, None).await;
            }
            Op::Specs => {
                self.call(Op::Specs, Method::GET, "/api/v1/sandbox-specs/search", None)
                    .await;
            }
        }
    }

    async fn start(&mut self) {
        let Some(sb) = self
            .call(Op::Start, Method::POST, "/api/v1/sandboxes", None)
            .await
        else {
            return;
        };
        let id = sb["id"].as_str().unwrap_or_default().to_owned();
        let key = sb["session_api_key"].as_str().map(str::to_owned);
        self.counter += 1;
        let conversation = format!("{:08x}-0000-4000-8000-{:012x}", self.index, self.counter);
        // The sandbox's agent server, with a conversation of its own for the
        // polling loop to find.
        let agent_key = key.clone().unwrap_or_default();
        self.agents.add_agent(&id, &agent_key);
        self.agents
            .add_conversation(&id, json!({"title": "polled"}));
        self.mine.push(Mine {
            id,
            key,
            paused: false,
            conversation,
            events: Vec::new(),
        });
    }

    fn learn_key(&mut self, i: usize, sb: &Value) {
        if sb["status"] == "RUNNING"
            && !self.mine[i].paused
            && let Some(key) = sb["session_api_key"].as_str()
        {
            if self.mine[i].key.as_deref() != Some(key) {
                self.agents.set_key(&self.mine[i].id, key);
            }
            self.mine[i].key = Some(key.to_owned());
        }
    }
}

fn config(plan: &Plan, rt: &FakeRuntime) -> String {
    let mut toml = format!(
        "[runtime]\napi_url = \"{}\"\napi_key = \"{}\"\npolling_interval = 2\n\
         [sync]\nmode = \"poll\"\n\
         [auth]\nmode = \"api-keys\"\n[[auth.keys]]\nkey = \"{ADMIN_KEY}\"\nadmin = true\n",
        rt.url(),
        rt.api_key()
    );
    for i in 0..plan.clients {
        toml.push_str(&format!(
            "[[auth.keys]]\nkey = \"{}\"\nuser_id = \"user-{i}\"\n",
            client_key(i)
        ));
    }
    toml
}

/// The faults the runtime API meets: together, about `1 / one_in` of requests.
fn faults(one_in: u32) -> Vec<Fault> {
    let kinds = [
        Fault::status(500, r#"{"detail": "internal error"}"#),
        Fault::status(502, "bad gateway"),
        Fault::status(503, r#"{"detail": "busy"}"#),
        Fault::drop_connection(),
        Fault::body("this is not JSON"),
        Fault::delay(Duration::from_millis(300)),
    ];
    let each = one_in.saturating_mul(kinds.len() as u32);
    kinds.into_iter().map(|f| f.one_in(each)).collect()
}

fn rss_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    })
}

/// Run the load test against the `sandboxd` binary the harness finds
/// (`SANDBOXD_BIN` to choose one).
pub async fn run(plan: Plan) -> Report {
    let agents = Arc::new(FakeAgentServer::start_with(FakeAgentServerOptions {
        record_requests: false,
        ..Default::default()
    }));
    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        url_template: format!("{}/{{session_id}}", agents.url()),
        record_requests: false,
        ..Default::default()
    });
    let mut sd = Sandboxd::start_with(
        Options::default()
            .config(&config(&plan, &rt))
            .env("SANDBOXD_LOG", "warn"),
    );
    for fault in faults(plan.fault_one_in) {
        rt.inject(fault);
    }
    let pid = sd.pid();
    let http = Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(plan.clients)
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"));
    let started = Instant::now();
    let deadline = started + plan.duration;

    let samples = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let samples = samples.clone();
        tokio::spawn(async move {
            while Instant::now() < deadline {
                if let Some(kib) = rss_kib(pid, "VmRSS:")
                    && let Ok(mut s) = samples.lock()
                {
                    s.push((started.elapsed(), kib));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
    };

    let mut workers = Vec::with_capacity(plan.clients);
    for index in 0..plan.clients {
        let mut client = LoadClient {
            http: http.clone(),
            base: sd.url().to_owned(),
            key: client_key(index),
            index,
            agents: agents.clone(),
            rng: Rng(plan.seed.wrapping_mul(1_000_003).wrapping_add(index as u64)),
            out: ClientOutcome::default(),
            mine: Vec::new(),
            limit: plan.sandboxes_per_client,
            counter: 0,
        };
        workers.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                client.step().await;
            }
            client.out.alive = std::mem::take(&mut client.mine);
            client.out
        }));
    }
    let mut outcomes = Vec::new();
    for w in workers {
        match w.await {
            Ok(o) => outcomes.push(o),
            Err(e) => panic!("a load client panicked: {e}"),
        }
    }
    let elapsed = started.elapsed();
    let _ = sampler.await;
    let peak_kib = rss_kib(pid, "VmHWM:").unwrap_or(0);
    let runtime_requests = rt.total_requests();
    let faults_injected = rt.faults_applied();
    rt.clear_faults();

    let mut report = Report {
        elapsed,
        peak_kib,
        runtime_requests,
        faults_injected,
        rss_kib: samples.lock().map(|s| s.clone()).unwrap_or_default(),
        ..Report::default()
    };
    for o in &mut outcomes {
        for (op, l) in o.latencies.drain() {
            report.latencies.entry(op).or_default().extend(l);
        }
        report.expected_errors += o.expected;
        report.unexpected_errors += o.unexpected;
        report.unexpected_samples.append(&mut o.samples);
    }
    for l in report.latencies.values_mut() {
        l.sort();
    }
    report.requests = report.latencies.values().map(Vec::len).sum();
    check_consistency(&sd, &rt, &outcomes, &mut report).await;
    sd.stop();
    report
}

/// The end-of-run check of the store against the runtime and the clients.
async fn check_consistency(
    sd: &Sandboxd,
    rt: &FakeRuntime,
    outcomes: &[ClientOutcome],
    report: &mut Report,
) {
    let admin = sd.api().with_key(ADMIN_KEY);
    let (records, _) = admin.search_all(100).await;
    let records: HashSet<String> = records
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect();
    report.sandboxes_at_end = records.len();
    let runtimes: HashSet<String> = rt
        .runtimes()
        .iter()
        .filter_map(|r| r["session_id"].as_str().map(str::to_owned))
        .collect();
    let unknown: HashSet<&str> = outcomes
        .iter()
        .flat_map(|o| o.unknown_starts.iter().map(String::as_str))
        .collect();
    let mut wrong = Vec::new();
    for orphan in runtimes.difference(&records) {
        wrong.push(format!("runtime of '{orphan}' runs without a record"));
    }
    for id in records.difference(&runtimes) {
        if !unknown.contains(id.as_str()) {
            wrong.push(format!(
                "record '{id}' has no runtime and its start was not in doubt"
            ));
        }
    }
    for o in outcomes {
        for m in &o.alive {
            if !records.contains(&m.id) {
                wrong.push(format!(
                    "sandbox '{}' was started (200) but its record is gone",
                    m.id
                ));
            }
        }
        for m in o.alive.iter().chain(&o.retired) {
            let stored = stored_events(&admin, &m.conversation).await;
            report.events_stored += stored.len();
            let unique: HashSet<&String> = stored.iter().collect();
            if unique.len() != stored.len() {
                wrong.push(format!(
                    "conversation {} has an event stored twice",
                    m.conversation
                ));
            }
            for e in &m.events {
                if !unique.contains(e) {
                    wrong.push(format!("event {e} was accepted but is not stored"));
                }
            }
        }
    }
    wrong.truncate(20);
    report.inconsistencies = wrong;
}

/// Every stored event id of a conversation, in order, all pages.
async fn stored_events(admin: &crate::client::Api, conversation: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let path = match &page {
            None => format!("/api/v1/conversations/{conversation}/events/search?limit=100"),
            Some(p) => {
                format!("/api/v1/conversations/{conversation}/events/search?limit=100&page_id={p}")
            }
        };
        let reply = admin.get(&path).await;
        if reply.status != 200 {
            return ids;
        }
        ids.extend(
            reply.body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["id"].as_str().map(str::to_owned)),
        );
        match reply.body["next_page_id"].as_str() {
            Some(next) => page = Some(next.to_owned()),
            None => return ids,
        }
    }
}
