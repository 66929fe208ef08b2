//! What a user sees when the runtime API fails, and what is stored afterwards.

use std::time::Duration;

use serde_json::{Value, json};

use sandboxd_tests::fake_runtime::{FakeRuntime, Fault};
use sandboxd_tests::host::Host;
use sandboxd_tests::sandboxd::Options;

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_owned()
}

async fn a_refused_start_is_a_502_naming_the_cause_and_leaves_nothing(host: Host) {
    let rt = FakeRuntime::start();
    let sd = host.start(&rt);
    let api = sd.api();
    rt.inject(
        Fault::status(500, r#"{"detail":"cluster full"}"#)
            .on("POST", "/start")
            .once(),
    );
    let reply = api.post("/api/v1/sandboxes?sandbox_id=doomed").await;
    assert_eq!(reply.status, 502);
    assert!(
        reply.detail().contains("HTTP 500") && reply.detail().contains("cluster full"),
        "{}",
        reply.detail()
    );
    assert_eq!(
        api.get("/api/v1/sandboxes/search").await.ok()["items"],
        json!([])
    );
    // The id is free again.
    assert_eq!(
        api.post("/api/v1/sandboxes?sandbox_id=doomed").await.ok()["id"],
        "doomed"
    );
}

async fn a_dropped_connection_on_start_leaves_no_record_of_a_sandbox_that_does_not_exist(
    host: Host,
) {
    let rt = FakeRuntime::start();
    let sd = host.start(&rt);
    let api = sd.api();
    rt.inject(Fault::drop_connection().on("POST", "/start").once());
    let reply = api.post("/api/v1/sandboxes").await;
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(
        api.get("/api/v1/sandboxes/search").await.ok()["items"],
        json!([])
    );
    assert!(rt.runtimes().is_empty());
}

async fn a_runtime_api_that_is_down_fails_writes_clearly_and_reads_report_missing(host: Host) {
    let rt = FakeRuntime::start();
    let sd = host.start(&rt);
    let api = sd.api();
    let id = id_of(&api.start().await);
    rt.shutdown();

    let reply = api.post("/api/v1/sandboxes").await;
    assert_eq!(reply.status, 502);
    assert!(
        reply.detail().contains("POST /start") && reply.detail().contains("connect"),
        "{}",
        reply.detail()
    );
    let page = api.get("/api/v1/sandboxes/search").await.ok();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["items"][0]["status"], "MISSING");
    assert_eq!(api.sandbox(&id).await["status"], "MISSING");
    assert_eq!(
        api.get(&format!("/api/v1/sandboxes/{id}")).await.ok()["status"],
        "MISSING"
    );
    for reply in [
        api.post(&format!("/api/v1/sandboxes/{id}/pause")).await,
        api.post(&format!("/api/v1/sandboxes/{id}/resume")).await,
    ] {
        assert_eq!(reply.status, 502, "{}", reply.body);
    }
    // A delete that may work once the runtime is back is to be retried.
    let reply = api.delete(&format!("/api/v1/sandboxes/{id}")).await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.detail().contains("retry"), "{}", reply.detail());
    // Nothing was forgotten while the runtime was away.
    assert_eq!(
        api.get("/api/v1/sandboxes/search").await.ok()["items"][0]["id"],
        json!(id)
    );
}

async fn a_failing_stop_keeps_the_sandbox_so_no_runtime_is_orphaned(host: Host) {
    let rt = FakeRuntime::start();
    let sd = host.start(&rt);
    let api = sd.api();
    let id = id_of(&api.start().await);
    rt.inject(Fault::status(503, "busy").on("POST", "/stop").once());
    let reply = api.delete(&format!("/api/v1/sandboxes/{id}")).await;
    assert_eq!(reply.status, 503, "a stop that may work later is retried");
    assert!(reply.detail().contains("not deleted"), "{}", reply.detail());
    assert_eq!(api.sandbox(&id).await["status"], "RUNNING");
    rt.inject(Fault::status(409, "locked").on("POST", "/stop").once());
    let reply = api.delete(&format!("/api/v1/sandboxes/{id}")).await;
    assert_eq!(reply.status, 502, "a refusal is the runtime's answer");
    assert_eq!(api.sandbox(&id).await["status"], "RUNNING");
    // Retrying works, and a 404 from /stop counts as gone.
    rt.inject(Fault::status(404, "").on("POST", "/stop").once());
    assert_eq!(
        api.delete(&format!("/api/v1/sandboxes/{id}")).await.ok(),
        json!({"success": true})
    );
    assert_eq!(api.sandbox(&id).await, Value::Null);
}

async fn malformed_runtime_answers_are_tolerated(host: Host) {
    let rt = FakeRuntime::start();
    let sd = host.start(&rt);
    let api = sd.api();
    let id = id_of(&api.start().await);

    for body in ["not json", "{\"runtimes\": 5}", "null", "[null, 3]", "{}"] {
        rt.inject(Fault::body(body).on("GET", "/sessions/batch").once());
        let page = api.get("/api/v1/sandboxes/search").await.ok();
        assert_eq!(page["items"][0]["status"], "MISSING", "batch body {body}");
    }
    rt.inject(Fault::batch_null_body().once());
    assert_eq!(
        api.get("/api/v1/sandboxes/search").await.ok()["items"][0]["status"],
        "MISSING"
    );
    rt.inject(Fault::batch_null_entries().once());
    assert_eq!(
        api.get("/api/v1/sandboxes/search").await.ok()["items"][0]["status"],
        "RUNNING"
    );

    rt.set_field(&id, "status", json!(42));
    rt.set_field(&id, "url", Value::Null);
    rt.set_field(&id, "session_api_key", json!({"nested": true}));
    let sb = api.get(&format!("/api/v1/sandboxes/{id}")).await.ok();
    assert_eq!(sb["session_api_key"], Value::Null);
    rt.set_status(&id, "running");
    rt.remove_field(&id, "url");
    let sb = api.get(&format!("/api/v1/sandboxes/{id}")).await.ok();
    assert_eq!(
        (sb["status"].clone(), sb["exposed_urls"].clone()),
        (json!("RUNNING"), json!([]))
    );

    rt.inject(
        Fault::body("<html>oops</html>")
            .on("GET", "/sessions/")
            .once(),
    );
    assert_eq!(
        api.get(&format!("/api/v1/sandboxes/{id}")).await.ok()["status"],
        "MISSING"
    );
    rt.inject(
        Fault::body("{\"runtimes\": [1, null, {\"session_id\": 7}]}")
            .on("GET", "/list")
            .once(),
    );
    assert_eq!(
        api.post("/api/v1/sandboxes").await.status,
        200,
        "a malformed /list never fails a start"
    );
}

async fn a_slow_runtime_api_is_cut_off_by_the_configured_timeout(host: Host) {
    let rt = FakeRuntime::start();
    let config = format!(
        "[runtime]\napi_url = \"{}\"\napi_key = \"{}\"\n[http]\ntimeout = 0.5\n",
        rt.url(),
        rt.api_key()
    );
    let sd = host.spawn(Options::default().config(&config));
    let api = sd.api();
    let id = id_of(&api.start().await);
    rt.inject(
        Fault::delay(Duration::from_secs(3))
            .on("GET", "/sessions/")
            .once(),
    );
    let started = std::time::Instant::now();
    let sb = api.get(&format!("/api/v1/sandboxes/{id}")).await.ok();
    assert_eq!(sb["status"], "MISSING");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    rt.inject(
        Fault::delay(Duration::from_secs(3))
            .on("POST", "/pause")
            .once(),
    );
    let reply = api.post(&format!("/api/v1/sandboxes/{id}/pause")).await;
    assert_eq!(reply.status, 502);
    assert!(reply.detail().contains("timed out"), "{}", reply.detail());
}

/// A read that waits before its retry (here for the runtime's `Retry-After:
/// 2`) waits alone: the host answers every other call meanwhile.
async fn a_read_waiting_to_retry_holds_up_no_other_call(host: Host) {
    let rt = FakeRuntime::start();
    let sd = host.start(&rt);
    let api = sd.api();
    let id = id_of(&api.start().await);
    let applied = rt.faults_applied();
    rt.inject(
        Fault::status(429, r#"{"detail":"slow down"}"#)
            .header("retry-after", "2")
            .on("GET", "/sessions/")
            .once(),
    );
    let waiting = {
        let (api, path) = (api.clone(), format!("/api/v1/sandboxes/{id}"));
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let reply = api.get(&path).await;
            (reply, started.elapsed())
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rt.faults_applied() == applied {
        assert!(
            std::time::Instant::now() < deadline,
            "the get never reached the runtime"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The host has its 429 by now, and waits to retry.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    for _ in 0..3 {
        api.get("/api/v1/sandbox-specs/search").await.ok();
    }
    let others = started.elapsed();
    let (reply, waited) = waiting.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reply.ok()["status"], "RUNNING", "the retry found it");
    assert!(
        waited >= Duration::from_millis(1900),
        "the Retry-After was honoured: {waited:?}"
    );
    assert!(
        others < Duration::from_secs(1),
        "three spec searches took {others:?}: they waited for another call's retry"
    );
}

on_both_hosts!(
    a_refused_start_is_a_502_naming_the_cause_and_leaves_nothing,
    a_dropped_connection_on_start_leaves_no_record_of_a_sandbox_that_does_not_exist,
    a_runtime_api_that_is_down_fails_writes_clearly_and_reads_report_missing,
    a_failing_stop_keeps_the_sandbox_so_no_runtime_is_orphaned,
    malformed_runtime_answers_are_tolerated,
    a_slow_runtime_api_is_cut_off_by_the_configured_timeout,
    a_read_waiting_to_retry_holds_up_no_other_call,
);
