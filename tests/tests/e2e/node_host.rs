//! What the Node.js host (`embed/node/`) adds to the scenarios both hosts run
//! (see [`crate::hosts`]): that the two hosts run the same plugin bytes and
//! answer byte for byte alike, side by side on one fake runtime API (ids,
//! session keys, runtime ids and times aside), where the scenarios compare
//! parsed JSON; the Node.js host's own suite; its contract-version rule with
//! built plugins; and its keeping of secrets (the Rust host's is `secrets`).
//!
//! Where both hosts share one runtime API key, each would stop the other's
//! runtimes as orphans at its reconciliation: [`shared`] keeps them instead.

use reqwest::Method;
use serde_json::Value;

use sandboxd_tests::fake_runtime::FakeRuntime;
use sandboxd_tests::host::{self, Host};
use sandboxd_tests::plugins::{self, Variant};
use sandboxd_tests::sandboxd::Options;

/// Options for a host that shares `rt` with the other host.
fn shared(rt: &FakeRuntime) -> Options {
    Options::for_runtime(rt).env("SANDBOXD_ORPHANS", "keep")
}

/// One raw answer: status and body text.
async fn raw(base: &str, method: Method, path: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"));
    let resp = client
        .request(method, format!("{base}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = resp.text().await.unwrap_or_default();
    (status, format!("{content_type} {text}"))
}

/// The strings that are each host's own, found in its answers: values of
/// `session_api_key`, `created_at`, and runtime ids in URLs (`/rt-…`).
fn own_values(text: &str, out: &mut Vec<String>) {
    let json = text.split_once(' ').map_or("", |(_, body)| body);
    let Ok(value) = serde_json::from_str::<Value>(json) else {
        return;
    };
    collect(&value, out);
}

fn collect(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("session_api_key" | "created_at", Value::String(s)) => out.push(s.clone()),
                    ("url", Value::String(s)) => {
                        if let Some(rt) = s.split('/').find(|seg| seg.starts_with("rt-")) {
                            out.push(rt.to_owned());
                        }
                    }
                    _ => collect(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}

/// The same request sequence against one host, `id` being its sandbox.
async fn sequence(base: &str, id: &str) -> Vec<String> {
    let calls: Vec<(Method, String)> = vec![
        (Method::GET, "/api/v1/sandbox-specs/search".into()),
        (Method::POST, format!("/api/v1/sandboxes?sandbox_id={id}")),
        (Method::GET, format!("/api/v1/sandboxes/{id}")),
        (Method::GET, "/api/v1/sandboxes/search?limit=5".into()),
        (Method::GET, format!("/api/v1/sandboxes?id={id}&id=nope")),
        (Method::POST, format!("/api/v1/sandboxes/{id}/pause")),
        (Method::GET, format!("/api/v1/sandboxes/{id}")),
        (Method::POST, format!("/api/v1/sandboxes/{id}/resume")),
        (Method::GET, format!("/api/v1/sandboxes/{id}/")),
        (Method::POST, format!("/api/v1/sandboxes?sandbox_id={id}")),
        (
            Method::POST,
            "/api/v1/sandboxes?sandbox_spec_id=no-such-spec".into(),
        ),
        (Method::GET, "/api/v1/sandboxes/search?limit=0".into()),
        (Method::GET, "/api/v1/sandboxes/search?page_id=%ZZ".into()),
        (Method::GET, "/api/v1/sandboxes/search?limit=abc".into()),
        (
            Method::GET,
            "/api/v1/sandboxes/search?limit=%2B5&limit=7".into(),
        ),
        (Method::GET, "/api/v1/sandboxes/%FF".into()),
        (Method::GET, "/api/v1/sandboxes/%ZZ%2Fa%20b+c".into()),
        (
            Method::GET,
            format!("/api/v1/sandboxes?{}", vec!["id=x"; 101].join("&")),
        ),
        (
            Method::GET,
            format!("/api/v1/sandboxes?id={}", "y".repeat(1025)),
        ),
        (Method::GET, "/api/v1/sandbox-specs?id=nope".into()),
        (Method::GET, "/api/v1/sandboxes".into()),
        (Method::PUT, "/api/v1/sandboxes/search".into()),
        (Method::GET, "/api/v1/nowhere".into()),
        (Method::GET, "/api/v1/conversations/search".into()),
        (
            Method::GET,
            "/api/v1/conversations/00000000-0000-0000-0000-000000000000".into(),
        ),
        (Method::DELETE, format!("/api/v1/sandboxes/{id}")),
        (Method::GET, format!("/api/v1/sandboxes/{id}")),
        (Method::POST, format!("/api/v1/sandboxes/{id}/pause")),
        (Method::GET, "/api/v1/sandboxes/search".into()),
    ];
    let mut answers = Vec::new();
    for (method, path) in calls {
        let (status, text) = raw(base, method.clone(), &path).await;
        answers.push(format!("{method} {path} -> {status} {text}"));
    }
    let mut own = Vec::new();
    for a in &answers {
        if let Some((_, text)) = a.split_once(" -> ") {
            own_values(text.split_once(' ').map_or("", |(_, t)| t), &mut own);
        }
    }
    own.sort_by_key(|s| std::cmp::Reverse(s.len()));
    own.dedup();
    answers
        .into_iter()
        .map(|mut a| {
            for v in &own {
                a = a.replace(v.as_str(), "<own>");
            }
            a.replace(id, "<id>")
        })
        .collect()
}

#[tokio::test]
async fn both_hosts_run_the_same_plugin_and_answer_the_same_bytes() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let rust = Host::Rust.spawn(shared(&rt));
    let node = Host::Node.spawn(shared(&rt));

    let health = |text: String| -> Value {
        let body = text.split_once(' ').map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or(Value::Null)
    };
    let (rs, rh) = raw(rust.url(), Method::GET, "/healthz").await;
    let (ns, nh) = raw(node.url(), Method::GET, "/healthz").await;
    assert_eq!((rs, ns), (200, 200));
    let (rh, nh) = (health(rh), health(nh));
    assert_eq!(
        rh["plugin_sha256"], nh["plugin_sha256"],
        "the same plugin bytes"
    );
    assert_eq!(rh["contract_version"], nh["contract_version"]);
    assert_eq!(rh["plugin_version"], nh["plugin_version"]);
    assert!(
        rh["plugin_sha256"].as_str().is_some_and(|s| s.len() == 64),
        "{rh}"
    );

    let from_rust = sequence(rust.url(), "from-rust").await;
    let from_node = sequence(node.url(), "from-node").await;
    for (r, n) in from_rust.iter().zip(&from_node) {
        assert_eq!(
            r,
            n,
            "the hosts differ\nrust log:\n{}\nnode log:\n{}",
            rust.logs(),
            node.logs()
        );
    }
    assert_eq!(from_rust.len(), from_node.len());
    if std::env::var_os("NODE_HOST_SHOW").is_some() {
        eprintln!("{}", from_node.join("\n"));
    }
}

/// The Node.js host's own suite (`npm test --prefix embed/node`: its storage
/// adapters, HTTP import, configuration and the library end to end), so that
/// `cargo test --workspace` runs it too.
#[test]
fn the_node_hosts_own_tests_pass() {
    let _turn = crate::serial::shared_blocking();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../embed/node");
    // Checks that `npm ci --prefix embed/node` ran, and says so otherwise.
    let _ = host::node_host();
    let node = dir.join("node_modules/.bin/node");
    let out = std::process::Command::new(&node)
        .args(["--test", "--test-concurrency=1", "test/"])
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", node.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "npm test --prefix embed/node failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ℹ fail 0"), "{stdout}");
}

/// A runtime API that is down: both hosts answer 502 with the same detail,
/// which names the call and the cause.
#[tokio::test]
async fn both_hosts_name_a_dead_runtime_alike() {
    let _turn = crate::serial::shared().await;
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("port: {e}"));
    let options = Options::default()
        .env(
            "SANDBOXD_RUNTIME_API_URL",
            &format!("http://127.0.0.1:{port}"),
        )
        .env("SANDBOXD_RUNTIME_API_KEY", "dead-runtime-key-0123");
    let rust = Host::Rust.spawn(options.clone());
    let node = Host::Node.spawn(options);
    for (method, path) in [
        (Method::POST, "/api/v1/sandboxes?sandbox_id=s1"),
        (Method::GET, "/api/v1/sandboxes/s1"),
    ] {
        let r = raw(rust.url(), method.clone(), path).await;
        let n = raw(node.url(), method, path).await;
        assert_eq!(r, n, "{path}");
    }
    let (status, text) = raw(node.url(), Method::POST, "/api/v1/sandboxes").await;
    assert_eq!(status, 502, "{text}");
    assert!(text.contains("Connection refused"), "{text}");
    assert!(!text.contains("dead-runtime-key"), "{text}");
}

/// With API keys: the same refusals (status, detail, `WWW-Authenticate`), on
/// the API and on the admin route, and the same scoping from both hosts,
/// configured by the same TOML file.
#[tokio::test]
async fn both_hosts_authenticate_alike() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let config = r#"
[auth]
mode = "api-keys"
[[auth.keys]]
key = "alice-key-0123456789"
user_id = "alice"
[[auth.keys]]
key = "admin-key-0123456789"
admin = true
"#;
    let options = shared(&rt).config(config);
    let rust = Host::Rust.spawn(options.clone());
    let node = Host::Node.spawn(options);
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"));
    let ask = |base: String, auth: Option<&'static str>| {
        let client = client.clone();
        async move {
            let mut req = client.get(format!("{base}/api/v1/sandboxes/search"));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
            let www = resp
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (
                resp.status().as_u16(),
                www,
                resp.text().await.unwrap_or_default(),
            )
        }
    };
    for auth in [
        None,
        Some("Bearer wrong-key-0123456789"),
        Some("Basic alice-key-0123456789"),
        Some("Bearer "),
        Some("bearer alice-key-0123456789"),
        Some("Bearer admin-key-0123456789"),
    ] {
        let r = ask(rust.url().to_owned(), auth).await;
        let n = ask(node.url().to_owned(), auth).await;
        assert_eq!(r, n, "{auth:?}");
    }
    // The admin route: a user's key is a 403, no key a 401, alike.
    for auth in [None, Some("Bearer alice-key-0123456789")] {
        let poll = |base: &str| {
            let mut req = client.post(format!("{base}/admin/sync/poll"));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            async move {
                let resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
                (
                    resp.status().as_u16(),
                    resp.text().await.unwrap_or_default(),
                )
            }
        };
        let (r, n) = (poll(rust.url()).await, poll(node.url()).await);
        assert_eq!(r, n, "POST /admin/sync/poll with {auth:?}");
        assert!(r.0 == 401 || r.0 == 403, "{r:?}");
    }
    let (status, www, _) = ask(node.url().to_owned(), None).await;
    assert_eq!((status, www.as_deref()), (401, Some("Bearer")));
    let (status, _, body) = ask(node.url().to_owned(), Some("Bearer alice-key-0123456789")).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"items":[],"next_page_id":null}"#)
    );
}

/// The Node host keeps the Rust host's secrets promises: with every log at
/// `trace`, neither the runtime API key nor a session key reaches its log, and
/// its data directory holds session keys only as hashes.
#[tokio::test]
async fn the_node_host_keeps_secrets_out_of_logs_and_storage() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let node = Host::Node.spawn(Options::for_runtime(&rt).env("SANDBOXD_LOG", "trace"));
    let (status, text) = raw(
        node.url(),
        Method::POST,
        "/api/v1/sandboxes?sandbox_id=secret-1",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let started: Value =
        serde_json::from_str(text.split_once(' ').map_or("", |(_, b)| b)).unwrap_or(Value::Null);
    let key = started["session_api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(key.len() >= 16, "{started}");
    raw(node.url(), Method::POST, "/api/v1/sandboxes/secret-1/pause").await;
    raw(
        node.url(),
        Method::POST,
        "/api/v1/sandboxes/secret-1/resume",
    )
    .await;
    let (_, now) = raw(node.url(), Method::GET, "/api/v1/sandboxes/secret-1").await;
    let now: Value =
        serde_json::from_str(now.split_once(' ').map_or("", |(_, b)| b)).unwrap_or(Value::Null);
    let rotated = now["session_api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let mut stored = Vec::new();
    for entry in std::fs::read_dir(node.data_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        stored.extend(std::fs::read(entry.path()).unwrap_or_default());
    }
    assert!(!stored.is_empty(), "the data directory holds the store");
    let logs = node.logs();
    assert!(
        logs.contains("sandbox started"),
        "the plugin's lines are in the log: {logs}"
    );
    for secret in [rt.api_key(), key.as_str(), rotated.as_str()] {
        assert!(!logs.contains(secret), "a secret in the log");
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a secret in clear in the data directory"
        );
    }
}

/// The contract rule with real plugins, built against `wit/` with its version
/// changed: the Node.js host serves one of a later patch version of this
/// contract, and refuses at start one of the next minor version (breaking
/// below 1.0) in the very words of the Rust host, which refuses it too.
#[tokio::test]
async fn the_node_host_runs_a_compatible_contract_and_refuses_a_breaking_one_as_the_rust_host_does()
{
    let _turn = crate::serial::shared().await;
    let host_version = sandboxd_contract::VERSION;
    let mut parts = host_version.split('.').map(|p| {
        p.parse::<u64>()
            .unwrap_or_else(|e| panic!("{host_version}: {e}"))
    });
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let (compatible, breaking) = (
        format!("{major}.{minor}.9"),
        format!("{major}.{}.0", minor + 1),
    );
    let (compatible_wasm, breaking_wasm) = (
        plugins::build(&Variant::Contract(compatible.clone())),
        plugins::build(&Variant::Contract(breaking.clone())),
    );
    let rt = FakeRuntime::start();
    let with_plugin = |wasm: &std::path::Path| {
        let mut options = Options::for_runtime(&rt);
        options.plugin = Some(wasm.to_path_buf());
        options
    };

    let node = Host::Node.spawn(with_plugin(&compatible_wasm));
    let (status, text) = raw(node.url(), Method::GET, "/healthz").await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(&format!("\"contract_version\":\"{compatible}\"")),
        "{text}"
    );
    let (status, text) = raw(node.url(), Method::POST, "/api/v1/sandboxes").await;
    assert_eq!(status, 200, "a compatible plugin serves: {text}");

    let refusal = format!(
        "the component was built against contract {breaking}, which this host (contract {host_version}) cannot run \
         (compatible versions share the major version, and below 1.0 the minor version too)"
    );
    for host in Host::ALL {
        let failure = match host.try_spawn(with_plugin(&breaking_wasm)) {
            Ok(_) => panic!(
                "{} started with a plugin of contract {breaking}",
                host.name()
            ),
            Err(f) => f,
        };
        assert_ne!(failure.exit_code, Some(0), "{}", host.name());
        assert!(
            failure.stderr.contains(&refusal),
            "{} did not say: {refusal}\n{}",
            host.name(),
            failure.stderr
        );
    }
}
