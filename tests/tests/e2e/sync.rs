//! Conversations and events through the real binary: polling fake agent
//! servers, webhooks, the query API, the event stream and callbacks.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use sandboxd_tests::client::Api;
use sandboxd_tests::fake_agent::{FakeAgentServer, Fault};
use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions};
use sandboxd_tests::host::Host;
use sandboxd_tests::receiver::{Receiver, signature};
use sandboxd_tests::sandboxd::{Options, Sandboxd};

struct Setup {
    agents: FakeAgentServer,
    rt: FakeRuntime,
}

/// A fake runtime whose sandboxes' agent servers all live in one fake agent
/// server, each under its sandbox id.
fn setup() -> Setup {
    let agents = FakeAgentServer::start();
    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        url_template: format!("{}/{{session_id}}", agents.url()),
        ..Default::default()
    });
    Setup { agents, rt }
}

fn polling(s: &Setup) -> Options {
    Options::for_runtime(&s.rt).env("SANDBOXD_POLLING_INTERVAL", "1")
}

/// Start a sandbox and register its agent server; its id and session key.
async fn sandbox(s: &Setup, api: &Api) -> (String, String) {
    let sb = api.start().await;
    let id = sb["id"].as_str().unwrap_or_default().to_owned();
    let key = sb["session_api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    s.agents.add_agent(&id, &key);
    (id, key)
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn event(id: &str, ts: &str, kind: &str) -> Value {
    json!({"kind": kind, "id": id, "timestamp": ts, "source": "agent", "extra": {"nested": [1, 2, {"x": null}]}})
}

async fn event_ids(api: &Api, conversation: &str, query: &str) -> Vec<String> {
    let page = api
        .get(&format!(
            "/api/v1/conversations/{conversation}/events/search?{query}"
        ))
        .await
        .ok();
    page["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn polling_syncs_conversations_and_events_exactly_once(host: Host) {
    let s = setup();
    let sd = host.spawn(polling(&s));
    let api = sd.api();
    let (sandbox_id, _) = sandbox(&s, &api).await;
    let conv = s.agents.add_conversation(
        &sandbox_id,
        json!({"execution_status": "running", "title": "first"}),
    );
    let events = [
        event("e3", "2026-11-26T07:00:03.000003", "ObservationEvent"),
        event("e1", "2026-11-26T07:00:01.000001", "MessageEvent"),
        event("e2", "2026-11-26T07:00:02.000002", "ActionEvent"),
    ];
    s.agents.add_events(&sandbox_id, &conv, events.clone());

    let path = format!("/api/v1/conversations/{conv}");
    wait_for("the first sync", Duration::from_secs(15), || async {
        api.get(&path).await.body["event_count"] == 3
    })
    .await;
    let c = api.get(&path).await.ok();
    assert_eq!(c["id"], json!(conv));
    assert_eq!(c["sandbox_id"], json!(sandbox_id));
    assert_eq!(c["execution_status"], "running");
    assert_eq!(c["title"], "first");
    // Undashed ids work too.
    assert_eq!(
        api.get(&format!("/api/v1/conversations/{}", conv.replace('-', "")))
            .await
            .status,
        200
    );

    // Events in timestamp order, each exactly as the agent server sent it.
    let page = api
        .get(&format!("/api/v1/conversations/{conv}/events/search"))
        .await
        .ok();
    assert_eq!(page["items"], json!([events[1], events[2], events[0]]));
    // And byte for byte: the page holds the agent server's own text of each.
    let text = api
        .get_text(&format!("/api/v1/conversations/{conv}/events/search"))
        .await;
    let sent: Vec<String> = [&events[1], &events[2], &events[0]]
        .iter()
        .map(|e| serde_json::to_string(e).unwrap_or_default())
        .collect();
    assert!(
        text.starts_with(&format!("{{\"items\":[{}]", sent.join(","))),
        "{text}"
    );
    assert_eq!(
        event_ids(&api, &conv, "sort_order=TIMESTAMP_DESC&limit=2").await,
        ["e3", "e2"]
    );
    assert_eq!(event_ids(&api, &conv, "kind=ActionEvent").await, ["e2"]);
    assert_eq!(
        event_ids(
            &api,
            &conv,
            "timestamp__gte=2026-11-26T07:00:02&timestamp__lt=2026-11-26T07:00:03"
        )
        .await,
        ["e2"]
    );

    // New events arrive; the repeats in the poll's margin are not stored again.
    s.agents.add_event(
        &sandbox_id,
        &conv,
        event("e4", "2026-11-26T07:00:04", "MessageEvent"),
    );
    s.agents
        .update_conversation(&sandbox_id, &conv, json!({"execution_status": "finished"}));
    wait_for("the new event", Duration::from_secs(15), || async {
        api.get(&path).await.body["event_count"] == 4
    })
    .await;
    wait_for("the new status", Duration::from_secs(15), || async {
        api.get(&path).await.body["execution_status"] == "finished"
    })
    .await;
    assert_eq!(event_ids(&api, &conv, "").await, ["e1", "e2", "e3", "e4"]);

    let found = api
        .get(&format!(
            "/api/v1/conversations/search?sandbox_id={sandbox_id}"
        ))
        .await
        .ok();
    assert_eq!(found["items"].as_array().map(Vec::len), Some(1));
    assert!(
        sd.logs().contains("poll cycle"),
        "each cycle logs a summary"
    );
}

async fn a_failing_agent_server_is_named_and_does_not_stop_the_others(host: Host) {
    let s = setup();
    let config = format!(
        "[runtime]\napi_url = \"{}\"\napi_key = \"{}\"\npolling_interval = 1\n[sync]\nrequest_timeout = 0.5\n",
        s.rt.url(),
        s.rt.api_key()
    );
    let sd = host.spawn(Options::default().config(&config));
    let api = sd.api();
    let (good, _) = sandbox(&s, &api).await;
    let (refusing, _) = sandbox(&s, &api).await;
    let (gone, _) = sandbox(&s, &api).await;
    let (broken, _) = sandbox(&s, &api).await;
    let (slow, _) = sandbox(&s, &api).await;
    s.agents.set_key(&refusing, "not-the-key");
    s.agents.remove_agent(&gone);
    s.agents
        .inject(Fault::status(500, "boom").agent(&broken).forever());
    s.agents
        .inject(Fault::delay(Duration::from_secs(3)).agent(&slow).forever());
    let conv = s.agents.add_conversation(&good, json!({}));
    s.agents.add_event(
        &good,
        &conv,
        event("e1", "2026-11-26T07:00:01", "MessageEvent"),
    );
    let path = format!("/api/v1/conversations/{conv}");
    let started = Instant::now();
    wait_for(
        "the good sandbox's sync",
        Duration::from_secs(15),
        || async { api.get(&path).await.body["event_count"] == 1 },
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "a slow agent server stalled the cycle"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = sd.logs();
        let named = |id: &str| {
            logs.lines()
                .any(|l| l.contains("poll cycle") && l.contains(id))
        };
        if named(&refusing) && named(&gone) && named(&broken) && named(&slow) {
            assert!(
                logs.contains("refused the session key"),
                "the reason is named"
            );
            assert!(
                logs.contains("HTTP 500") && logs.contains("timed out"),
                "the reasons are named"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cycle summary named every failing sandbox:\n{logs}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two users by API key (both hosts support that mode; trusted-header users
/// are `users::a_trusted_gateway_names_the_user`'s).
async fn webhooks_are_authenticated_by_the_sandbox_session_key(host: Host) {
    let s = setup();
    let (alice_api_key, bob_api_key) = ("alice-key-0123456789abcdef", "bob-key-0123456789abcdef");
    let keys = format!(
        "[auth]\nmode = \"api-keys\"\n\
         [[auth.keys]]\nkey = \"{alice_api_key}\"\nuser_id = \"alice\"\n\
         [[auth.keys]]\nkey = \"{bob_api_key}\"\nuser_id = \"bob\"\n"
    );
    let sd = host.spawn(
        Options::for_runtime(&s.rt)
            .config(&keys)
            .env("SANDBOXD_SYNC_MODE", "webhook"),
    );
    let alice = sd.api().with_key(alice_api_key);
    let bob = sd.api().with_key(bob_api_key);
    let (alice_sb, alice_key) = sandbox(&s, &alice).await;
    let (_, bob_key) = sandbox(&s, &bob).await;
    let conv = "c0ffee00-0000-4000-8000-000000000001";
    let post = |key: Option<&str>, path: &str, body: Value| {
        let client = reqwest::Client::new();
        let mut req = client
            .post(format!("{}/api/v1/webhooks/{path}", sd.url()))
            .json(&body);
        if let Some(k) = key {
            req = req.header("x-session-api-key", k);
        }
        async move { req.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    let info = json!({"id": conv, "execution_status": "idle", "title": "via webhook", "updated_at": "2026-11-26T07:00:00"});
    assert_eq!(post(None, "conversations", info.clone()).await, 401);
    assert_eq!(
        post(Some("wrong"), "conversations", info.clone()).await,
        401
    );
    assert_eq!(
        post(Some(&alice_key), "conversations", info.clone()).await,
        200
    );
    let batch = json!([event("e1", "2026-11-26T07:00:01", "MessageEvent"), {
        "kind": "ConversationStateUpdateEvent", "id": "s1", "timestamp": "2026-11-26T07:00:05",
        "key": "execution_status", "value": "finished"
    }]);
    let hex = conv.replace('-', "");
    assert_eq!(
        post(Some(&alice_key), &format!("events/{hex}"), batch.clone()).await,
        200
    );
    assert_eq!(
        post(Some(&alice_key), &format!("events/{hex}"), batch.clone()).await,
        200,
        "a repeat is acknowledged"
    );
    assert_eq!(
        post(Some(&bob_key), &format!("events/{hex}"), batch.clone()).await,
        401,
        "not bob's conversation"
    );
    assert_eq!(
        post(Some(&alice_key), "events/not%2Fan-id", batch.clone()).await,
        400
    );
    assert_eq!(
        post(
            Some(&alice_key),
            &format!("events/{hex}"),
            json!({"not": "a list"})
        )
        .await,
        400
    );
    let deleting = json!({"id": conv, "execution_status": "deleting"});
    assert_eq!(post(Some(&alice_key), "conversations", deleting).await, 200);

    let c = alice
        .get(&format!("/api/v1/conversations/{conv}"))
        .await
        .ok();
    assert_eq!(c["title"], "via webhook");
    assert_eq!(
        c["execution_status"], "finished",
        "state updates arrive as events"
    );
    assert_eq!(c["event_count"], 2);
    assert_eq!(
        bob.get(&format!("/api/v1/conversations/{conv}"))
            .await
            .status,
        404
    );
    assert_eq!(
        bob.get(&format!("/api/v1/conversations/{conv}/events/search"))
            .await
            .status,
        404
    );
    assert_eq!(
        bob.get("/api/v1/conversations/search").await.ok()["items"],
        json!([])
    );

    // A paused sandbox's key still takes its agent server's final webhooks,
    // for the teardown grace (30 s; its end is tested in `policies`).
    alice
        .post(&format!("/api/v1/sandboxes/{alice_sb}/pause"))
        .await
        .ok();
    assert_eq!(
        post(Some(&alice_key), &format!("events/{hex}"), batch).await,
        200
    );
}

async fn an_event_that_arrives_by_webhook_and_by_poll_is_stored_once(host: Host) {
    let s = setup();
    let sd = host.spawn(polling(&s));
    let api = sd.api();
    let (sandbox_id, key) = sandbox(&s, &api).await;
    let conv = s.agents.add_conversation(&sandbox_id, json!({}));
    let e1 = event("e1", "2026-11-26T07:00:01", "MessageEvent");
    let client = reqwest::Client::new();
    let status = client
        .post(format!(
            "{}/api/v1/webhooks/events/{}",
            sd.url(),
            conv.replace('-', "")
        ))
        .header("x-session-api-key", &key)
        .json(&json!([e1]))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert_eq!(status, 200);
    s.agents.add_events(
        &sandbox_id,
        &conv,
        [e1, event("e2", "2026-11-26T07:00:02", "MessageEvent")],
    );
    let path = format!("/api/v1/conversations/{conv}");
    wait_for("the poll", Duration::from_secs(15), || async {
        api.get(&path).await.body["event_count"] == 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(event_ids(&api, &conv, "").await, ["e1", "e2"]);
}

/// Rust host only: the Node.js host does not serve the event stream.
#[tokio::test]
async fn new_events_stream_as_server_sent_events() {
    let _turn = crate::serial::shared().await;
    let s = setup();
    let sd = Sandboxd::start_with(Options::for_runtime(&s.rt).env("SANDBOXD_SYNC_MODE", "webhook"));
    let api = sd.api();
    let (_, key) = sandbox(&s, &api).await;
    let conv = "5e5e5e5e-0000-4000-8000-000000000001";
    let client = reqwest::Client::new();
    let push = |events: Value| {
        client
            .post(format!("{}/api/v1/webhooks/events/{conv}", sd.url()))
            .header("x-session-api-key", &key)
            .json(&events)
            .send()
    };
    push(json!([event("old", "2026-11-26T07:00:00", "MessageEvent")]))
        .await
        .map(|r| r.status())
        .ok();

    let mut stream = client
        .get(format!(
            "{}/api/v1/conversations/{conv}/events/stream",
            sd.url()
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    push(json!([
        event("n1", "2026-11-26T07:00:01", "MessageEvent"),
        event("n2", "2026-11-26T07:00:02", "ActionEvent")
    ]))
    .await
    .map(|r| r.status())
    .ok();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text.contains("id: n2") {
        assert!(Instant::now() < deadline, "stream got only: {text}");
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_secs(1), stream.chunk()).await
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(
        !text.contains("id: old"),
        "the stream starts with what is new"
    );
    assert!(text.contains("id: n1\ndata: {"), "{text}");
    let data: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert_eq!(data[0]["id"], "n1");
    assert_eq!(data[1]["kind"], "ActionEvent");
    assert_eq!(
        api.get("/api/v1/conversations/00000000-0000-4000-8000-000000000000/events/stream")
            .await
            .status,
        404
    );
}

/// Rust host only: the Node.js host does not serve the callback routes.
#[tokio::test]
async fn callbacks_are_signed_retried_logged_and_survive_a_restart() {
    let _turn = crate::serial::shared().await;
    let s = setup();
    let receiver = Receiver::start();
    let mut sd =
        Sandboxd::start_with(Options::for_runtime(&s.rt).env("SANDBOXD_SYNC_MODE", "webhook"));
    let api = sd.api();
    let (_, key) = sandbox(&s, &api).await;
    let conv = "ca11ba c0-0000-4000-8000-000000000001".replace(' ', "");
    let created = api
        .request(reqwest::Method::POST, "/api/v1/event-callbacks")
        .await;
    assert_eq!(created.status, 422, "a body is required");
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{}/api/v1/event-callbacks", sd.url()))
        .json(&json!({"url": format!("{}/hook", receiver.url()), "event_kinds": ["ActionEvent"]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    let secret = created["secret"].as_str().unwrap_or_default().to_owned();
    assert!(secret.len() >= 32, "{created}");
    let listed = api.get(&format!("/api/v1/event-callbacks/{id}")).await.ok();
    assert_eq!(listed["secret"], Value::Null, "the secret is shown once");
    assert_eq!(
        api.get("/api/v1/event-callbacks")
            .await
            .ok()
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let push = |events: Value, url: String| {
        let client = client.clone();
        let key = key.clone();
        async move {
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
    let events_url = format!("{}/api/v1/webhooks/events/{conv}", sd.url());
    let action = event("a1", "2026-11-26T07:00:01", "ActionEvent");
    assert_eq!(
        push(
            json!([
                event("m1", "2026-11-26T07:00:00", "MessageEvent"),
                action.clone()
            ]),
            events_url.clone()
        )
        .await,
        200
    );
    let got = receiver.wait_for(1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "only the matching kind");
    assert_eq!(got[0].json(), action, "the event exactly as received");
    assert_eq!(
        got[0].header("x-sandboxd-signature").map(str::to_owned),
        Some(signature(&secret, &got[0].body))
    );
    assert_eq!(got[0].header("x-sandboxd-callback-id"), Some(id.as_str()));

    // The receiver fails: attempts are retried and logged.
    receiver.set_status(500);
    assert_eq!(
        push(
            json!([event("a2", "2026-11-26T07:00:02", "ActionEvent")]),
            events_url.clone()
        )
        .await,
        200
    );
    let got = receiver.wait_for(3, Duration::from_secs(10));
    assert!(got.len() >= 3, "retried");
    let log = api
        .get(&format!("/api/v1/event-callbacks/{id}/deliveries"))
        .await
        .ok();
    let states: Vec<&str> = log["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|i| i["state"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        states.contains(&"delivered") && states.contains(&"pending"),
        "{log}"
    );
    assert!(
        log["items"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("500"),
        "{log}"
    );

    // Killed while a delivery is pending; the next sandboxd delivers it.
    let data_dir = sd.data_dir().to_path_buf();
    sd.kill();
    receiver.set_status(200);
    let before = receiver.received().len();
    let sd = Sandboxd::start_with(Options {
        data_dir: Some(data_dir),
        ..Options::for_runtime(&s.rt).env("SANDBOXD_SYNC_MODE", "webhook")
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = receiver.received();
        if got[before..].iter().any(|r| r.json()["id"] == "a2") {
            let last = got
                .iter()
                .rev()
                .find(|r| r.json()["id"] == "a2")
                .cloned()
                .unwrap_or_else(|| panic!("a2"));
            assert_eq!(
                last.header("x-sandboxd-signature").map(str::to_owned),
                Some(signature(&secret, &last.body)),
                "same secret after a restart"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pending delivery was lost across the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = sd
        .api()
        .get(&format!("/api/v1/event-callbacks/{id}/deliveries"))
        .await
        .ok();
    assert_eq!(log["items"][0]["state"], "delivered");
    assert_eq!(
        sd.api()
            .delete(&format!("/api/v1/event-callbacks/{id}"))
            .await
            .ok(),
        json!({"success": true})
    );
    assert_eq!(
        sd.api()
            .get(&format!("/api/v1/event-callbacks/{id}"))
            .await
            .status,
        404
    );
}

async fn conversation_queries_validate_their_input(host: Host) {
    let s = setup();
    let sd = host.start(&s.rt);
    let api = sd.api();
    assert_eq!(
        api.get("/api/v1/conversations/not-a-real-one").await.status,
        404
    );
    assert_eq!(
        api.get("/api/v1/conversations/search?limit=0").await.status,
        422
    );
    assert_eq!(
        api.get("/api/v1/conversations/x/events/search?sort_order=SIDEWAYS")
            .await
            .status,
        422
    );
    assert_eq!(
        api.get("/api/v1/conversations/search").await.ok(),
        json!({"items": [], "next_page_id": null})
    );
    let bad = api
        .request(reqwest::Method::GET, "/api/v1/webhooks/conversations")
        .await;
    assert_eq!(bad.status, 405);
}

on_both_hosts!(
    polling_syncs_conversations_and_events_exactly_once,
    a_failing_agent_server_is_named_and_does_not_stop_the_others,
    webhooks_are_authenticated_by_the_sandbox_session_key,
    an_event_that_arrives_by_webhook_and_by_poll_is_stored_once,
    conversation_queries_validate_their_input,
);
