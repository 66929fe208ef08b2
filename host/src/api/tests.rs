//! The router and the OpenAPI document describe the same API: every route the
//! router serves is documented, and every documented operation is served.
//!
//! The router is asked from outside, the way a client would: each documented
//! operation must reach a handler (not the router's own 404 or 405), each
//! other method on a documented path must get the router's 405, and every path
//! the router has registered must be in the document.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use utoipa::openapi::OpenApi;

use super::{AppState, Authenticator, app};
use crate::cluster::Cluster;
use crate::config::{self, FileConfig};
use crate::serve::{Parts, assemble};
use crate::sync::{Changes, Lifecycle, Poller, Reconciler};

const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// sandboxd with its embedded plugin, against a runtime API that is not there.
async fn server(dir: &std::path::Path) -> (Router, OpenApi) {
    let mut raw = FileConfig::default();
    raw.runtime.api_url = Some("http://127.0.0.1:9".into());
    raw.runtime.api_key = Some("offline".into());
    raw.data_dir = Some(dir.to_path_buf());
    let config = config::validate(raw).unwrap_or_else(|e| panic!("{e}"));
    let Parts {
        plugin,
        host_key,
        egress,
        store,
        ..
    } = assemble(&config).await.unwrap_or_else(|e| panic!("{e:#}"));
    let plugin = Arc::new(plugin);
    let changes = Arc::new(Changes::default());
    let cluster = Arc::new(Cluster::single());
    let state = Arc::new(AppState {
        auth: Authenticator::new(&config.auth).unwrap_or_else(|e| panic!("{e}")),
        poller: Arc::new(Poller::new(
            plugin.clone(),
            changes.clone(),
            cluster.clone(),
        )),
        reconciler: Arc::new(Reconciler::new(
            plugin.clone(),
            cluster.clone(),
            false,
            config.runtime.orphans,
            config.plugin.call_timeout,
        )),
        lifecycle: Arc::new(Lifecycle::new(
            plugin.clone(),
            changes.clone(),
            cluster.clone(),
        )),
        cluster,
        plugin,
        changes,
        host_key,
        egress,
        store,
        watching: false,
    });
    app(state, &config.auth).unwrap_or_else(|e| panic!("{e:#}"))
}

/// A concrete path for a template: every `{param}` becomes a made-up id.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| {
            if s.starts_with('{') {
                "0123456789abcdef0123456789abcdef"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The status and detail of one request (a stream's head only).
async fn ask(router: &Router, method: &Method, path: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("x-session-api-key", "not-a-key")
        .body(Body::from("{}"))
        .unwrap_or_else(|e| panic!("{e}"));
    let response = router
        .clone()
        .oneshot(request)
        .await
        .unwrap_or_else(|e| match e {});
    let status = response.status();
    let is_stream = response
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if is_stream {
        return (status, String::new());
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let detail = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["detail"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status, detail)
}

fn router_refused(status: StatusCode, detail: &str) -> bool {
    (status == StatusCode::NOT_FOUND && detail == "Not Found")
        || (status == StatusCode::METHOD_NOT_ALLOWED && detail == "Method Not Allowed")
}

fn documented(doc: &OpenApi) -> BTreeSet<(String, Method)> {
    let mut out = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::PATCH, &item.patch),
            (Method::DELETE, &item.delete),
        ] {
            if op.is_some() {
                out.insert((path.clone(), method));
            }
        }
    }
    out
}

/// The paths registered in the router, from its `Debug` output (axum has no
/// other way to list them): `path_router: … paths: {RouteId(n): "/a/{id}", …}`.
fn registered(router: &Router) -> BTreeSet<String> {
    let text = format!("{router:?}");
    // The fallback router (a catch-all) follows the routes.
    let routes = text.split("fallback_router:").next().unwrap_or_default();
    let mut out = BTreeSet::new();
    let mut rest = routes;
    while let Some(start) = rest.find(": \"/") {
        let after = &rest[start + 3..];
        let end = after.find('"').unwrap_or(after.len());
        let path = &after[..end];
        if !path.contains("__private__") {
            out.insert(path.to_owned());
        }
        rest = &after[end..];
    }
    out
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (router, doc) = server(dir.path()).await;
    let documented = documented(&doc);
    let doc_paths: BTreeSet<String> = documented.iter().map(|(p, _)| p.clone()).collect();
    assert!(
        doc_paths.len() >= 20,
        "the document lists {} paths",
        doc_paths.len()
    );

    let registered = registered(&router);
    assert!(
        registered.len() >= 20,
        "found {} paths in the router: {registered:?}",
        registered.len()
    );
    let undocumented: Vec<&String> = registered.difference(&doc_paths).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    let unrouted: Vec<&String> = doc_paths.difference(&registered).collect();
    assert!(
        unrouted.is_empty(),
        "documented but not routed: {unrouted:?}"
    );

    for path in &doc_paths {
        let url = concrete(path);
        for method in METHODS {
            let (status, detail) = ask(&router, &method, &url).await;
            if documented.contains(&(path.clone(), method.clone())) {
                assert!(
                    !router_refused(status, &detail),
                    "{method} {path} is documented but the router refused it: {status} {detail}"
                );
            } else {
                assert_eq!(
                    (status, detail.as_str()),
                    (StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
                    "{method} {path} is not documented, so the router must refuse it"
                );
            }
        }
    }
    let (status, detail) = ask(&router, &Method::GET, "/api/v1/no-such-route").await;
    assert!(router_refused(status, &detail), "{status} {detail}");
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_error_shapes_and_served() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (router, doc) = server(dir.path()).await;
    let json = serde_json::to_value(&doc).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(json["openapi"], "3.1.0");
    assert!(json["components"]["schemas"]["ErrorBody"].is_object());
    let get = &json["paths"]["/api/v1/sandboxes/{id}"]["get"]["responses"];
    for status in ["200", "404", "500", "503"] {
        assert!(
            get[status].is_object(),
            "GET /api/v1/sandboxes/{{id}} documents {status}"
        );
    }
    let request = Request::get("/openapi.json")
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    let response = router.oneshot(request).await.unwrap_or_else(|e| match e {});
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let served: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(served, json);
}
