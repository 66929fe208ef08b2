//! Injected faults and latency, seen from a real client.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::super::{FakeAgentServer, FakeAgentServerOptions, Fault, FaultAction};
use super::Client;

fn two_agents() -> FakeAgentServer {
    let fake = FakeAgentServer::start();
    fake.add_agent("sb-1", "key-1");
    fake.add_agent("sb-2", "key-2");
    fake
}

#[tokio::test]
async fn status_faults_apply_per_agent_and_path_the_given_number_of_times() {
    let fake = two_agents();
    let conversation = fake.add_conversation("sb-1", Value::Null);
    let one = Client::new(&fake, "sb-1");
    let two = Client::new(&fake, "sb-2");
    let events = format!("/api/conversations/{conversation}/events/search");
    fake.inject(
        Fault::status(503, r#"{"detail": "busy"}"#)
            .agent("sb-1")
            .path("/events/search")
            .times(2),
    );

    // Other paths and other agents are untouched.
    assert_eq!(one.get("/api/conversations/search").await.0, 200);
    assert_eq!(two.get(&events).await.0, 404);
    for _ in 0..2 {
        assert_eq!(one.get(&events).await, (503, json!({"detail": "busy"})));
    }
    assert_eq!(one.get(&events).await.0, 200);

    // Faults come before the key check, like a proxy in front of the sandbox.
    fake.inject(Fault::new(FaultAction::Status(502, "bad gateway".to_owned())).once());
    let anonymous = Client::with_key(&fake, "sb-2", None);
    assert_eq!(
        anonymous.get("/api/conversations/search").await,
        (502, Value::String("bad gateway".to_owned()))
    );
    assert_eq!(anonymous.get("/api/conversations/search").await.0, 401);

    // Forever, until cleared; unfiltered faults hit every agent, even unknown ones.
    fake.inject(Fault::status(500, "").path("/alive").forever());
    for _ in 0..3 {
        assert_eq!(one.get("/alive").await.0, 500);
        assert_eq!(two.get("/alive").await.0, 500);
    }
    let ghost = Client::with_key(&fake, "ghost", None);
    assert_eq!(ghost.get("/alive").await.0, 500);
    assert_eq!(one.get("/health").await.0, 200);
    fake.clear_faults();
    assert_eq!(one.get("/alive").await.0, 200);
    assert_eq!(ghost.get("/alive").await.0, 404);
}

#[tokio::test]
async fn body_faults_answer_200_with_malformed_bodies() {
    let fake = two_agents();
    let client = Client::new(&fake, "sb-2");
    let bodies = [
        "not json",
        r#"{"items": 5}"#,
        r#"{"items": [null], "next_page_id": 7}"#,
        "null",
        "",
    ];
    for raw in bodies {
        fake.inject(
            Fault::body(raw)
                .agent("sb-2")
                .path("/conversations/search")
                .once(),
        );
    }
    for raw in bodies {
        let (status, body) = client.get("/api/conversations/search").await;
        assert_eq!(status, 200);
        let expected = serde_json::from_str(raw).unwrap_or(Value::String(raw.to_owned()));
        assert_eq!(body, expected);
    }
    assert_eq!(
        client.get("/api/conversations/search").await,
        (200, json!({"items": [], "next_page_id": null}))
    );
}

#[tokio::test]
async fn drop_closes_the_connection_without_an_answer() {
    let fake = two_agents();
    let client = Client::new(&fake, "sb-1");
    fake.inject(
        Fault::drop_connection()
            .agent("sb-1")
            .path("/api/")
            .times(2),
    );
    for _ in 0..2 {
        let error = client
            .send(reqwest::Method::GET, "/api/conversations/search")
            .await
            .expect_err("a dropped connection is a client error");
        assert!(error.status().is_none(), "{error:?}");
        assert!(error.is_request() || error.is_connect(), "{error:?}");
    }
    // The requests were recorded, and the next one is answered normally.
    assert_eq!(fake.count("sb-1", "/api/conversations/search"), 2);
    assert_eq!(client.get("/api/conversations/search").await.0, 200);
    assert_eq!(
        Client::new(&fake, "sb-2")
            .get("/api/conversations/search")
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn delay_faults_and_latency_slow_answers_down() {
    let fake = two_agents();
    let one = Client::new(&fake, "sb-1");
    let two = Client::new(&fake, "sb-2");
    let delay = Duration::from_millis(300);

    fake.inject(Fault::delay(delay).agent("sb-1").once());
    fake.inject(Fault::status(503, "").agent("sb-1").once());
    let started = Instant::now();
    // Both apply: a delay does not stop later faults from matching.
    assert_eq!(one.get("/alive").await.0, 503);
    assert!(started.elapsed() >= delay);
    let started = Instant::now();
    assert_eq!(one.get("/alive").await.0, 200);
    assert!(started.elapsed() < delay, "the delay was used up");

    // A slow agent does not slow the others down.
    fake.inject(Fault::delay(Duration::from_secs(2)).agent("sb-1").once());
    let slow = tokio::spawn(async move { one.get("/alive").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    assert_eq!(two.get("/alive").await.0, 200);
    assert!(started.elapsed() < delay);
    assert_eq!(slow.await.expect("the slow request ends").0, 200);

    fake.set_latency(delay);
    let started = Instant::now();
    assert_eq!(two.get("/nothing").await.0, 404);
    assert!(started.elapsed() >= delay);
    fake.set_latency(Duration::ZERO);
    let started = Instant::now();
    assert_eq!(two.get("/nothing").await.0, 404);
    assert!(started.elapsed() < delay);
}

#[tokio::test]
async fn latency_from_options_applies_to_every_answer() {
    let latency = Duration::from_millis(100);
    let fake = FakeAgentServer::start_with(FakeAgentServerOptions {
        latency,
        worker_threads: 2,
        ..Default::default()
    });
    fake.add_agent("", "k");
    let started = Instant::now();
    assert_eq!(Client::with_key(&fake, "", None).get("/api/x").await.0, 401);
    assert!(started.elapsed() >= latency);
}

#[tokio::test]
async fn a_slow_request_does_not_hold_up_shutdown() {
    let fake = two_agents();
    fake.inject(Fault::delay(Duration::from_secs(60)));
    let client = Client::new(&fake, "sb-1");
    let pending = tokio::spawn(async move { client.send(reqwest::Method::GET, "/alive").await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    drop(fake);
    assert!(started.elapsed() < Duration::from_secs(5));
    let answer = pending.await.expect("the client task ends");
    assert!(answer.is_err(), "{answer:?}");
}
