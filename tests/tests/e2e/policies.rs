//! Lifecycle (issue 13) through the real binary: a policy pausing a sandbox
//! on its own, the history route with causes and scoping, the signed
//! `SandboxStatusEvent` reaching a callback, the teardown grace of a paused
//! sandbox's key, a delete that revokes the key before the stop and answers
//! 503 with `Retry-After`, wake on request and the warm pool with real
//! processes.
//!
//! Rust host only: the Node.js host serves the history route (its library has
//! the pass), but not the callback routes, and it runs no policy pass.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use sandboxd_tests::client::Api;
use sandboxd_tests::fake_agent::FakeAgentServer;
use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions, Fault};
use sandboxd_tests::receiver::{Receiver, signature};
use sandboxd_tests::sandboxd::{Options, Sandboxd};

const ALICE: &str = "alice-key-0123456789";
const BOB: &str = "bob-key-0123456789ab";

fn users(lifecycle: &str) -> String {
    format!(
        "[auth]\nmode = \"api-keys\"\n\
         [[auth.keys]]\nkey = \"{ALICE}\"\nuser_id = \"alice\"\n\
         [[auth.keys]]\nkey = \"{BOB}\"\nuser_id = \"bob\"\n\
         [lifecycle]\n{lifecycle}\n"
    )
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_owned()
}

async fn wait_for_status(api: &Api, id: &str, want: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let sb = api.sandbox(id).await;
        if sb["status"] == want {
            return sb;
        }
        assert!(Instant::now() < deadline, "{id} never became {want}: {sb}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The history as (status, cause), newest first.
async fn causes(api: &Api, id: &str) -> Vec<(String, String)> {
    let page = api
        .get(&format!("/api/v1/sandboxes/{id}/history"))
        .await
        .ok();
    page["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    (
                        i["status"].as_str().unwrap_or_default().to_owned(),
                        i["cause"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A fake runtime whose sandboxes' URLs lead to one fake agent server.
fn runtime_with_agents() -> (FakeAgentServer, FakeRuntime) {
    let agents = FakeAgentServer::start();
    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        url_template: format!("{}/{{session_id}}", agents.url()),
        ..Default::default()
    });
    (agents, rt)
}

fn pair(status: &str, cause: &str) -> (String, String) {
    (status.to_owned(), cause.to_owned())
}

#[tokio::test]
async fn max_running_pauses_records_the_cause_and_tells_the_owners_callback() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let receiver = Receiver::start();
    let sd = Sandboxd::start_with(
        Options::for_runtime(&rt).config(&users("max_running = 2\ninterval = 0.2")),
    );
    let alice = sd.api().with_key(ALICE);
    let bob = sd.api().with_key(BOB);
    let created = alice
        .post_json(
            "/api/v1/event-callbacks",
            &json!({"url": format!("{}/status", receiver.url()), "event_kinds": ["SandboxStatusEvent"]}),
        )
        .await
        .ok();
    let secret = created["secret"].as_str().unwrap_or_default().to_owned();
    // Bob's callback asks for every kind: lifecycle events are only for those
    // that name them, and only the owner's.
    bob.post_json(
        "/api/v1/event-callbacks",
        &json!({"url": format!("{}/bob", receiver.url()), "event_kinds": ["SandboxStatusEvent"]}),
    )
    .await
    .ok();

    let id = id_of(&alice.start().await);
    wait_for_status(&alice, &id, "PAUSED", Duration::from_secs(10)).await;
    assert_eq!(
        causes(&alice, &id).await,
        vec![pair("PAUSED", "max_running"), pair("RUNNING", "user")]
    );
    let page = alice
        .get(&format!("/api/v1/sandboxes/{id}/history?limit=1"))
        .await
        .ok();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    let text = alice
        .get_text(&format!("/api/v1/sandboxes/{id}/history?limit=1"))
        .await;
    let at = |field: &str| text.find(&format!("\"{field}\":")).unwrap_or(usize::MAX);
    assert!(
        at("at") < at("status") && at("status") < at("cause") && at("cause") < at("detail"),
        "fields in the issue's order: {text}"
    );
    let next = page["next_page_id"].as_str().unwrap_or_default().to_owned();
    let rest = alice
        .get(&format!("/api/v1/sandboxes/{id}/history?page_id={next}"))
        .await
        .ok();
    assert_eq!(rest["items"][0]["cause"], "user");
    assert_eq!(rest["next_page_id"], Value::Null);
    // Scoped like the sandbox; bad parameters are the caller's mistake.
    let other = bob.get(&format!("/api/v1/sandboxes/{id}/history")).await;
    assert_eq!(other.status, 404, "{:?}", other.body);
    assert_eq!(
        alice.get("/api/v1/sandboxes/nope/history").await.status,
        404
    );
    let bad = alice
        .get(&format!("/api/v1/sandboxes/{id}/history?limit=0"))
        .await;
    assert_eq!(bad.status, 422, "{:?}", bad.body);

    // The policy acted once: the runtime was asked to pause once.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let pauses = rt.requests().iter().filter(|r| r.path == "/pause").count();
    assert_eq!(pauses, 1);

    let got = receiver.wait_for(2, Duration::from_secs(10));
    assert_eq!(got.len(), 2, "alice's two changes, nothing for bob");
    for hook in &got {
        assert!(hook.path.ends_with("/status"), "{}", hook.path);
        assert_eq!(
            hook.header("x-sandboxd-signature").map(str::to_owned),
            Some(signature(&secret, &hook.body))
        );
        assert_eq!(hook.header("x-sandboxd-sandbox-id"), Some(id.as_str()));
    }
    let events: Vec<Value> = got.iter().map(|h| h.json()).collect();
    let pause = events
        .iter()
        .find(|e| e["status"] == "PAUSED")
        .unwrap_or_else(|| panic!("no PAUSED event in {events:?}"));
    assert_eq!(pause["kind"], "SandboxStatusEvent");
    assert_eq!(pause["sandbox_id"], id.as_str());
    assert_eq!(pause["previous_status"], "RUNNING");
    assert_eq!(pause["cause"], "max_running");
    for field in ["id", "timestamp", "detail"] {
        assert!(pause.get(field).is_some(), "{field} in {pause}");
    }
}

#[tokio::test]
async fn a_paused_key_serves_final_webhooks_for_the_grace_and_a_delete_revokes_before_it_stops() {
    let _turn = crate::serial::shared().await;
    let (_agents, rt) = runtime_with_agents();
    let sd = Sandboxd::start_with(
        Options::for_runtime(&rt)
            .env("SANDBOXD_SYNC_MODE", "webhook")
            .config("[lifecycle]\nteardown_grace = 2\n"),
    );
    let api = sd.api();
    let client = reqwest::Client::new();
    let webhook = |key: String| {
        let client = client.clone();
        let url = format!(
            "{}/api/v1/webhooks/events/aaaaaaaa-0000-4000-8000-000000000001",
            sd.url()
        );
        async move {
            let events = json!([{"id": format!("e-{}", rand_suffix()), "timestamp": "2026-11-26T07:00:00", "kind": "MessageEvent", "source": "agent"}]);
            client
                .post(url)
                .header("x-session-api-key", key)
                .json(&events)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };

    let sb = api.start().await;
    let id = id_of(&sb);
    let key = sb["session_api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(webhook(key.clone()).await, 200);
    assert_eq!(
        api.post(&format!("/api/v1/sandboxes/{id}/pause"))
            .await
            .status,
        200
    );
    // Within the grace the agent server's final webhooks are taken ...
    assert_eq!(webhook(key.clone()).await, 200);
    // ... and refused once it is over.
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(webhook(key.clone()).await, 401);

    // A resumed sandbox's key works again; a delete whose stop fails for now
    // revokes it anyway, keeps the sandbox and says when to retry.
    assert_eq!(
        api.post(&format!("/api/v1/sandboxes/{id}/resume"))
            .await
            .status,
        200
    );
    let key = api.sandbox(&id).await["session_api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(webhook(key.clone()).await, 200);
    rt.inject(
        Fault::status(503, "runtime busy")
            .on("POST", "/stop")
            .times(1),
    );
    let answer = client
        .delete(format!("{}/api/v1/sandboxes/{id}", sd.url()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(answer.status().as_u16(), 503);
    assert_eq!(
        answer
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let detail: Value = answer.json().await.unwrap_or_default();
    let detail = detail["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("revoked") && detail.contains("runtime busy"),
        "{detail}"
    );
    assert_eq!(webhook(key.clone()).await, 401, "revoked before the stop");
    assert_eq!(api.sandbox(&id).await["id"], id.as_str(), "kept");
    assert_eq!(
        api.delete(&format!("/api/v1/sandboxes/{id}")).await.status,
        200
    );
    assert_eq!(
        api.get(&format!("/api/v1/sandboxes/{id}")).await.status,
        404
    );
    assert_eq!(causes(&api, &id).await[0], pair("MISSING", "user"));
}

/// Idle pause by what the synced conversations say: a sandbox whose agent is
/// working (a conversation `running`) stays up, one whose agent is idle is
/// paused once the idle time passed.
#[tokio::test]
async fn idle_pause_goes_by_the_synced_conversations() {
    let _turn = crate::serial::shared().await;
    let (agents, rt) = runtime_with_agents();
    let sd = Sandboxd::start_with(
        Options::for_runtime(&rt)
            .env("SANDBOXD_POLLING_INTERVAL", "1")
            .config("[lifecycle]\nidle_pause = 3\ninterval = 0.25\n"),
    );
    let api = sd.api();
    let mut ids = Vec::new();
    for status in ["running", "idle"] {
        let sb = api.start().await;
        let id = id_of(&sb);
        agents.add_agent(&id, sb["session_api_key"].as_str().unwrap_or_default());
        let old = "2026-01-01T00:00:00";
        agents.add_conversation(
            &id,
            json!({"execution_status": status, "created_at": old, "updated_at": old}),
        );
        ids.push(id);
    }
    let (busy, idle) = (&ids[0], &ids[1]);
    wait_for_status(&api, idle, "PAUSED", Duration::from_secs(15)).await;
    assert_eq!(causes(&api, idle).await[0], pair("PAUSED", "idle"));
    // Well past the idle time, the working agent's sandbox still runs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.sandbox(busy).await["status"], "RUNNING");
    assert_eq!(causes(&api, busy).await, vec![pair("RUNNING", "user")]);
}

fn rand_suffix() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap_or_else(|e| panic!("{e}"));
    hex::encode(b)
}

/// Local runtime, real processes: a request through a paused sandbox's
/// agent-server URL resumes it and is answered once it runs.
#[tokio::test]
async fn a_request_to_a_paused_local_sandbox_wakes_it() {
    let _turn = crate::serial::shared().await;
    let sd = Sandboxd::start_with(
        Options::default()
            .config("[runtime]\nstart_sandbox_timeout = 30\n[lifecycle]\nwake_on_request = true\n"),
    );
    let api = sd.api();
    let id = id_of(&api.post("/api/v1/sandboxes").await.ok());
    let sb = wait_for_status(&api, &id, "RUNNING", Duration::from_secs(20)).await;
    let agent = sb["exposed_urls"][0]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        api.post(&format!("/api/v1/sandboxes/{id}/pause"))
            .await
            .status,
        200
    );
    assert_eq!(api.sandbox(&id).await["status"], "PAUSED");

    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let answer = client
        .get(format!("{agent}/alive"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{agent}: {e}"));
    assert_eq!(answer.status().as_u16(), 200);
    let sb = api.sandbox(&id).await;
    assert_eq!(sb["status"], "RUNNING");
    assert!(sb["session_api_key"].is_string());
    assert_eq!(
        causes(&api, &id).await[..2],
        [pair("RUNNING", "wake"), pair("PAUSED", "user")]
    );
}

#[test]
fn wake_on_request_needs_the_local_runtime() {
    let rt = FakeRuntime::start();
    let failed = Sandboxd::try_start(
        Options::for_runtime(&rt).config("[lifecycle]\nwake_on_request = true\n"),
    )
    .err()
    .unwrap_or_else(|| panic!("started with wake_on_request and a remote runtime"));
    assert!(
        failed.stderr.contains("lifecycle.wake_on_request"),
        "{}",
        failed.stderr
    );
}

/// A sandbox of the local runtime that checks the session key on `/api/…`
/// like an agent server, with the `{port}` placeholder of `[[specs]]`.
const KEYED_SERVER: &str = r#"import http.server, os, sys
KEY = os.environ.get("SESSION_API_KEY", "")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        ok = not self.path.startswith("/api/") or self.headers.get("X-Session-API-Key") == KEY
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;

/// Run lifecycle passes until the warm pool has `ready` sandboxes running.
async fn wait_for_warm(api: &Api, ready: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pass = api.post("/admin/lifecycle/pass").await.ok();
        if pass["warm_ready"] == ready {
            return pass;
        }
        assert!(
            Instant::now() < deadline,
            "the pool never had {ready} ready: {pass}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Local runtime, real processes: a spec's warm pool is started ahead, shown
/// to no one, handed out `RUNNING` in a start's first answer with a working
/// session key, and refilled.
#[tokio::test]
async fn a_start_from_the_warm_pool_is_running_in_its_first_answer() {
    let _turn = crate::serial::shared().await;
    let script = serde_json::to_string(KEYED_SERVER).unwrap_or_default();
    let sd = Sandboxd::start_with(Options::default().config(&format!(
        "[runtime]\nstart_sandbox_timeout = 30\n\
         [lifecycle]\ninterval = 0.2\n\
         [[specs]]\nid = \"local/keyed\"\ncommand = [\"python3\", \"-c\", {script}, \"{{port}}\"]\n\
         probe_path = \"/alive\"\nwarm = 1\n"
    )));
    let api = sd.api();
    wait_for_warm(&api, 1).await;
    // Running, yet in no listing.
    assert!(api.search_all(100).await.0.is_empty());

    let started = api.post("/api/v1/sandboxes").await.ok();
    assert_eq!(started["status"], "RUNNING", "{started}");
    let key = started["session_api_key"]
        .as_str()
        .unwrap_or_else(|| panic!("no session key: {started}"))
        .to_owned();
    let agent = started["exposed_urls"][0]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let with_key = client
        .get(format!("{agent}/api/conversations"))
        .header("X-Session-API-Key", &key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{agent}: {e}"));
    assert_eq!(with_key.status().as_u16(), 200);
    let without = client
        .get(format!("{agent}/api/conversations"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{agent}: {e}"));
    assert_eq!(without.status().as_u16(), 401);
    let id = id_of(&started);
    assert_eq!(causes(&api, &id).await, [pair("RUNNING", "user")]);

    // Refilled in the background; the taken one stays the only one listed.
    wait_for_warm(&api, 1).await;
    let listed = api.search_all(100).await.0;
    assert_eq!(listed.len(), 1);
    assert_eq!(id_of(&listed[0]), id);
    // The next start takes the new warm sandbox, not the first one again.
    let second = api.post("/api/v1/sandboxes").await.ok();
    assert_eq!(second["status"], "RUNNING", "{second}");
    assert_ne!(id_of(&second), id);
    assert_ne!(second["session_api_key"], started["session_api_key"]);
}
