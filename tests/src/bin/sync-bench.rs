//! The sync benchmark: poll cycles over many running sandboxes, each with one
//! conversation on a fake agent server that answers after a fixed latency.
//!
//! ```text
//! cargo build --release -p sandboxd && cargo run --release -p sandboxd-tests --bin sync-bench
//! ```
//!
//! The first cycle discovers every conversation and stores its 100 events; the
//! second finds nothing new. Each is compared with the lower bound for its work:
//! requests × the fake's latency ÷ sync concurrency (what the cycle would take if
//! sandboxd itself cost nothing).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use sandboxd_tests::fake_agent::{FakeAgentServer, FakeAgentServerOptions};
use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions};
use sandboxd_tests::load;
use sandboxd_tests::sandboxd::{Options, Sandboxd};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let sandboxes = env_or("SYNC_BENCH_SANDBOXES", 1000) as usize;
    let events = env_or("SYNC_BENCH_EVENTS", 100) as usize;
    let latency = Duration::from_millis(env_or("SYNC_BENCH_LATENCY_MS", 20));
    let concurrency = env_or("SYNC_BENCH_CONCURRENCY", 32);

    let agents = FakeAgentServer::start_with(FakeAgentServerOptions {
        latency,
        record_requests: false,
        worker_threads: 1,
        ..Default::default()
    });
    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        url_template: format!("{}/{{session_id}}", agents.url()),
        record_requests: false,
        ..Default::default()
    });
    let config = format!(
        "[runtime]\napi_url = \"{}\"\napi_key = \"{}\"\nmax_num_sandboxes = 1000000\n[sync]\nmode = \"webhook\"\nconcurrency = {concurrency}\n",
        rt.url(),
        rt.api_key()
    );
    let sd = Sandboxd::start_with(
        Options::default()
            .config(&config)
            .env("SANDBOXD_LOG", "warn"),
    );
    let base = sd.url().to_owned();

    eprintln!("starting {sandboxes} sandboxes with one conversation of {events} events each…");
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let created: Arc<std::sync::Mutex<Vec<(String, String)>>> = Arc::default();
    {
        let (http, base, created) = (http.clone(), base.clone(), created.clone());
        load::run("start", sandboxes, 8, move |_| {
            let (http, base, created) = (http.clone(), base.clone(), created.clone());
            async move {
                let Ok(r) = http.post(format!("{base}/api/v1/sandboxes")).send().await else {
                    return false;
                };
                let Ok(v) = r.json::<Value>().await else {
                    return false;
                };
                let (Some(id), Some(key)) = (v["id"].as_str(), v["session_api_key"].as_str())
                else {
                    return false;
                };
                created
                    .lock()
                    .map(|mut c| c.push((id.to_owned(), key.to_owned())))
                    .is_ok()
            }
        })
        .await;
    }
    let created = created.lock().map(|c| c.clone()).unwrap_or_default();
    for (i, (id, key)) in created.iter().enumerate() {
        agents.add_agent(id, key);
        let conv = agents.add_conversation(id, json!({"execution_status": "finished"}));
        agents.add_events(
            id,
            &conv,
            (0..events).map(|e| {
                json!({
                    "kind": if e % 2 == 0 { "ActionEvent" } else { "ObservationEvent" },
                    "timestamp": format!("2026-11-26T07:{:02}:{:02}.{:06}", e / 60, e % 60, i),
                    "source": "agent",
                    "payload": {"command": "ls -la", "output": "total 0"},
                })
            }),
        );
    }

    println!(
        "| cycle | sandboxes | conversations | new events | requests | duration (s) | lower bound (s) | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for name in ["first (everything new)", "steady (nothing new)"] {
        let started = Instant::now();
        let reply = http.post(format!("{base}/admin/sync/poll")).send().await;
        let elapsed = started.elapsed();
        let summary: Value = match reply {
            Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
            Ok(r) => panic!(
                "poll answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            ),
            Err(e) => panic!("poll: {e}"),
        };
        let requests = summary["requests"].as_u64().unwrap_or(0);
        let bound = latency.as_secs_f64() * requests as f64 / concurrency as f64;
        let ratio = if bound > 0.0 {
            format!("{:.2}", elapsed.as_secs_f64() / bound)
        } else {
            "n/a".to_owned()
        };
        println!(
            "| {name} | {} | {} | {} | {requests} | {:.2} | {bound:.2} | {ratio} |",
            summary["sandboxes"],
            summary["conversations"],
            summary["new_events"],
            elapsed.as_secs_f64()
        );
        if summary["failures"]
            .as_array()
            .is_some_and(|f| !f.is_empty())
        {
            eprintln!("failures: {}", summary["failures"]);
        }
    }
    println!();
    println!(
        "Fake agent-server latency {} ms per request, sync concurrency {concurrency}; target: each cycle within 1.5× its bound.",
        latency.as_millis()
    );
}
