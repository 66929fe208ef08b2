//! Both hosts of the same plugin on the same work: the Rust host (`sandboxd`,
//! wasmtime) and the Node.js host (`embed/node`, V8 through jco and JSPI),
//! each against the same fake runtime API on loopback, next to the raw runtime
//! round trips the work is made of, measured in the same run.
//!
//! Run (release builds; `npm ci --prefix embed/node` first):
//!
//! ```text
//! cargo build --release -p sandboxd && cargo run --release -p sandboxd-tests --bin embed-bench
//! ```
//!
//! Prints a markdown table per host and operation (throughput, p50, p99) and
//! the Node.js host's figures as ratios of the Rust host's. A benchmark, not a
//! test: it reports, and exits non-zero only if a request failed.
//! `EMBED_BENCH_SANDBOXES` (default 1,000) sets how many sandboxes each host
//! starts (and later deletes).

use std::sync::Arc;
use std::time::Duration;

use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions};
use sandboxd_tests::host::Host;
use sandboxd_tests::load::{self, Stats, ms, pick, send_ok};
use sandboxd_tests::sandboxd::Options;

/// Concurrent clients for throughput runs.
const CONCURRENCY: usize = 8;

fn sandboxes() -> usize {
    std::env::var("EMBED_BENCH_SANDBOXES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000)
}

/// The work, on the host at `base`: start, get, search, delete.
async fn work(host: &str, base: &str, n: usize) -> Vec<(String, Stats)> {
    let http = load::client(64);
    let ids: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let mut out = Vec::new();
    let start = {
        let (http, base, ids) = (http.clone(), base.to_owned(), ids.clone());
        load::run("start", n, CONCURRENCY, move |_| {
            let (http, base, ids) = (http.clone(), base.clone(), ids.clone());
            async move {
                let Ok(r) = http.post(format!("{base}/api/v1/sandboxes")).send().await else {
                    return false;
                };
                let Ok(v) = r.json::<serde_json::Value>().await else {
                    return false;
                };
                let Some(id) = v["id"].as_str() else {
                    return false;
                };
                ids.lock().map(|mut ids| ids.push(id.to_owned())).is_ok()
            }
        })
        .await
    };
    let ids: Arc<Vec<String>> = Arc::new(ids.lock().map(|v| v.clone()).unwrap_or_default());
    let count = ids.len().max(1);
    out.push((format!("{host}: start"), start));

    for (name, requests, concurrency) in [
        ("get", 5_000, CONCURRENCY),
        ("get, one client (latency)", 1_000, 1),
    ] {
        let (h, b, ids) = (http.clone(), base.to_owned(), ids.clone());
        let s = load::run(name, requests, concurrency, move |i| {
            let url = format!("{b}/api/v1/sandboxes/{}", ids[pick(i, count)]);
            send_ok(h.get(url))
        })
        .await;
        out.push((format!("{host}: {name}"), s));
    }
    let (h, b) = (http.clone(), base.to_owned());
    let s = load::run("search", 500, CONCURRENCY, move |_| {
        send_ok(h.get(format!("{b}/api/v1/sandboxes/search?limit=100")))
    })
    .await;
    out.push((format!("{host}: search, first page (limit 100)"), s));

    let (h, b, ids2) = (http.clone(), base.to_owned(), ids.clone());
    let s = load::run("delete", ids.len(), CONCURRENCY, move |i| {
        send_ok(h.delete(format!("{b}/api/v1/sandboxes/{}", ids2[i])))
    })
    .await;
    out.push((format!("{host}: delete"), s));
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let n = sandboxes();
    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        record_requests: false,
        ..Default::default()
    });
    let options = Options::for_runtime(&rt)
        .env("SANDBOXD_LOG", "warn")
        // The per-user limit's housekeeping is measured by the tests, not here.
        .env("SANDBOXD_MAX_NUM_SANDBOXES", "1000000")
        // Sync would poll agent servers that do not exist; reconciliation
        // would stop the other host's runtimes as orphans.
        .env("SANDBOXD_SYNC_MODE", "webhook")
        .env("SANDBOXD_ORPHANS", "keep");
    let rust = Host::Rust.spawn(options.clone());
    let node = Host::Node.spawn(options);

    // References: the raw runtime round trips the work is made of.
    let http = load::client(64);
    let mut rows: Vec<(String, Stats)> = Vec::new();
    {
        let (h, u, k) = (http.clone(), rt.url().to_owned(), rt.api_key().to_owned());
        rt.insert_runtime("bench-raw", "running");
        let s = load::run("raw", 20_000, CONCURRENCY, move |_| {
            send_ok(
                h.get(format!("{u}/sessions/bench-raw"))
                    .header("x-api-key", k.clone()),
            )
        })
        .await;
        rows.push(("raw runtime GET /sessions/{id}".into(), s));
    }
    eprintln!("Rust host…");
    rows.extend(work("rust", rust.url(), n).await);
    eprintln!("Node.js host…");
    rows.extend(work("node", node.url(), n).await);

    println!("| host: operation | requests | clients | throughput (req/s) | p50 (ms) | p99 (ms) |");
    println!("|---|---:|---:|---:|---:|---:|");
    let mut failed = 0;
    for (name, s) in &rows {
        failed += s.errors;
        println!(
            "| {name} | {} | {} | {:.0} | {} | {} |",
            s.requests,
            s.concurrency,
            s.throughput(),
            ms(s.p50()),
            ms(s.p99())
        );
    }
    println!();
    println!("| operation | Node.js ÷ Rust throughput | Node.js ÷ Rust p50 |");
    println!("|---|---:|---:|");
    for (name, r) in rows
        .iter()
        .filter_map(|(n, s)| Some((n.strip_prefix("rust: ")?, s)))
    {
        if let Some((_, s)) = rows.iter().find(|(m, _)| m == &format!("node: {name}")) {
            println!(
                "| {name} | {:.2} | {:.2} |",
                s.throughput() / r.throughput(),
                s.p50().as_secs_f64() / r.p50().as_secs_f64().max(1e-9)
            );
        }
    }
    let cpu = |label: &str, t: Option<Duration>| {
        if let Some(t) = t {
            eprintln!("{label} CPU time over the run: {:.1} s", t.as_secs_f64());
        }
    };
    cpu("sandboxd", rust.cpu_time());
    cpu("sandboxd-node", node.cpu_time());
    if failed > 0 {
        eprintln!("{failed} requests failed");
        std::process::exit(1);
    }
}
