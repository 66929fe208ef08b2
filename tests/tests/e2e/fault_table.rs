//! The fault table (docs/faults.md), cell by cell: every operation against
//! every runtime fault, through the real binary and a real HTTP fake of the
//! runtime API. For each cell: the status and message the user gets, what is
//! stored afterwards, and how many times the runtime API was asked.
//!
//! One sandboxd (and one fake runtime) per fault column; in each, the faults
//! are injected on every runtime request for the duration of one operation,
//! then cleared before the stored state is checked.
//!
//! Every column runs on both hosts of the plugin (`<column>::on_rust`,
//! `<column>::on_node`), every cell with the same checks (the poll cycle's
//! through `POST /admin/sync/poll`, which both serve).

use std::time::Duration;

use serde_json::{Value, json};

use sandboxd_tests::client::{Api, Reply};
use sandboxd_tests::fake_runtime::{FakeRuntime, Fault};
use sandboxd_tests::host::Host;
use sandboxd_tests::sandboxd::{Options, Sandboxd};

/// The runtime faults, the columns of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RtFault {
    Timeout,
    Refused,
    TooMany,
    S500,
    S502,
    S503,
    NotJson,
    WrongShape,
    PartialBatch,
    Slow,
}

const ALL: [RtFault; 10] = [
    RtFault::Timeout,
    RtFault::Refused,
    RtFault::TooMany,
    RtFault::S500,
    RtFault::S502,
    RtFault::S503,
    RtFault::NotJson,
    RtFault::WrongShape,
    RtFault::PartialBatch,
    RtFault::Slow,
];

impl RtFault {
    /// Transient failures: reads are retried (3 tries in all).
    fn retried(self) -> bool {
        matches!(
            self,
            RtFault::Refused | RtFault::TooMany | RtFault::S502 | RtFault::S503
        )
    }

    /// Faults after which a read cannot tell the runtime's state.
    fn blinds_reads(self) -> bool {
        !matches!(self, RtFault::PartialBatch | RtFault::Slow)
    }

    /// How the cause reads in a `detail` or `status_detail`.
    fn cause(self) -> &'static str {
        match self {
            RtFault::Timeout => "timed out",
            RtFault::Refused => "Connection refused",
            RtFault::TooMany => "HTTP 429",
            RtFault::S500 => "HTTP 500",
            RtFault::S502 => "HTTP 502",
            RtFault::S503 => "HTTP 503",
            RtFault::NotJson => "unreadable body",
            RtFault::WrongShape => "without a runtime_id",
            RtFault::PartialBatch | RtFault::Slow => "",
        }
    }

    /// `partial` is the batch answer the partial-batch fault gives.
    fn inject(self, rt: &FakeRuntime, partial: &Value) {
        match self {
            RtFault::Timeout => rt.inject(Fault::delay(Duration::from_millis(1500))),
            RtFault::Refused => rt.shutdown(),
            RtFault::TooMany => rt.inject(Fault::status(429, r#"{"detail": "slow down"}"#)),
            RtFault::S500 => rt.inject(Fault::status(500, r#"{"detail": "bug"}"#)),
            RtFault::S502 => rt.inject(Fault::status(502, "<html>bad gateway</html>")),
            RtFault::S503 => rt.inject(Fault::status(503, r#"{"detail": "overloaded"}"#)),
            RtFault::NotJson => rt.inject(Fault::body("<html>maintenance</html>")),
            // Valid JSON, the wrong shape for every call: no runtime fields at all.
            RtFault::WrongShape => rt.inject(Fault::body(r#"{"unexpected": [1, 2, 3]}"#)),
            // A batch that leaves out sandboxes it knows, with a `null` for good
            // measure; every other call is answered normally.
            RtFault::PartialBatch => {
                rt.inject(Fault::body(partial.to_string()).on("GET", "/sessions/batch"));
            }
            RtFault::Slow => rt.inject(Fault::delay(Duration::from_millis(300))),
        }
    }
}

/// One column: a runtime, sandboxd, and sandboxes in known states.
struct Column {
    fault: RtFault,
    rt: FakeRuntime,
    sd: Sandboxd,
    api: Api,
    /// Running; read by the read operations.
    read: String,
    read_key: String,
    to_pause: String,
    to_pause_key: String,
    /// Paused beforehand.
    to_resume: String,
    to_delete: String,
    conversation: String,
}

impl Column {
    async fn new(fault: RtFault, host: Host) -> Column {
        let rt = FakeRuntime::start();
        let sd = host.spawn(Options::for_runtime(&rt).config(
            "web_url = \"https://app.example\"\n\
             [runtime]\nreconcile_interval = 3600\nmax_num_sandboxes = 1000\n\
             [http]\ntimeout = 1\n\
             [lifecycle]\nteardown_grace = 0\n",
        ));
        let api = sd.api();
        let mut ids = Vec::new();
        for name in ["read", "pause", "resume", "delete"] {
            let started = api
                .post(&format!("/api/v1/sandboxes?sandbox_id={name}"))
                .await
                .ok();
            ids.push((
                started["id"].as_str().unwrap_or_default().to_owned(),
                started["session_api_key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
        api.post("/api/v1/sandboxes/resume/pause").await.ok();
        let conversation = "0b9c7a3ee1e94a0e8d3f1f2a5c6d7e8f".to_owned();
        let column = Column {
            fault,
            read: ids[0].0.clone(),
            read_key: ids[0].1.clone(),
            to_pause: ids[1].0.clone(),
            to_pause_key: ids[1].1.clone(),
            to_resume: ids[2].0.clone(),
            to_delete: ids[3].0.clone(),
            conversation,
            rt,
            sd,
            api,
        };
        // The conversation the webhook cells write to.
        let reply = column
            .webhook("conversations", &column.read_key, column.info_body())
            .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        column
    }

    fn info_body(&self) -> Value {
        json!({"id": self.conversation, "execution_status": "running", "title": "t"})
    }

    async fn webhook(&self, path: &str, key: &str, body: Value) -> Reply {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/webhooks/{path}", self.sd.url()))
            .header("X-Session-API-Key", key)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        Reply { status, body }
    }

    /// Inject the fault, run `op`, clear the fault (a refused connection
    /// stays: that runtime is gone), and say how many runtime requests `op` made.
    async fn under_fault<F, Fut, T>(&self, op: F) -> (T, u64)
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = T>,
    {
        let before = self.rt.total_requests();
        let partial = json!([null, self.rt.runtime(&self.read)]);
        self.fault.inject(&self.rt, &partial);
        let out = op().await;
        self.rt.clear_faults();
        (out, self.rt.total_requests() - before)
    }
}

fn assert_cell(op: &str, fault: RtFault, ok: bool, what: impl std::fmt::Display) {
    assert!(ok, "{op} × {fault:?}: {what}");
}

/// A read's view of the `read` sandbox: 200, and RUNNING, or MISSING naming the cause.
fn check_read(op: &str, fault: RtFault, reply: &Reply, item: &Value, calls: u64) {
    assert_cell(
        op,
        fault,
        reply.status == 200,
        format!("status {} {:?}", reply.status, reply.body),
    );
    if fault.blinds_reads() {
        assert_cell(op, fault, item["status"] == "MISSING", item);
        let detail = item["status_detail"].as_str().unwrap_or_default();
        let expected = match (fault, op) {
            // One runtime object with nothing in it: described, without a status.
            (RtFault::WrongShape, "get") => "described the runtime without a status",
            // A batch that is not a list cannot be read at all.
            (RtFault::WrongShape, _) => {
                "could not be asked: runtime API GET /sessions/batch answered an unreadable body"
            }
            _ => "could not be asked",
        };
        assert_cell(op, fault, detail.contains(expected), item);
        assert_cell(
            op,
            fault,
            detail.contains(fault.cause()) || fault == RtFault::WrongShape,
            item,
        );
    } else {
        assert_cell(op, fault, item["status"] == "RUNNING", item);
    }
    let expected = if fault.retried() { 3 } else { 1 };
    if fault != RtFault::Refused {
        assert_cell(
            op,
            fault,
            calls == expected,
            format!("{calls} runtime requests, expected {expected}"),
        );
    }
}

async fn column(fault: RtFault, host: Host) {
    let c = Column::new(fault, host).await;
    let api = &c.api;

    // search
    let ((reply, calls), op) = (
        c.under_fault(|| api.get("/api/v1/sandboxes/search?limit=100"))
            .await,
        "search",
    );
    let find = |id: &str| {
        reply.body["items"]
            .as_array()
            .and_then(|items| items.iter().find(|i| i["id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    };
    check_read(op, fault, &reply, &find(&c.read), calls);
    if fault == RtFault::PartialBatch {
        // Left out of the batch: the runtime API does not know it, no error.
        let left_out = find(&c.to_delete);
        assert_cell(
            op,
            fault,
            left_out["status"] == "MISSING" && left_out["status_detail"].is_null(),
            &left_out,
        );
    }

    // get
    let path = format!("/api/v1/sandboxes/{}", c.read);
    let (reply, calls) = c.under_fault(|| api.get(&path)).await;
    check_read("get", fault, &reply, &reply.body.clone(), calls);

    // batch get
    let path = format!("/api/v1/sandboxes?id={}&id=nope", c.read);
    let (reply, calls) = c.under_fault(|| api.get(&path)).await;
    let item = reply.body[0].clone();
    check_read("batch get", fault, &reply, &item, calls);
    assert_cell("batch get", fault, reply.body[1].is_null(), &reply.body);

    // start
    let new_id = "new-sandbox";
    let path = format!("/api/v1/sandboxes?sandbox_id={new_id}");
    let (reply, calls) = c.under_fault(|| api.post(&path)).await;
    let stored = api.get(&format!("/api/v1/sandboxes/{new_id}")).await.status;
    match fault {
        RtFault::PartialBatch | RtFault::Slow | RtFault::WrongShape => {
            // Started; with the wrong shape, the lookup that follows an answer
            // without a runtime_id finds the sandbox described (oddly): 200.
            assert_cell(
                "start",
                fault,
                reply.status == 200,
                format!("{:?}", reply.body),
            );
            assert_cell("start", fault, stored == 200, "the record is kept");
        }
        RtFault::Refused | RtFault::TooMany => {
            // Surely not carried out: the record is removed.
            assert_cell(
                "start",
                fault,
                reply.status == 502,
                format!("{:?}", reply.body),
            );
            assert_cell(
                "start",
                fault,
                reply.detail().contains(fault.cause()),
                reply.detail(),
            );
            assert_cell(
                "start",
                fault,
                stored == 404,
                "no record of a start that did not happen",
            );
        }
        RtFault::Timeout | RtFault::S500 | RtFault::S502 | RtFault::S503 | RtFault::NotJson => {
            // May have been carried out and the check failed too: kept, MISSING,
            // for reconciliation to settle.
            assert_cell(
                "start",
                fault,
                reply.status == 502,
                format!("{:?}", reply.body),
            );
            assert_cell(
                "start",
                fault,
                reply.detail().contains("unknown"),
                reply.detail(),
            );
            assert_cell(
                "start",
                fault,
                stored == 200,
                "the record is kept until reconciled",
            );
        }
    }
    if fault != RtFault::Refused {
        // POST /start once, never repeated; plus the limit check and lookups.
        assert_cell("start", fault, calls >= 1, calls);
    }

    // pause
    let path = format!("/api/v1/sandboxes/{}/pause", c.to_pause);
    let (reply, _) = c.under_fault(|| api.post(&path)).await;
    let key_works = c
        .webhook("conversations", &c.to_pause_key, c.info_body())
        .await
        .status;
    if fault.blinds_reads() {
        assert_cell(
            "pause",
            fault,
            reply.status == 502,
            format!("{:?}", reply.body),
        );
        assert_cell(
            "pause",
            fault,
            reply.detail().contains(fault.cause()),
            reply.detail(),
        );
    } else {
        assert_cell(
            "pause",
            fault,
            reply.status == 200,
            format!("{:?}", reply.body),
        );
    }
    // Whatever happened, the key stopped working first.
    assert_cell(
        "pause",
        fault,
        key_works == 401,
        format!("webhook with the key: {key_works}"),
    );

    // resume
    let path = format!("/api/v1/sandboxes/{}/resume", c.to_resume);
    let (reply, _) = c.under_fault(|| api.post(&path)).await;
    if fault.blinds_reads() {
        assert_cell(
            "resume",
            fault,
            reply.status == 502,
            format!("{:?}", reply.body),
        );
        assert_cell(
            "resume",
            fault,
            reply.detail().contains(fault.cause()),
            reply.detail(),
        );
    } else {
        assert_cell(
            "resume",
            fault,
            reply.status == 200,
            format!("{:?}", reply.body),
        );
    }

    // delete
    let path = format!("/api/v1/sandboxes/{}", c.to_delete);
    let (reply, _) = c.under_fault(|| api.delete(&path)).await;
    let stored = api
        .get(&format!("/api/v1/sandboxes/{}", c.to_delete))
        .await
        .status;
    if fault.blinds_reads() {
        // A failure that may pass asks the caller to retry (503, the key
        // already revoked); an answer that will not change is the runtime's (502).
        let passes = !matches!(fault, RtFault::NotJson | RtFault::WrongShape);
        assert_cell(
            "delete",
            fault,
            reply.status == if passes { 503 } else { 502 },
            format!("{:?}", reply.body),
        );
        assert_cell(
            "delete",
            fault,
            reply.detail().contains("not deleted"),
            reply.detail(),
        );
        assert_cell(
            "delete",
            fault,
            stored == 200,
            "a failed delete keeps the record",
        );
    } else {
        assert_cell(
            "delete",
            fault,
            reply.status == 200,
            format!("{:?}", reply.body),
        );
        assert_cell("delete", fault, stored == 404, "deleted");
    }

    // session-key lookup (webhook authentication): the store only.
    let ((right, wrong), calls) = c
        .under_fault(|| async {
            (
                c.webhook("conversations", &c.read_key, c.info_body())
                    .await
                    .status,
                c.webhook("conversations", "not-a-key", c.info_body())
                    .await
                    .status,
            )
        })
        .await;
    assert_cell(
        "session-key lookup",
        fault,
        right == 200 && wrong == 401,
        format!("{right} / {wrong}"),
    );
    assert_cell("session-key lookup", fault, calls == 0, calls);

    // webhook ingest: the store only.
    let event = json!([{"id": "8d1f5c2a-0000-4000-8000-000000000001", "kind": "MessageEvent",
                        "timestamp": "2026-11-26T10:00:00", "source": "user"}]);
    let path = format!("events/{}", c.conversation);
    let (reply, calls) = c
        .under_fault(|| c.webhook(&path, &c.read_key, event.clone()))
        .await;
    assert_cell(
        "webhook ingest",
        fault,
        reply.status == 200,
        format!("{:?}", reply.body),
    );
    assert_cell("webhook ingest", fault, calls == 0, calls);
    let stored = api
        .get(&format!(
            "/api/v1/conversations/{}/events/search",
            c.conversation
        ))
        .await
        .ok();
    assert_cell(
        "webhook ingest",
        fault,
        stored["items"].as_array().is_some_and(|i| i.len() == 1),
        &stored,
    );

    poll_cycle(&c, fault).await;
    let logs = c.sd.logs();
    assert!(!logs.contains("panicked"), "{fault:?}: a panic in the log");
}

async fn poll_cycle(c: &Column, fault: RtFault) {
    let api = &c.api;
    let (reply, calls) = c.under_fault(|| api.post("/admin/sync/poll")).await;
    match fault {
        RtFault::PartialBatch | RtFault::Slow | RtFault::WrongShape => {
            assert_cell(
                "poll cycle",
                fault,
                reply.status == 200,
                format!("{:?}", reply.body),
            );
        }
        _ => {
            assert_cell(
                "poll cycle",
                fault,
                reply.status == 502,
                format!("{:?}", reply.body),
            );
            assert_cell(
                "poll cycle",
                fault,
                reply.detail().contains("GET /list"),
                reply.detail(),
            );
            assert_cell(
                "poll cycle",
                fault,
                reply.detail().contains(fault.cause()),
                reply.detail(),
            );
            if fault != RtFault::Refused {
                let expected = if fault.retried() { 3 } else { 1 };
                assert_cell("poll cycle", fault, calls == expected, calls);
            }
        }
    }
}

macro_rules! columns {
    ($($name:ident => $fault:expr),* $(,)?) => {
        $(
            mod $name {
                use super::*;

                #[tokio::test]
                async fn on_rust() {
                    let _turn = crate::serial::shared().await;
                    column($fault, Host::Rust).await;
                }

                #[tokio::test]
                async fn on_node() {
                    let _turn = crate::serial::shared().await;
                    column($fault, Host::Node).await;
                }
            }
        )*
        #[test]
        fn every_fault_has_a_column() {
            let _turn = crate::serial::shared_blocking();
            let tested = [$($fault),*];
            assert!(ALL.iter().all(|f| tested.contains(f)));
        }
    };
}

columns! {
    timeout => RtFault::Timeout,
    connection_refused => RtFault::Refused,
    too_many_requests_429 => RtFault::TooMany,
    internal_error_500 => RtFault::S500,
    bad_gateway_502 => RtFault::S502,
    unavailable_503 => RtFault::S503,
    body_not_json => RtFault::NotJson,
    json_of_the_wrong_shape => RtFault::WrongShape,
    partial_batch => RtFault::PartialBatch,
    slow_runtime => RtFault::Slow,
}
