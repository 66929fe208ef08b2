//! A sandbox's whole life through the real binary: every operation, every
//! status, both URL routing modes, the `/start` body, specs and the limit.

use std::time::Duration;

use serde_json::{Value, json};

use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions};
use sandboxd_tests::host::Host;
use sandboxd_tests::sandboxd::Options;

fn id_of(sandbox: &Value) -> String {
    sandbox["id"].as_str().unwrap_or_default().to_owned()
}

async fn a_sandbox_is_started_read_paused_resumed_and_deleted(host: Host) {
    let rt = FakeRuntime::start();
    let sd = host.start(&rt);
    let api = sd.api();

    let sb = api.start().await;
    let id = id_of(&sb);
    assert!(
        id.len() >= 20 && id.chars().all(|c| c.is_ascii_alphanumeric()),
        "base62 id: {id}"
    );
    assert_eq!(sb["status"], "RUNNING");
    assert_eq!(sb["created_by_user_id"], Value::Null);
    assert_eq!(
        sb["sandbox_spec_id"],
        "ghcr.io/openhands/agent-server:latest-python"
    );
    let key = sb["session_api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        rt.runtime(&id).map(|r| r["session_api_key"].clone()),
        Some(json!(key))
    );
    assert!(sb["created_at"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(sb["exposed_urls"].as_array().map(Vec::len), Some(4));
    // Fields come in the upstream service's order.
    let text = api.get_text(&format!("/api/v1/sandboxes/{id}")).await;
    let fields = [
        "id",
        "created_by_user_id",
        "sandbox_spec_id",
        "status",
        "session_api_key",
        "exposed_urls",
        "created_at",
    ];
    let positions: Vec<usize> = fields
        .iter()
        .map(|f| text.find(&format!("\"{f}\":")).unwrap_or(usize::MAX))
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "field order in {text}"
    );

    // The host attached the runtime API key; the body is the contract's.
    let start = rt
        .requests()
        .into_iter()
        .find(|r| r.path == "/start")
        .unwrap_or_else(|| panic!("no /start"));
    assert_eq!(start.header("x-api-key"), Some(rt.api_key()));
    assert_eq!(
        rt.start_request(&id),
        Some(json!({
            "image": "ghcr.io/openhands/agent-server:latest-python",
            "command": ["/usr/local/bin/openhands-agent-server", "--port", "60000"],
            "working_dir": "/workspace",
            "environment": {"WORKER_1": "12000", "WORKER_2": "12001"},
            "session_id": id,
            "resource_factor": 1,
            "run_as_user": 10001,
            "run_as_group": 10001,
            "fs_group": 10001,
        }))
    );

    assert_eq!(api.get(&format!("/api/v1/sandboxes/{id}")).await.ok(), sb);
    assert_eq!(api.sandbox(&id).await, sb);
    let page = api.get("/api/v1/sandboxes/search").await.ok();
    assert_eq!(page, json!({"items": [sb], "next_page_id": null}));

    assert_eq!(
        api.post(&format!("/api/v1/sandboxes/{id}/pause"))
            .await
            .ok(),
        json!({"success": true})
    );
    let paused = api.sandbox(&id).await;
    assert_eq!(paused["status"], "PAUSED");
    assert_eq!(paused["exposed_urls"], Value::Null);

    assert_eq!(
        api.post(&format!("/api/v1/sandboxes/{id}/resume"))
            .await
            .ok(),
        json!({"success": true})
    );
    let resumed = api.sandbox(&id).await;
    assert_eq!(resumed["status"], "RUNNING");
    assert_ne!(
        resumed["session_api_key"],
        json!(key),
        "the key rotates on resume"
    );

    let runtime_id = rt.runtime_id(&id).unwrap_or_default();
    assert_eq!(
        api.delete(&format!("/api/v1/sandboxes/{id}")).await.ok(),
        json!({"success": true})
    );
    let stop = rt
        .requests()
        .into_iter()
        .find(|r| r.path == "/stop")
        .unwrap_or_else(|| panic!("no /stop"));
    assert_eq!(stop.json(), Some(json!({"runtime_id": runtime_id})));
    assert!(rt.runtime(&id).is_none());
    assert_eq!(
        api.get(&format!("/api/v1/sandboxes/{id}")).await.status,
        404
    );
    assert_eq!(api.sandbox(&id).await, Value::Null);
    assert_eq!(
        api.delete(&format!("/api/v1/sandboxes/{id}")).await.status,
        404
    );
    assert_eq!(
        api.post(&format!("/api/v1/sandboxes/{id}/pause"))
            .await
            .status,
        404
    );
    assert_eq!(
        api.get("/api/v1/sandboxes/search").await.ok()["items"],
        json!([])
    );

    // Every change is in the history, newest first, and outlives the sandbox.
    let history = api
        .get(&format!("/api/v1/sandboxes/{id}/history"))
        .await
        .ok();
    let changes: Vec<(Value, Value)> = history["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| (i["status"].clone(), i["cause"].clone()))
                .collect()
        })
        .unwrap_or_default();
    let user = json!("user");
    assert_eq!(
        changes,
        [
            (json!("MISSING"), user.clone()),
            (json!("RUNNING"), user.clone()),
            (json!("PAUSED"), user.clone()),
            (json!("RUNNING"), user),
        ],
        "{history}"
    );
    assert_eq!(history["next_page_id"], Value::Null);
    assert!(
        history["items"][0]["at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
}

async fn every_runtime_status_maps_to_a_sandbox_status(host: Host) {
    let rt = FakeRuntime::start();
    let sd = host.start(&rt);
    let api = sd.api();
    let id = id_of(&api.start().await);
    for (raw, want) in [
        ("running", "RUNNING"),
        ("PAUSED", "PAUSED"),
        ("starting", "STARTING"),
        ("error", "ERROR"),
        ("stopped", "MISSING"),
        ("who-knows", "MISSING"),
    ] {
        rt.set_status(&id, raw);
        let sb = api.sandbox(&id).await;
        assert_eq!(sb["status"], want, "runtime status {raw}");
        assert_eq!(sb["exposed_urls"].is_array(), want == "RUNNING", "{raw}");
    }
    rt.remove_runtime(&id);
    let sb = api.sandbox(&id).await;
    assert_eq!(
        (sb["status"].clone(), sb["session_api_key"].clone()),
        (json!("MISSING"), Value::Null)
    );
}

async fn a_sandbox_starting_for_too_long_is_an_error_with_a_reason(host: Host) {
    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        start_status: "starting".into(),
        ..Default::default()
    });
    let sd = host.spawn(Options::for_runtime(&rt).env("SANDBOXD_START_SANDBOX_TIMEOUT", "1"));
    let api = sd.api();
    let sb = api.start().await;
    assert_eq!(sb["status"], "STARTING");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let sb = api.sandbox(&id_of(&sb)).await;
    assert_eq!(sb["status"], "ERROR");
    let detail = sb["status_detail"].as_str().unwrap_or_default();
    assert!(detail.contains("start_sandbox_timeout"), "{detail}");
}

async fn subdomain_routing_builds_service_urls_from_the_host_name(host: Host) {
    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        url_template: "https://{runtime_id}.sandboxes.example".into(),
        ..Default::default()
    });
    let sd = host.start(&rt);
    let sb = sd.api().start().await;
    let rid = rt.runtime_id(&id_of(&sb)).unwrap_or_default();
    let key = sb["session_api_key"].as_str().unwrap_or_default();
    assert_eq!(
        sb["exposed_urls"],
        json!([
            {"name": "AGENT_SERVER", "url": format!("https://{rid}.sandboxes.example"), "port": 60000},
            {"name": "VSCODE", "url": format!("https://vscode-{rid}.sandboxes.example/?tkn={key}&folder=%2Fworkspace%2Fproject"), "port": 60001},
            {"name": "WORKER_1", "url": format!("https://work-1-{rid}.sandboxes.example/"), "port": 12000},
            {"name": "WORKER_2", "url": format!("https://work-2-{rid}.sandboxes.example/"), "port": 12001},
        ])
    );
}

async fn path_routing_builds_service_urls_under_the_runtime_id(host: Host) {
    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        url_template: "https://sandboxes.example/{runtime_id}".into(),
        ..Default::default()
    });
    let sd = host.start(&rt);
    let sb = sd.api().start().await;
    let rid = rt.runtime_id(&id_of(&sb)).unwrap_or_default();
    let key = sb["session_api_key"].as_str().unwrap_or_default();
    let urls: Vec<(String, u64)> = sb["exposed_urls"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|u| {
                    (
                        u["url"].as_str().unwrap_or_default().to_owned(),
                        u["port"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        urls,
        vec![
            (format!("https://sandboxes.example/{rid}"), 60000),
            (
                format!(
                    "https://sandboxes.example/{rid}/vscode?tkn={key}&folder=%2Fworkspace%2Fproject"
                ),
                60001
            ),
            (format!("https://sandboxes.example/{rid}/work-1"), 12000),
            (format!("https://sandboxes.example/{rid}/work-2"), 12001),
        ]
    );
}

async fn configuration_shapes_the_start_request(host: Host) {
    let rt = FakeRuntime::start();
    let config = format!(
        r#"
web_url = "https://app.example/"
[runtime]
api_url = "{url}"
api_key = "{key}"
resource_factor = 4
runtime_class = "sysbox"
[[specs]]
id = "image:one"
command = ["run", "--fast"]
initial_env = {{ LOG_JSON = "true", WORKER_1 = "overridden" }}
[[specs]]
id = "image:two"
working_dir = "/w"
"#,
        url = rt.url(),
        key = rt.api_key()
    );
    let sd = host.spawn(Options::default().config(&config));
    let api = sd.api();
    let one = api.start().await;
    assert_eq!(one["sandbox_spec_id"], "image:one");
    let body = rt.start_request(&id_of(&one)).unwrap_or_default();
    assert_eq!(body["image"], "image:one");
    assert_eq!(body["command"], json!(["run", "--fast"]));
    assert_eq!(body["resource_factor"], 4);
    assert_eq!(body["runtime_class"], "sysbox-runc");
    assert_eq!(
        body["environment"],
        json!({
            "LOG_JSON": "true",
            "WORKER_1": "12000",
            "OH_WEBHOOKS_0_BASE_URL": "https://app.example/api/v1/webhooks",
            "OH_ALLOW_CORS_ORIGINS_0": "https://app.example",
            "WORKER_2": "12001",
        })
    );
    let two = api
        .post("/api/v1/sandboxes?sandbox_spec_id=image:two")
        .await
        .ok();
    assert_eq!(
        rt.start_request(&id_of(&two)).map(|b| b["image"].clone()),
        Some(json!("image:two"))
    );
    let unknown = api
        .post("/api/v1/sandboxes?sandbox_spec_id=image:nope")
        .await;
    assert_eq!(unknown.status, 400);
    assert!(
        unknown.detail().contains("image:nope"),
        "{}",
        unknown.detail()
    );

    let specs = api.get("/api/v1/sandbox-specs/search").await.ok();
    let ids: Vec<&str> = specs["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|s| s["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(ids, ["image:one", "image:two"]);
    assert_eq!(specs["items"][1]["working_dir"], "/w");
    assert_eq!(specs["items"][1]["command"], Value::Null);
    let page = api.get("/api/v1/sandbox-specs/search?limit=1").await.ok();
    assert_eq!(page["next_page_id"], "1");
    let batch = api
        .get("/api/v1/sandbox-specs?id=image:two&id=missing")
        .await
        .ok();
    assert_eq!(batch[0]["id"], "image:two");
    assert_eq!(batch[1], Value::Null);
}

async fn caller_chosen_ids_are_kept_and_duplicates_conflict(host: Host) {
    let rt = FakeRuntime::start();
    let sd = host.start(&rt);
    let api = sd.api();
    let sb = api.post("/api/v1/sandboxes?sandbox_id=my-box_1").await.ok();
    assert_eq!(sb["id"], "my-box_1");
    let again = api.post("/api/v1/sandboxes?sandbox_id=my-box_1").await;
    assert_eq!(again.status, 409);
    assert!(again.detail().contains("my-box_1"));
    assert_eq!(rt.count("POST", "/start"), 1);
    assert_eq!(
        api.post("/api/v1/sandboxes?sandbox_id=bad%2Fid")
            .await
            .status,
        400
    );
}

async fn the_limit_pauses_the_oldest_running_sandboxes(host: Host) {
    let rt = FakeRuntime::start();
    let sd = host.spawn(Options::for_runtime(&rt).env("SANDBOXD_MAX_NUM_SANDBOXES", "2"));
    let api = sd.api();
    let first = id_of(&api.start().await);
    let second = id_of(&api.start().await);
    let third = id_of(&api.start().await);
    assert_eq!(api.sandbox(&first).await["status"], "PAUSED");
    assert_eq!(api.sandbox(&second).await["status"], "RUNNING");
    assert_eq!(api.sandbox(&third).await["status"], "RUNNING");
}

async fn health_answers_without_authentication(host: Host) {
    let rt = FakeRuntime::start();
    let sd = host.spawn(Options::for_runtime(&rt).config(
        "[auth]\nmode = \"api-keys\"\n[[auth.keys]]\nkey = \"admin-key-0123456789\"\nadmin = true\n",
    ));
    let health = sd.api().get("/healthz").await.ok();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["contract_version"], sandboxd_contract::VERSION);
    assert_eq!(sd.api().get("/api/v1/sandboxes/search").await.status, 401);
}

on_both_hosts!(
    a_sandbox_is_started_read_paused_resumed_and_deleted,
    every_runtime_status_maps_to_a_sandbox_status,
    a_sandbox_starting_for_too_long_is_an_error_with_a_reason,
    subdomain_routing_builds_service_urls_from_the_host_name,
    path_routing_builds_service_urls_under_the_runtime_id,
    configuration_shapes_the_start_request,
    caller_chosen_ids_are_kept_and_duplicates_conflict,
    the_limit_pauses_the_oldest_running_sandboxes,
    health_answers_without_authentication,
);
