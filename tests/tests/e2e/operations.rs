//! What operators and their platforms probe: Prometheus metrics (every family
//! by name, route labels as templates, admin-only with keys) and readiness
//! (not before the first reconciliation has succeeded, and saying why).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sandboxd_tests::fake_runtime::{FakeRuntime, Fault};
use sandboxd_tests::sandboxd::{Options, Sandboxd};

const ADMIN: &str = "admin-key-0123456789";
const ALICE: &str = "alice-key-0123456789";

/// Every family the metrics must have, by name.
const FAMILIES: [&str; 12] = [
    "sandboxd_http_requests_total",
    "sandboxd_http_request_duration_seconds",
    "sandboxd_runtime_requests_total",
    "sandboxd_runtime_request_duration_seconds",
    "sandboxd_plugin_calls_total",
    "sandboxd_plugin_info",
    "sandboxd_sandboxes",
    "sandboxd_poll_cycles_total",
    "sandboxd_poll_cycle_duration_seconds",
    "sandboxd_events_stored_total",
    "sandboxd_callback_deliveries_total",
    "sandboxd_storage_commit_duration_seconds",
];

fn with_keys(rt: &FakeRuntime) -> Options {
    Options::for_runtime(rt).config(&format!(
        "[auth]\nmode = \"api-keys\"\n\
         [[auth.keys]]\nkey = \"{ADMIN}\"\nadmin = true\n\
         [[auth.keys]]\nkey = \"{ALICE}\"\nuser_id = \"alice\"\n"
    ))
}

/// The samples of `family` (lines starting with its name), label sets kept.
fn samples<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(family).is_some_and(|rest| {
                rest.starts_with(['{', ' '])
                    || rest.starts_with("_bucket")
                    || rest.starts_with("_sum")
                    || rest.starts_with("_count")
            })
        })
        .collect()
}

#[tokio::test]
async fn metrics_name_every_family_with_route_templates_for_admins_only() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let sd = Sandboxd::start_with(with_keys(&rt));
    let alice = sd.api().with_key(ALICE);
    let admin = sd.api().with_key(ADMIN);

    let sandbox = alice.start().await;
    let id = sandbox["id"].as_str().unwrap_or_default().to_owned();
    alice.get(&format!("/api/v1/sandboxes/{id}")).await.ok();
    assert_eq!(
        alice.get("/api/v1/sandboxes/no-such-sandbox").await.status,
        404
    );
    alice.get("/api/v1/sandboxes/search").await.ok();
    assert_eq!(alice.get("/api/v1/nothing-here").await.status, 404);
    admin.post("/admin/sync/poll").await.ok();

    assert_eq!(
        sd.api().get("/metrics").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(alice.get("/metrics").await.status, StatusCode::FORBIDDEN);
    let text = admin.get_text("/metrics").await;
    for family in FAMILIES {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} is missing from /metrics:\n{text}"
        );
    }
    // Route labels are templates: no sandbox id, no unknown path, ever.
    assert!(!text.contains(&id), "a raw id in a label:\n{text}");
    assert!(
        !text.contains("no-such-sandbox") && !text.contains("nothing-here"),
        "{text}"
    );
    let requests = samples(&text, "sandboxd_http_requests_total");
    let has = |needles: &[&str]| {
        requests
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)))
    };
    assert!(
        has(&[
            "route=\"/api/v1/sandboxes/{id}\"",
            "method=\"GET\"",
            "status=\"200\""
        ]),
        "{requests:?}"
    );
    assert!(
        has(&["route=\"/api/v1/sandboxes/{id}\"", "status=\"404\""]),
        "{requests:?}"
    );
    assert!(
        has(&["route=\"unmatched\"", "status=\"404\""]),
        "{requests:?}"
    );
    assert!(
        has(&["route=\"/metrics\"", "status=\"403\""]),
        "{requests:?}"
    );

    let runtime = samples(&text, "sandboxd_runtime_requests_total");
    assert!(
        runtime
            .iter()
            .any(|l| l.contains("op=\"start\"") && l.contains("outcome=\"ok\"")),
        "{runtime:?}"
    );
    let calls = samples(&text, "sandboxd_plugin_calls_total");
    assert!(
        calls
            .iter()
            .any(|l| l.contains("export=\"sandboxes.get\"") && l.contains("outcome=\"error\"")),
        "the 404 was the plugin's answer: {calls:?}"
    );
    let info = samples(&text, "sandboxd_plugin_info");
    assert!(
        info.iter().any(|l| l.contains(&format!(
            "contract_version=\"{}\"",
            sandboxd_contract::VERSION
        )) && l.ends_with(" 1")),
        "{info:?}"
    );
    let running = samples(&text, "sandboxd_sandboxes");
    assert!(
        running.iter().any(|l| l.contains("status=\"RUNNING\"")),
        "statuses as the last reconciliation saw them: {running:?}"
    );
    let cycles = samples(&text, "sandboxd_poll_cycles_total");
    assert!(
        cycles
            .iter()
            .any(|l| l.contains("outcome=\"ok\"") && !l.ends_with(" 0")),
        "{cycles:?}"
    );
}

#[tokio::test]
async fn metrics_are_open_without_authentication() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let sd = Sandboxd::start(&rt);
    let reply = sd.api().get("/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    let text = sd.api().get_text("/metrics").await;
    assert!(text.contains("# TYPE sandboxd_plugin_info gauge"), "{text}");
}

#[tokio::test]
async fn readiness_waits_for_the_first_reconciliation_and_says_what_is_missing() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    // The runtime API refuses to list until told otherwise: no reconciliation
    // can succeed.
    rt.inject(Fault::status(503, r#"{"detail":"busy"}"#).on("GET", "/list"));
    let sd = Sandboxd::start(&rt);
    let api = sd.api();
    assert_eq!(
        api.get("/healthz").await.ok()["status"],
        "ok",
        "alive all along"
    );
    // Not ready while the first pass runs, nor once it failed: then the detail
    // says why.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = api.get("/readyz").await;
        assert_eq!(
            reply.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{}",
            reply.body
        );
        assert!(reply.detail().contains("reconciliation"), "{}", reply.body);
        assert_eq!(reply.body["checks"]["store"], "ok");
        if reply.detail().contains("503") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failure is never named: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    rt.clear_faults();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = api.get("/readyz").await;
        if reply.status == StatusCode::OK {
            assert_eq!(reply.body["ready"], true);
            break;
        }
        assert!(Instant::now() < deadline, "still not ready: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
