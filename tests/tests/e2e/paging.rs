//! Paging and request validation through the real binary.

use std::collections::HashSet;

use serde_json::Value;

use sandboxd_tests::fake_runtime::FakeRuntime;
use sandboxd_tests::host::Host;
use sandboxd_tests::sandboxd::Options;

async fn search_pages_through_everything_newest_first(host: Host) {
    let rt = FakeRuntime::start();
    let sd = host.spawn(Options::for_runtime(&rt).env("SANDBOXD_MAX_NUM_SANDBOXES", "1000"));
    let api = sd.api();
    let mut started = Vec::new();
    for _ in 0..230 {
        started.push(
            api.start().await["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    started.reverse();

    rt.clear_requests();
    let (items, pages) = api.search_all(100).await;
    assert_eq!(pages, 3);
    let got: Vec<String> = items
        .iter()
        .map(|s| s["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(got, started, "newest first, each exactly once");
    assert!(items.iter().all(|s| s["status"] == "RUNNING"));
    assert_eq!(
        rt.count("GET", "/sessions/batch"),
        3,
        "one batch call per page"
    );
    assert_eq!(rt.requests().len(), 3);

    // A numeric page id is an offset; garbage and negative ones start from the
    // first page (the contract and upstream's suite say so).
    let page = api
        .get("/api/v1/sandboxes/search?limit=5&page_id=10")
        .await
        .ok();
    assert_eq!(page["items"][0]["id"], Value::String(started[10].clone()));
    let first = api.get("/api/v1/sandboxes/search?limit=5").await.ok();
    for junk in ["-4", "abc", "c0", "%FF%FE"] {
        let reply = api
            .get(&format!("/api/v1/sandboxes/search?limit=5&page_id={junk}"))
            .await;
        assert_eq!(reply.status, 200, "{junk}: {:?}", reply.body);
        assert_eq!(
            reply.ok()["items"],
            first["items"],
            "{junk} is the first page"
        );
    }

    // Batch get: request order, nulls for unknown ids, duplicates allowed.
    let path = format!(
        "/api/v1/sandboxes?id={}&id=nope&id={}&id={}",
        started[3], started[1], started[3]
    );
    let batch = api.get(&path).await.ok();
    let ids: Vec<Option<&str>> = batch
        .as_array()
        .map(|a| a.iter().map(|s| s["id"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        ids,
        vec![
            Some(started[3].as_str()),
            None,
            Some(started[1].as_str()),
            Some(started[3].as_str())
        ]
    );
    let unique: HashSet<&String> = started.iter().collect();
    assert_eq!(unique.len(), started.len());
}

async fn malformed_queries_get_a_4xx_that_says_what_is_wrong(host: Host) {
    let rt = FakeRuntime::start();
    let sd = host.start(&rt);
    let api = sd.api();
    for limit in ["0", "101", "-1", "ten", "1e2", ""] {
        let reply = api
            .get(&format!("/api/v1/sandboxes/search?limit={limit}"))
            .await;
        assert_eq!(reply.status, 422, "limit={limit}");
        assert!(reply.detail().contains("limit"), "{}", reply.detail());
    }
    let many: Vec<String> = (0..101).map(|i| format!("id=s{i}")).collect();
    let reply = api
        .get(&format!("/api/v1/sandboxes?{}", many.join("&")))
        .await;
    assert_eq!(reply.status, 400);
    assert!(reply.detail().contains("100"), "{}", reply.detail());
    assert_eq!(api.get("/api/v1/sandboxes").await.status, 422);
    assert_eq!(api.get("/api/v1/nothing-here").await.status, 404);
    assert_eq!(
        api.request(reqwest::Method::PUT, "/api/v1/sandboxes")
            .await
            .status,
        405
    );
    assert_eq!(api.get("/api/v1/sandboxes/%FF").await.status, 404);
    let long = "x".repeat(5000);
    assert_eq!(
        api.get(&format!("/api/v1/sandboxes/search?page_id={long}"))
            .await
            .status,
        422
    );
    assert_eq!(
        api.get(&format!("/api/v1/sandboxes/{long}")).await.status,
        404
    );
    assert_eq!(rt.count("POST", "/"), 0);
}

on_both_hosts!(
    search_pages_through_everything_newest_first,
    malformed_queries_get_a_4xx_that_says_what_is_wrong,
);
