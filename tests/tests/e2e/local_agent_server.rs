//! The README's spec for the real OpenHands agent server, run by the embedded
//! local runtime: a sandbox started through sandboxd runs the agent server,
//! reaches RUNNING, answers through its AGENT_SERVER URL, and is gone after
//! delete.

use std::time::{Duration, Instant};

use serde_json::Value;

use sandboxd_tests::agent_server::{local_spec_toml, venv_python};
use sandboxd_tests::sandboxd::{Options, Sandboxd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_agent_server_runs_as_a_local_sandbox() {
    let _turn = crate::serial::shared().await;
    let python = venv_python();
    let config = format!(
        "[runtime]\nstart_sandbox_timeout = 120\n{}",
        local_spec_toml(&python.display().to_string(), "")
    );
    let sd = Sandboxd::start_with(Options::default().config(&config));
    let api = sd.api();
    let sb = api.start().await;
    let id = sb["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(sb["sandbox_spec_id"], "openhands-agent-server");

    let deadline = Instant::now() + Duration::from_secs(120);
    let sb = loop {
        let sb = api.sandbox(&id).await;
        match sb["status"].as_str() {
            Some("RUNNING") => break sb,
            Some("STARTING") => {}
            _ => panic!("the agent server did not start: {sb}\n{}", sd.logs()),
        }
        assert!(Instant::now() < deadline, "not RUNNING in time: {sb}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let agent = sb["exposed_urls"][0]["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key = sb["session_api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let alive = client
        .get(format!("{agent}/alive"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert_eq!(alive, 200);
    let refused = client
        .get(format!("{agent}/api/conversations/search"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert_eq!(
        refused, 401,
        "the agent server checks the session key sandboxd handed out"
    );
    let search: Value = client
        .get(format!("{agent}/api/conversations/search"))
        .header("X-Session-API-Key", &key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(search["items"], serde_json::json!([]), "{search}");

    api.delete(&format!("/api/v1/sandboxes/{id}")).await.ok();
    let gone = client
        .get(format!("{agent}/alive"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert_ne!(gone, 200, "the agent server is gone after delete");
    let sandboxes = sd.data_dir().join("sandboxes");
    assert_eq!(
        std::fs::read_dir(&sandboxes)
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}
