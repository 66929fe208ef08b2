//! The test-control side of the handle: arranging state, recording, shutdown.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use serde_json::json;

use super::super::FakeRuntime;
use super::{Api, start_body};

#[tokio::test]
async fn tests_can_arrange_corrupt_and_lose_runtimes() {
    let fake = FakeRuntime::start();
    let api = Api::new(&fake);
    let runtime_id = fake.insert_runtime("sb-1", "paused");
    fake.insert_runtime("sb-2", "running");
    assert_eq!(fake.start_request("sb-1"), None);

    let (_, body) = api.get("/sessions/sb-1").await;
    assert_eq!(body["runtime_id"], runtime_id);
    assert_eq!(body["status"], "paused");

    fake.set_status("sb-1", "ERROR");
    assert_eq!(api.get("/sessions/sb-1").await.1["status"], "ERROR");

    // Malformed and missing fields are served as they are.
    fake.set_field("sb-1", "status", json!(5));
    fake.set_field("sb-1", "url", json!(null));
    assert_eq!(
        fake.remove_field("sb-1", "session_api_key")
            .map(|v| v.is_string()),
        Some(true)
    );
    assert_eq!(fake.remove_field("sb-1", "session_api_key"), None);
    fake.remove_field("sb-1", "runtime_id");
    let (_, body) = api.get("/sessions/sb-1").await;
    assert_eq!(body["status"], 5);
    assert_eq!(body["url"], json!(null));
    assert!(body.get("session_api_key").is_none());
    assert!(body.get("runtime_id").is_none());
    assert_eq!(api.get("/list").await.1["total"], 2);

    // Lookups by runtime id still use the id it was created with.
    assert_eq!(fake.runtime_id("sb-1"), Some(runtime_id.clone()));
    assert_eq!(
        api.post("/pause", &json!({"runtime_id": runtime_id}))
            .await
            .0,
        200
    );

    // "stopped" drops out of the list; a lost runtime is gone everywhere.
    fake.set_status("sb-2", "Stopped");
    assert_eq!(api.get("/list").await.1["total"], 1);
    assert!(fake.remove_runtime("sb-2").is_some());
    assert_eq!(fake.remove_runtime("sb-2"), None);
    assert_eq!(api.get("/sessions/sb-2").await.0, 404);
    assert_eq!(fake.runtimes().len(), 1);
    assert_eq!(fake.runtime("sb-2"), None);
}

#[test]
#[should_panic(expected = "no runtime for session \"ghost\"")]
fn changing_an_unknown_runtime_is_a_test_bug() {
    FakeRuntime::start().set_status("ghost", "running");
}

#[tokio::test]
async fn requests_are_recorded_until_recording_is_off() {
    let fake = FakeRuntime::start();
    let api = Api::new(&fake);
    api.post("/start", &start_body("sb-1")).await;
    api.get("/sessions/batch?ids=sb-1&ids=a%20b").await;
    api.get("/sessions/sb-1").await;

    let requests = fake.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/start");
    assert_eq!(requests[0].json(), Some(start_body("sb-1")));
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    assert!(
        requests[0]
            .headers
            .iter()
            .all(|(name, _)| *name == name.to_lowercase())
    );
    assert_eq!(requests[1].path, "/sessions/batch");
    assert_eq!(requests[1].query, "ids=sb-1&ids=a%20b");
    assert_eq!(requests[1].query_values("ids"), ["sb-1", "a b"]);
    assert_eq!(requests[2].query, "");
    assert!(requests[2].body.is_empty());
    assert_eq!(fake.count("get", "/sessions/"), 2);
    assert_eq!(fake.count("GET", "/sessions/batch"), 1);
    assert_eq!(fake.count("POST", "/stop"), 0);

    fake.clear_requests();
    assert!(fake.requests().is_empty());
    fake.set_recording(false);
    api.get("/list").await;
    assert!(fake.requests().is_empty());
    assert_eq!(fake.total_requests(), 4);
    fake.set_recording(true);
    api.get("/list").await;
    assert_eq!(fake.count("GET", "/list"), 1);
}

/// Plain blocking sockets, no async runtime in the test: the fake serves callers
/// that have none.
#[test]
fn serves_sync_callers_over_raw_http() {
    let fake = FakeRuntime::start();
    fake.insert_runtime("sb-1", "running");
    let mut stream = TcpStream::connect(fake.addr()).expect("connect");
    write!(
        stream,
        "GET /list HTTP/1.1\r\nHost: x\r\nX-API-Key: {}\r\nConnection: close\r\n\r\n",
        fake.api_key()
    )
    .expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        answer.contains("content-type: application/json"),
        "{answer}"
    );
    assert!(answer.contains(r#""total":1"#), "{answer}");
}

#[tokio::test]
async fn shutdown_and_drop_close_the_port() {
    let fake = FakeRuntime::start();
    let addr = fake.addr();
    let api = Api::new(&fake);
    fake.insert_runtime("sb-1", "running");
    assert_eq!(api.get("/list").await.0, 200);

    // Shut down: the state is still readable, the API is unreachable.
    fake.shutdown();
    fake.shutdown();
    assert_eq!(fake.runtimes().len(), 1);
    let error = api
        .send(reqwest::Method::GET, "/list", None)
        .await
        .expect_err("the fake is down");
    assert!(error.status().is_none(), "{error}");
    drop(fake);

    // Dropping a running fake frees its port too.
    let fake = FakeRuntime::start();
    let addr_2 = fake.addr();
    assert!(TcpStream::connect(addr_2).is_ok());
    drop(fake);
    for addr in [addr, addr_2] {
        assert!(TcpStream::connect(addr).is_err(), "{addr} still accepts");
        TcpListener::bind(addr).expect("the port is free again");
    }
}

#[test]
fn the_handle_can_be_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FakeRuntime>();
}
