//! sandboxd syncing a real OpenHands agent server (1.58.2, from the venv the
//! harness prepares), whose conversation runs to the end against a fake LLM:
//! once by polling, once by webhooks. Every event must be stored exactly once,
//! with the agent server's own ids, and the conversation must read `finished`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use sandboxd_tests::agent_server::{AgentServer, AgentServerOptions, WebhookOptions};
use sandboxd_tests::client::Api;
use sandboxd_tests::fake_llm::FakeLlm;
use sandboxd_tests::fake_runtime::FakeRuntime;
use sandboxd_tests::sandboxd::{Options, Sandboxd};

/// All events sandboxd stored for a conversation, following every page.
async fn stored_events(api: &Api, conversation: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut page_id: Option<String> = None;
    loop {
        let path = match &page_id {
            None => format!("/api/v1/conversations/{conversation}/events/search?limit=100"),
            Some(p) => {
                format!("/api/v1/conversations/{conversation}/events/search?limit=100&page_id={p}")
            }
        };
        let page = api.get(&path).await;
        if page.status != 200 {
            return all;
        }
        all.extend(page.body["items"].as_array().cloned().unwrap_or_default());
        match page.body["next_page_id"].as_str() {
            Some(next) => page_id = Some(next.to_owned()),
            None => return all,
        }
    }
}

fn counts(events: &[Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for e in events {
        *counts
            .entry(e["id"].as_str().unwrap_or_default().to_owned())
            .or_insert(0) += 1;
    }
    counts
}

/// Start a sandbox through sandboxd and point its runtime at a real agent
/// server holding the sandbox's session key.
async fn sandbox_on_agent_server(
    rt: &FakeRuntime,
    api: &Api,
    webhook: Option<&str>,
) -> (String, AgentServer) {
    let sb = api.start().await;
    let id = sb["id"].as_str().unwrap_or_default().to_owned();
    let key = sb["session_api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut options = AgentServerOptions::default().session_api_key(&key);
    if let Some(base) = webhook {
        options = options.webhook(WebhookOptions::new(base));
    }
    let agent = AgentServer::start_with(options);
    rt.set_field(&id, "url", json!(agent.url()));
    (id, agent)
}

async fn wait_for_sync(
    api: &Api,
    conversation: &str,
    agent_events: &[Value],
    timeout: Duration,
) -> (Value, Vec<Value>) {
    let deadline = Instant::now() + timeout;
    loop {
        let c = api
            .get(&format!("/api/v1/conversations/{conversation}"))
            .await;
        let stored = stored_events(api, conversation).await;
        let have = counts(&stored);
        let complete = agent_events
            .iter()
            .all(|e| have.contains_key(e["id"].as_str().unwrap_or_default()));
        if c.status == 200 && c.body["execution_status"] == "finished" && complete {
            return (c.body, stored);
        }
        assert!(
            Instant::now() < deadline,
            "sandboxd did not catch up: conversation {} ({} of {} events stored)",
            c.body,
            stored.len(),
            agent_events.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_stores_a_real_conversation_exactly_once() {
    let _turn = crate::serial::shared().await;
    let llm = FakeLlm::start();
    let rt = FakeRuntime::start();
    let sd = Sandboxd::start_with(Options::for_runtime(&rt).env("SANDBOXD_POLLING_INTERVAL", "1"));
    let api = sd.api();
    let (_sandbox, agent) = sandbox_on_agent_server(&rt, &api, None).await;

    let conversation = agent.start_conversation(&llm, "Say hello").await;
    agent
        .wait_until_finished(&conversation, Duration::from_secs(120))
        .await;
    let agent_events = agent.events(&conversation).await;
    assert!(
        agent_events.len() >= 5,
        "a run has several events: {agent_events:?}"
    );

    let (c, stored) =
        wait_for_sync(&api, &conversation, &agent_events, Duration::from_secs(60)).await;
    assert_eq!(c["id"], json!(conversation));
    assert_eq!(c["execution_status"], "finished");
    assert_eq!(c["llm_model"], json!(llm.model()));
    // Exactly the agent server's events, each once, each as the agent server lists it.
    assert_eq!(stored.len(), agent_events.len(), "stored {stored:?}");
    assert!(counts(&stored).values().all(|n| *n == 1));
    let by_id: HashMap<&str, &Value> = stored
        .iter()
        .map(|e| (e["id"].as_str().unwrap_or_default(), e))
        .collect();
    for e in &agent_events {
        assert_eq!(
            by_id.get(e["id"].as_str().unwrap_or_default()),
            Some(&e),
            "event differs from the agent server's"
        );
    }
    // More cycles change nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        stored_events(&api, &conversation).await.len(),
        agent_events.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_store_a_real_conversation_exactly_once() {
    let _turn = crate::serial::shared().await;
    let llm = FakeLlm::start();
    let rt = FakeRuntime::start();
    let sd = Sandboxd::start_with(Options::for_runtime(&rt).env("SANDBOXD_SYNC_MODE", "webhook"));
    let api = sd.api();
    let webhooks = format!("{}/api/v1/webhooks", sd.url());
    let (_sandbox, agent) = sandbox_on_agent_server(&rt, &api, Some(&webhooks)).await;

    let conversation = agent.start_conversation(&llm, "Say hello").await;
    agent
        .wait_until_finished(&conversation, Duration::from_secs(120))
        .await;
    let agent_events = agent.events(&conversation).await;

    let (c, stored) =
        wait_for_sync(&api, &conversation, &agent_events, Duration::from_secs(60)).await;
    assert_eq!(
        c["execution_status"], "finished",
        "learned from state-update events"
    );
    // Every event once; webhook batches also carry full-state snapshots that the
    // search endpoint never lists.
    assert!(counts(&stored).values().all(|n| *n == 1), "{stored:?}");
    let extra: Vec<&Value> = stored
        .iter()
        .filter(|s| !agent_events.iter().any(|e| e["id"] == s["id"]))
        .collect();
    assert!(
        extra.iter().all(|e| e["key"] == "full_state"),
        "unexpected extra events: {extra:?}"
    );
    assert!(
        !sd.logs().contains("poll cycle"),
        "webhook mode does not poll"
    );
}
