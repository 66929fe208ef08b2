//! Secrets stay secret through a full run.
//!
//! One sandboxd, logging at `trace` for every crate but the compiler, is driven through
//! everything that touches a secret: users' API keys, the runtime API key, the
//! session keys of sandboxes (issued at start, cleared at pause, rotated at
//! resume), webhooks with right and wrong keys, the polling loop against agent
//! servers that check keys, callbacks with their signing secret, and runtime
//! faults whose errors reach the user. Afterwards, none of those secrets may
//! appear in the log, in an error answer, or in clear in the data directory
//! (session keys are kept only as SHA-256 hashes).

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use sandboxd_tests::fake_agent::FakeAgentServer;
use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions, Fault};
use sandboxd_tests::receiver::Receiver;
use sandboxd_tests::sandboxd::{Options, Sandboxd};

const ALICE: &str = "alice-secret-key-7f3a9c1e55d2";
const ADMIN: &str = "admin-secret-key-0b8e4d6a2c91";

/// Everything at `trace`, but the compiler's own chatter about the component.
const LOG_EVERYTHING: &str = "trace,wasmtime=info,wasmtime_environ=info,wasmtime_internal_cranelift=info,\
     cranelift_codegen=info,cranelift_frontend=info,regalloc2=info,wasmparser=info";

fn config() -> String {
    format!(
        "[auth]\nmode = \"api-keys\"\n\
         [[auth.keys]]\nkey = \"{ALICE}\"\nuser_id = \"alice\"\n\
         [[auth.keys]]\nkey = \"{ADMIN}\"\nadmin = true\n"
    )
}

fn text(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap_or_default().to_owned()
}

/// Every file under `dir`, as bytes with the path, for a search in clear.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn no_secret_reaches_the_logs_the_errors_or_the_store() {
    let _turn = crate::serial::shared().await;
    let agents = FakeAgentServer::start();
    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        url_template: format!("{}/{{session_id}}", agents.url()),
        ..Default::default()
    });
    let receiver = Receiver::start();
    let mut sd = Sandboxd::start_with(
        Options::for_runtime(&rt)
            .config(&config())
            .env("SANDBOXD_LOG", LOG_EVERYTHING)
            .env("SANDBOXD_POLLING_INTERVAL", "1"),
    );
    let alice = sd.api().with_key(ALICE);
    let admin = sd.api().with_key(ADMIN);
    let client = reqwest::Client::new();
    let mut session_keys: Vec<String> = Vec::new();
    let mut errors: Vec<String> = Vec::new();

    // Sandboxes, each with an agent server that checks its key and holds a
    // conversation, so the polling loop sends the keys around.
    let mut sandboxes = Vec::new();
    for _ in 0..3 {
        let sb = alice.start().await;
        let (id, key) = (text(&sb, "id"), text(&sb, "session_api_key"));
        assert!(!key.is_empty(), "{sb}");
        agents.add_agent(&id, &key);
        let conv = agents.add_conversation(&id, json!({"title": "secret test"}));
        agents.add_event(
            &id,
            &conv,
            json!({"kind": "MessageEvent", "id": format!("ev-{id}"), "timestamp": "2026-11-26T07:00:00", "source": "user"}),
        );
        session_keys.push(key);
        sandboxes.push((id, conv));
    }

    // A callback, so deliveries are signed with its secret.
    let created: Value = client
        .post(format!("{}/api/v1/event-callbacks", sd.url()))
        .bearer_auth(ALICE)
        .json(&json!({"url": format!("{}/hook", receiver.url())}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("create callback: {e}"))
        .json()
        .await
        .unwrap_or_default();
    let callback_secret = text(&created, "secret");
    assert!(!callback_secret.is_empty(), "{created}");

    // The polling loop picks the conversations up with the session keys.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let page = alice.get("/api/v1/conversations/search").await.ok();
        if page["items"].as_array().map_or(0, Vec::len) == sandboxes.len() {
            break;
        }
        assert!(Instant::now() < deadline, "sync never found them: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Webhooks: with the right key, a wrong one, and a key that was close.
    let (first_id, first_conv) = sandboxes[0].clone();
    for key in [
        session_keys[0].clone(),
        "wrong-key-that-is-long-enough".to_owned(),
        format!("{}x", session_keys[0]),
    ] {
        let reply = client
            .post(format!(
                "{}/api/v1/webhooks/events/{first_conv}",
                sd.url()
            ))
            .header("x-session-api-key", &key)
            .json(&json!([{"kind": "ActionEvent", "id": format!("wh-{}", key.len()), "timestamp": "2026-11-26T07:00:01", "source": "agent"}]))
            .send()
            .await
            .unwrap_or_else(|e| panic!("webhook: {e}"));
        let status = reply.status().as_u16();
        let body = reply.text().await.unwrap_or_default();
        if status != 200 {
            errors.push(body);
        }
    }
    receiver.wait_for(1, Duration::from_secs(10));

    // Pause clears the key; resume rotates it; the old one no longer works.
    alice
        .post(&format!("/api/v1/sandboxes/{first_id}/pause"))
        .await
        .ok();
    alice
        .post(&format!("/api/v1/sandboxes/{first_id}/resume"))
        .await
        .ok();
    let resumed = alice.sandbox(&first_id).await;
    let rotated = text(&resumed, "session_api_key");
    assert!(
        !rotated.is_empty() && rotated != session_keys[0],
        "{resumed}"
    );
    session_keys.push(rotated);
    for rt_object in rt.runtimes() {
        session_keys.push(text(&rt_object, "session_api_key"));
    }

    // Failures whose errors reach the user: wrong user keys, and a runtime
    // that fails every way.
    for key in [
        "not-a-key-but-long-enough-1234",
        ALICE.get(..20).unwrap_or(ALICE),
    ] {
        let reply = sd.api().with_key(key).get("/api/v1/sandboxes/search").await;
        assert_eq!(reply.status, 401);
        errors.push(reply.body.to_string());
    }
    for fault in [
        Fault::status(500, "internal"),
        Fault::status(401, "{\"detail\": \"bad key\"}"),
        Fault::status(503, ""),
        Fault::drop_connection(),
    ] {
        rt.inject(fault.clone().on("GET", "/sessions").times(6));
        let reply = alice
            .request(Method::GET, &format!("/api/v1/sandboxes/{first_id}"))
            .await;
        errors.push(reply.body.to_string());
        rt.inject(fault.on("POST", "/pause").times(1));
        let reply = alice
            .post(&format!("/api/v1/sandboxes/{}/pause", sandboxes[1].0))
            .await;
        errors.push(reply.body.to_string());
        rt.clear_faults();
    }
    // The admin's views of the service.
    for path in ["/api/v1/admin/plugin", "/healthz"] {
        errors.push(admin.get(path).await.body.to_string());
    }
    for (id, _) in &sandboxes {
        alice.delete(&format!("/api/v1/sandboxes/{id}")).await.ok();
    }
    sd.stop();

    let logs = sd.logs();
    assert!(
        logs.lines().count() > 50,
        "the run logged too little to prove anything"
    );
    let mut secrets: Vec<(&str, String)> = vec![
        ("the runtime API key", rt.api_key().to_owned()),
        ("a user's API key", ALICE.to_owned()),
        ("the admin key", ADMIN.to_owned()),
        ("a callback secret", callback_secret),
    ];
    secrets.extend(
        session_keys
            .iter()
            .filter(|k| !k.is_empty())
            .map(|k| ("a session key", k.clone())),
    );
    for (what, secret) in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "{what} is in the log:\n{}",
            logs.lines()
                .filter(|l| l.contains(secret.as_str()))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
        for e in &errors {
            assert!(!e.contains(secret.as_str()), "{what} is in an answer: {e}");
        }
    }
    // In the store, session keys and the runtime key never appear in clear.
    let files = files_under(sd.data_dir());
    assert!(!files.is_empty(), "the data directory is empty");
    for (what, secret) in secrets
        .iter()
        .filter(|(w, _)| *w == "a session key" || *w == "the runtime API key")
    {
        for (path, bytes) in &files {
            assert!(
                !contains(bytes, secret),
                "{what} is stored in clear in {}",
                path.display()
            );
        }
    }
}
