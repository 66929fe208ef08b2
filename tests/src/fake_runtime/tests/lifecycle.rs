//! The wire API: lifecycle, options, validation, auth.

use serde_json::{Value, json};

use super::super::{FakeRuntime, FakeRuntimeOptions};
use super::{Api, start_body};

fn str_field<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is a string in {value}"))
}

#[tokio::test]
async fn full_lifecycle_start_get_batch_list_pause_resume_stop() {
    let fake = FakeRuntime::start();
    let api = Api::new(&fake);

    let (status, one) = api.post("/start", &start_body("sb-1")).await;
    assert_eq!(status, 200, "{one}");
    let runtime_id = str_field(&one, "runtime_id").to_owned();
    assert!(runtime_id.starts_with("rt-"));
    assert_eq!(one["session_id"], "sb-1");
    assert_eq!(one["status"], "running");
    assert_eq!(one["pod_status"], "ready");
    assert_eq!(one["restart_count"], 0);
    assert_eq!(one["restart_reasons"], json!([]));
    assert_eq!(one["url"], format!("http://127.0.0.1:9/{runtime_id}"));
    let first_key = str_field(&one, "session_api_key").to_owned();
    assert_eq!(fake.start_request("sb-1"), Some(start_body("sb-1")));
    assert_eq!(fake.runtime_id("sb-1"), Some(runtime_id.clone()));

    // A second start for a live session conflicts.
    let (status, body) = api.post("/start", &start_body("sb-1")).await;
    assert_eq!(status, 409);
    assert!(body["detail"].is_string());

    let (status, two) = api.post("/start", &start_body("sb-2")).await;
    assert_eq!(status, 200);
    assert_ne!(two["runtime_id"], one["runtime_id"]);
    assert_ne!(two["session_api_key"], one["session_api_key"]);

    assert_eq!(api.get("/sessions/sb-1").await, (200, one.clone()));
    let (status, _) = api.get("/sessions/nope").await;
    assert_eq!(status, 404);

    // Batch: request order, unknown ids omitted.
    let (status, batch) = api.get("/sessions/batch?ids=sb-2&ids=nope&ids=sb-1").await;
    assert_eq!(status, 200);
    assert_eq!(batch, json!([two, one]));
    assert_eq!(api.get("/sessions/batch").await, (200, json!([])));

    let (status, list) = api.get("/list").await;
    assert_eq!(status, 200);
    assert_eq!(list, json!({"runtimes": [one, two], "total": 2}));

    let (status, paused) = api.post("/pause", &json!({"runtime_id": runtime_id})).await;
    assert_eq!(status, 200);
    assert_eq!(paused["status"], "paused");
    assert_eq!(api.get("/sessions/sb-1").await.1["status"], "paused");

    // Resume rotates the key, in the answer and in the stored runtime.
    let (status, resumed) = api
        .post("/resume", &json!({"runtime_id": runtime_id}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(resumed["status"], "running");
    let new_key = str_field(&resumed, "session_api_key");
    assert_ne!(new_key, first_key);
    assert_eq!(
        api.get("/sessions/sb-1").await.1["session_api_key"],
        new_key
    );

    let (status, stopped) = api.post("/stop", &json!({"runtime_id": runtime_id})).await;
    assert_eq!(status, 200);
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(api.get("/sessions/sb-1").await.0, 404);
    assert_eq!(api.get("/list").await.1["total"], 1);
    for path in ["/stop", "/pause", "/resume"] {
        let (status, body) = api.post(path, &json!({"runtime_id": runtime_id})).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body["detail"].is_string());
    }

    // The session is free again.
    assert_eq!(api.post("/start", &start_body("sb-1")).await.0, 200);
}

#[tokio::test]
async fn keep_stopped_keeps_the_runtime_visible_but_out_of_list() {
    let fake = FakeRuntime::start_with(FakeRuntimeOptions {
        keep_stopped: true,
        ..Default::default()
    });
    let api = Api::new(&fake);
    let (_, started) = api.post("/start", &start_body("sb-1")).await;
    let runtime_id = started["runtime_id"].clone();

    assert_eq!(
        api.post("/stop", &json!({"runtime_id": runtime_id}))
            .await
            .0,
        200
    );
    let (status, kept) = api.get("/sessions/sb-1").await;
    assert_eq!(status, 200);
    assert_eq!(kept["status"], "stopped");
    assert_eq!(
        api.get("/list").await.1,
        json!({"runtimes": [], "total": 0})
    );
    assert_eq!(
        api.get("/sessions/batch?ids=sb-1").await.1[0]["status"],
        "stopped"
    );
    // Stopping twice is fine; a stopped runtime cannot be paused or resumed.
    assert_eq!(
        api.post("/stop", &json!({"runtime_id": runtime_id}))
            .await
            .0,
        200
    );
    assert_eq!(
        api.post("/resume", &json!({"runtime_id": runtime_id}))
            .await
            .0,
        404
    );

    // A new start replaces the stopped runtime.
    let (status, again) = api.post("/start", &start_body("sb-1")).await;
    assert_eq!(status, 200);
    assert_ne!(again["runtime_id"], runtime_id);
    assert_eq!(fake.runtimes().len(), 1);
}

#[tokio::test]
async fn options_shape_new_runtimes_and_resume_answers() {
    let fake = FakeRuntime::start_with(FakeRuntimeOptions {
        api_key: "k-1".to_owned(),
        url_template: "https://{session_id}.example.com/{runtime_id}".to_owned(),
        start_status: "starting".to_owned(),
        resume_returns_key: false,
        worker_threads: 2,
        ..Default::default()
    });
    assert_eq!(fake.api_key(), "k-1");
    let api = Api::new(&fake);

    let (_, started) = api.post("/start", &start_body("sb-9")).await;
    let runtime_id = str_field(&started, "runtime_id").to_owned();
    assert_eq!(started["status"], "starting");
    assert_eq!(started["pod_status"], "pending");
    assert_eq!(
        started["url"],
        format!("https://sb-9.example.com/{runtime_id}")
    );

    let (status, resumed) = api
        .post("/resume", &json!({"runtime_id": runtime_id}))
        .await;
    assert_eq!(status, 200);
    assert!(resumed.get("session_api_key").is_none(), "{resumed}");
    let stored = fake.runtime("sb-9").expect("runtime kept");
    assert_ne!(stored["session_api_key"], started["session_api_key"]);
    assert_eq!(stored["status"], "running");
}

#[tokio::test]
async fn bad_requests_get_4xx_with_detail() {
    let fake = FakeRuntime::start();
    let api = Api::new(&fake);
    let cases: [(&str, &str, u16); 8] = [
        ("/start", "not json", 422),
        ("/start", "[1, 2]", 422),
        ("/start", r#"{"image": "x"}"#, 422),
        ("/start", r#"{"session_id": 5}"#, 422),
        ("/start", r#"{"session_id": ""}"#, 422),
        ("/stop", "", 422),
        ("/pause", r#"{"runtime_id": null}"#, 422),
        ("/resume", r#"{"id": "rt-1"}"#, 422),
    ];
    for (path, body, expected) in cases {
        let (status, answer) = api.post_raw(path, body).await;
        assert_eq!(status, expected, "{path} {body}: {answer}");
        assert!(answer["detail"].is_string(), "{answer}");
    }
    for (path, expected) in [
        ("/", 404),
        ("/nowhere", 404),
        ("/sessions/", 404),
        ("/sessions/a/b", 404),
        ("/sessions/%zz", 404),
        ("/start", 405),
    ] {
        let (status, answer) = api.get(path).await;
        assert_eq!(status, expected, "GET {path}: {answer}");
        assert!(answer["detail"].is_string(), "{answer}");
    }
    assert_eq!(api.post_raw("/list", "{}").await.0, 405);
    assert_eq!(api.post_raw("/sessions/x", "{}").await.0, 405);
    assert!(fake.runtimes().is_empty());
}

#[tokio::test]
async fn session_ids_in_paths_are_percent_decoded() {
    let fake = FakeRuntime::start();
    fake.insert_runtime("a b", "running");
    let (status, body) = Api::new(&fake).get("/sessions/a%20b").await;
    assert_eq!(status, 200);
    assert_eq!(body["session_id"], "a b");
}

#[tokio::test]
async fn requests_without_the_right_key_are_refused_and_recorded() {
    let fake = FakeRuntime::start();
    fake.insert_runtime("sb-1", "running");
    for key in [None, Some("wrong")] {
        let (status, body) = Api::with_key(&fake, key).get("/sessions/sb-1").await;
        assert_eq!(status, 401);
        assert!(body["detail"].is_string(), "{body}");
    }
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].header("x-api-key"), None);
    assert_eq!(requests[1].header("X-API-Key"), Some("wrong"));
    assert_eq!(Api::new(&fake).get("/sessions/sb-1").await.0, 200);
}

/// What the routes do that a router might do differently from FastAPI: `HEAD` on a
/// `GET` route is a 405, an id that does not decode names no runtime, and a body the
/// size cap allows is read whole (the router adds no lower cap of its own).
#[tokio::test]
async fn routes_answer_like_fastapi_at_their_edges() {
    let fake = FakeRuntime::start();
    let api = Api::new(&fake);
    fake.insert_runtime("sb-1", "running");

    for path in ["/list", "/sessions/sb-1", "/sessions/batch"] {
        let (status, answer) = api
            .send(reqwest::Method::HEAD, path, None)
            .await
            .unwrap_or_else(|e| panic!("HEAD {path} reaches the fake: {e}"));
        assert_eq!(status, 405, "HEAD {path}: {answer}");
    }
    let (status, answer) = api
        .send(reqwest::Method::DELETE, "/start", None)
        .await
        .unwrap_or_else(|e| panic!("DELETE /start reaches the fake: {e}"));
    assert_eq!(status, 405, "{answer}");
    assert_eq!(answer["detail"], "Method Not Allowed");

    let (status, answer) = api.get("/sessions/%ff").await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["detail"], "Runtime not found");
    let (status, answer) = api.get("/sessions/sb-1/").await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["detail"], "Not Found");

    // 3 MiB: over axum's default limit of 2 MiB, well under the fake's 16 MiB.
    let mut body = start_body("sb-big");
    body["padding"] = json!("x".repeat(3 * 1024 * 1024));
    let (status, answer) = api.post("/start", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["session_id"], "sb-big");
    let stored = fake.start_request("sb-big").expect("the start was stored");
    assert_eq!(
        stored["padding"].as_str().map(str::len),
        Some(3 * 1024 * 1024)
    );
}
