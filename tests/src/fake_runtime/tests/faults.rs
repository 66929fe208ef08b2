//! Injected faults and latency, seen from a real client.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::super::{FakeRuntime, Fault, FaultAction};
use super::Api;

#[tokio::test]
async fn status_faults_apply_to_matching_requests_the_given_number_of_times() {
    let fake = FakeRuntime::start();
    let api = Api::new(&fake);
    fake.inject(
        Fault::status(503, r#"{"detail": "busy"}"#)
            .on("GET", "/list")
            .times(2),
    );

    // Other routes and methods are untouched.
    assert_eq!(api.get("/sessions/x").await.0, 404);
    assert_eq!(api.post_raw("/list", "{}").await.0, 405);
    for _ in 0..2 {
        assert_eq!(api.get("/list").await, (503, json!({"detail": "busy"})));
    }
    assert_eq!(api.get("/list").await.0, 200);

    // Faults come before the key check, like a proxy in front of the service.
    fake.inject(Fault::new(FaultAction::Status(502, "bad gateway".to_owned())).once());
    let (status, body) = Api::with_key(&fake, None).get("/list").await;
    assert_eq!(
        (status, body),
        (502, Value::String("bad gateway".to_owned()))
    );

    fake.inject(Fault::status(500, "").path("/sessions/"));
    assert_eq!(api.get("/sessions/a").await.0, 500);
    assert_eq!(api.get("/sessions/batch?ids=a").await.0, 500);
    fake.clear_faults();
    assert_eq!(api.get("/sessions/batch?ids=a").await.0, 200);
}

#[tokio::test]
async fn body_faults_answer_200_with_malformed_bodies() {
    let fake = FakeRuntime::start();
    let api = Api::new(&fake);
    let bodies = ["not json", r#"{"runtimes": 5}"#, "null", "[null, 3]", ""];
    for raw in bodies {
        fake.inject(Fault::body(raw).on("GET", "/list").once());
    }
    for raw in bodies {
        let (status, body) = api.get("/list").await;
        assert_eq!(status, 200);
        let expected = serde_json::from_str(raw).unwrap_or(Value::String(raw.to_owned()));
        assert_eq!(body, expected);
    }
    assert_eq!(
        api.get("/list").await.1,
        json!({"runtimes": [], "total": 0})
    );
}

#[tokio::test]
async fn batch_faults_put_nulls_in_the_list_or_answer_null() {
    let fake = FakeRuntime::start();
    let api = Api::new(&fake);
    fake.insert_runtime("a", "running");
    let a = fake.runtime("a").expect("inserted");

    fake.inject(Fault::batch_null_entries().once());
    let (status, body) = api.get("/sessions/batch?ids=nope&ids=a").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!([null, null, a]));

    // A batch fault without filters still only touches the batch route.
    fake.inject(Fault::batch_null_body().once());
    assert_eq!(api.get("/sessions/a").await, (200, a.clone()));
    assert_eq!(api.get("/sessions/batch?ids=a").await, (200, Value::Null));
    assert_eq!(api.get("/sessions/batch?ids=a").await, (200, json!([a])));
}

#[tokio::test]
async fn drop_closes_the_connection_without_an_answer() {
    let fake = FakeRuntime::start();
    let api = Api::new(&fake);
    assert_eq!(api.get("/list").await.0, 200);

    fake.inject(Fault::drop_connection().on("POST", "/stop").once());
    let error = api
        .send(
            reqwest::Method::POST,
            "/stop",
            Some(r#"{"runtime_id": "x"}"#),
        )
        .await
        .expect_err("a dropped connection is a client error");
    assert!(error.status().is_none(), "{error:?}");
    assert!(error.is_request() || error.is_connect(), "{error:?}");

    // The request was recorded, and the next one is answered normally.
    assert_eq!(fake.count("POST", "/stop"), 1);
    assert_eq!(api.post_raw("/stop", r#"{"runtime_id": "x"}"#).await.0, 404);
}

#[tokio::test]
async fn delay_faults_and_latency_slow_answers_down() {
    let fake = FakeRuntime::start();
    let api = Api::new(&fake);
    let delay = Duration::from_millis(300);

    fake.inject(Fault::delay(delay).on("GET", "/list").once());
    fake.inject(Fault::status(503, "").on("GET", "/list").once());
    let started = Instant::now();
    // Both apply: a delay does not stop later faults from matching.
    assert_eq!(api.get("/list").await.0, 503);
    assert!(started.elapsed() >= delay);
    let started = Instant::now();
    assert_eq!(api.get("/list").await.0, 200);
    assert!(started.elapsed() < delay, "the delay was used up");

    fake.set_latency(delay);
    let started = Instant::now();
    assert_eq!(api.get("/sessions/x").await.0, 404);
    assert!(started.elapsed() >= delay);
    fake.set_latency(Duration::ZERO);
    let started = Instant::now();
    assert_eq!(api.get("/sessions/x").await.0, 404);
    assert!(started.elapsed() < delay);
}

#[tokio::test]
async fn latency_from_options_applies_to_every_answer() {
    let latency = Duration::from_millis(100);
    let fake = FakeRuntime::start_with(super::super::FakeRuntimeOptions {
        latency,
        ..Default::default()
    });
    let started = Instant::now();
    assert_eq!(Api::with_key(&fake, None).get("/list").await.0, 401);
    assert!(started.elapsed() >= latency);
}

#[tokio::test]
async fn a_slow_request_does_not_hold_up_shutdown() {
    let fake = FakeRuntime::start();
    fake.inject(Fault::delay(Duration::from_secs(60)));
    let api = Api::new(&fake);
    let pending = tokio::spawn(async move { api.send(reqwest::Method::GET, "/list", None).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    drop(fake);
    assert!(started.elapsed() < Duration::from_secs(5));
    let answer = pending.await.expect("the client task ends");
    assert!(answer.is_err(), "{answer:?}");
}
