//! The core benchmark: sandboxd's API against the fake runtime API on loopback,
//! next to the raw runtime round trips it is built from, measured in the same run.
//!
//! Run (release builds of both):
//!
//! ```text
//! cargo build --release -p sandboxd && cargo run --release -p sandboxd-tests --bin sandboxd-bench
//! ```
//!
//! Prints markdown tables: per operation (throughput, p50, p99), then the ratios
//! the project targets. This is a benchmark, not a test: it reports, and exits
//! non-zero only if a request failed.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions};
use sandboxd_tests::load::{self, Stats};
use sandboxd_tests::sandboxd::{self, Options, Sandboxd};

/// Sandboxes stored before the read benchmarks (`SANDBOXD_BENCH_STORED` to
/// change it while profiling).
fn stored() -> usize {
    std::env::var("SANDBOXD_BENCH_STORED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}
/// Concurrent clients for throughput runs.
const CONCURRENCY: usize = 8;
/// Rounds of the read benchmarks; each figure is the median round
/// (`SANDBOXD_BENCH_ROUNDS` to change it while profiling).
fn rounds() -> usize {
    std::env::var("SANDBOXD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// A GET that succeeds on 200 and reads the whole body.
async fn get_ok(client: &reqwest::Client, url: String, key: Option<&str>) -> bool {
    let mut req = client.get(url);
    if let Some(key) = key {
        req = req.header("x-api-key", key);
    }
    match req.send().await {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

/// A small deterministic pseudo-random sequence, so every run asks for the
/// same sandboxes in the same order.
fn pick(i: usize, n: usize) -> usize {
    (i.wrapping_mul(2_654_435_761) ^ (i >> 3)) % n
}

fn median_round(mut rounds: Vec<Stats>) -> Stats {
    rounds.sort_by(|a, b| a.throughput().total_cmp(&b.throughput()));
    rounds.swap_remove(rounds.len() / 2)
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let bin = sandboxd::binary();
    eprintln!("sandboxd binary: {}", bin.display());
    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        record_requests: false,
        ..Default::default()
    });
    let sd = Sandboxd::start_with(
        Options::for_runtime(&rt)
            .env("SANDBOXD_LOG", "warn")
            // The per-user limit's housekeeping is measured by the tests, not here:
            // with 10,000 sandboxes of one user it would pause them as they start.
            .env("SANDBOXD_MAX_NUM_SANDBOXES", "1000000"),
    );
    let base = sd.url().to_owned();
    let runtime_url = rt.url().to_owned();
    let key: Arc<str> = Arc::from(rt.api_key());
    let http = client();

    // ---- start: fills the store ----
    let (stored, rounds) = (stored(), rounds());
    eprintln!("starting {stored} sandboxes…");
    let ids: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let start = {
        let (http, base, ids) = (http.clone(), base.clone(), ids.clone());
        load::run("start", stored, CONCURRENCY, move |_| {
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
    let n = ids.len();

    // The cursor of the page 9,900 items deep, found by walking the pages.
    let mut deep_cursor = String::new();
    for _ in 0..(n / 100).saturating_sub(1).min(99) {
        let path = if deep_cursor.is_empty() {
            format!("{base}/api/v1/sandboxes/search?limit=100")
        } else {
            format!("{base}/api/v1/sandboxes/search?limit=100&page_id={deep_cursor}")
        };
        let page: serde_json::Value = match http.get(path).send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        deep_cursor = page["next_page_id"].as_str().unwrap_or_default().to_owned();
    }
    let batch_query = |i: usize| -> String {
        (0..100)
            .map(|j| format!("ids={}", ids[pick(i * 100 + j, n)]))
            .collect::<Vec<_>>()
            .join("&")
    };

    if std::env::var_os("SANDBOXD_BENCH_BREAKDOWN").is_some() {
        println!("| request kind | throughput (req/s) | sandboxd CPU per request (µs) |");
        println!("|---|---:|---:|");
        for (name, path) in [
            ("healthz (no plugin call)", "/healthz".to_owned()),
            (
                "specs search (plugin call, no I/O)",
                "/api/v1/sandbox-specs/search".to_owned(),
            ),
            (
                "get of an unknown id (plugin + storage)",
                "/api/v1/sandboxes/unknown".to_owned(),
            ),
            (
                "get (plugin + storage + runtime)",
                format!("/api/v1/sandboxes/{}", ids[0]),
            ),
            (
                "search, first page (limit 100)",
                "/api/v1/sandboxes/search?limit=100".to_owned(),
            ),
        ] {
            let (h, url) = (http.clone(), format!("{base}{path}"));
            let count = if path.contains("search?") {
                2_000
            } else {
                20_000
            };
            let before = sd.cpu_time();
            let s = load::run(name, count, CONCURRENCY, move |_| {
                let (h, url) = (h.clone(), url.clone());
                async move { h.get(url).send().await.is_ok() }
            })
            .await;
            let cpu = match (before, sd.cpu_time()) {
                (Some(a), Some(b)) => (b - a).as_secs_f64() * 1e6 / count as f64,
                _ => f64::NAN,
            };
            println!("| {name} | {:.0} | {cpu:.0} |", s.throughput());
        }
    }
    let mut results: Vec<Vec<Stats>> = vec![Vec::new(); 7];
    let mut get_cpu: Vec<Duration> = Vec::new();
    for round in 0..rounds {
        eprintln!("round {}/{rounds}…", round + 1);
        let (h, u, k, ids2) = (http.clone(), runtime_url.clone(), key.clone(), ids.clone());
        results[0].push(
            load::run(
                "raw runtime GET /sessions/{id}",
                20_000,
                CONCURRENCY,
                move |i| {
                    let (h, url, k) = (
                        h.clone(),
                        format!("{u}/sessions/{}", ids2[pick(i, n)]),
                        k.clone(),
                    );
                    async move { get_ok(&h, url, Some(&k)).await }
                },
            )
            .await,
        );
        let (h, b, ids2) = (http.clone(), base.clone(), ids.clone());
        let cpu_before = sd.cpu_time();
        results[1].push(
            load::run(
                "get /api/v1/sandboxes/{id}",
                20_000,
                CONCURRENCY,
                move |i| {
                    let (h, url) = (
                        h.clone(),
                        format!("{b}/api/v1/sandboxes/{}", ids2[pick(i, n)]),
                    );
                    async move { get_ok(&h, url, None).await }
                },
            )
            .await,
        );
        if let (Some(a), Some(b)) = (cpu_before, sd.cpu_time()) {
            get_cpu.push((b - a) / 20_000);
        }
        let (h, u, k) = (http.clone(), runtime_url.clone(), key.clone());
        let queries: Arc<Vec<String>> = Arc::new((0..2_000).map(batch_query).collect());
        let q2 = queries.clone();
        results[2].push(
            load::run(
                "raw runtime GET /sessions/batch (100 ids)",
                2_000,
                CONCURRENCY,
                move |i| {
                    let (h, url, k) = (
                        h.clone(),
                        format!("{u}/sessions/batch?{}", q2[i]),
                        k.clone(),
                    );
                    async move { get_ok(&h, url, Some(&k)).await }
                },
            )
            .await,
        );
        let (h, b) = (http.clone(), base.clone());
        results[3].push(
            load::run(
                "search, first page (limit 100)",
                2_000,
                CONCURRENCY,
                move |_| {
                    let (h, url) = (h.clone(), format!("{b}/api/v1/sandboxes/search?limit=100"));
                    async move { get_ok(&h, url, None).await }
                },
            )
            .await,
        );
        let (h, b, c) = (http.clone(), base.clone(), deep_cursor.clone());
        results[4].push(
            load::run(
                "search, page 9,900 deep (limit 100)",
                2_000,
                CONCURRENCY,
                move |_| {
                    let (h, url) = (
                        h.clone(),
                        format!("{b}/api/v1/sandboxes/search?limit=100&page_id={c}"),
                    );
                    async move { get_ok(&h, url, None).await }
                },
            )
            .await,
        );
        let (h, b, q2) = (http.clone(), base.clone(), queries.clone());
        results[5].push(
            load::run("batch get (100 ids)", 2_000, CONCURRENCY, move |i| {
                let (h, url) = (
                    h.clone(),
                    format!("{b}/api/v1/sandboxes?{}", q2[i].replace("ids=", "id=")),
                );
                async move { get_ok(&h, url, None).await }
            })
            .await,
        );
        let (h, b, ids2) = (http.clone(), base.clone(), ids.clone());
        results[6].push(
            load::run("get, one client (latency)", 3_000, 1, move |i| {
                let (h, url) = (
                    h.clone(),
                    format!("{b}/api/v1/sandboxes/{}", ids2[pick(i, n)]),
                );
                async move { get_ok(&h, url, None).await }
            })
            .await,
        );
    }
    let [raw_get, get, raw_batch, first, deep, batch, get_seq]: [Stats; 7] = results
        .into_iter()
        .map(median_round)
        .collect::<Vec<_>>()
        .try_into()
        .unwrap_or_else(|_| panic!("seven benchmarks"));

    // ---- delete ----
    let deletes = 2_000.min(n);
    let (h, b, ids2) = (http.clone(), base.clone(), ids.clone());
    let delete = load::run("delete", deletes, CONCURRENCY, move |i| {
        let (h, url) = (h.clone(), format!("{b}/api/v1/sandboxes/{}", ids2[i]));
        async move { matches!(h.delete(url).send().await, Ok(r) if r.status().is_success()) }
    })
    .await;

    // ---- instantiate + one call, in the host itself ----
    let out = Command::new(&bin)
        .args(["plugin", "bench", "--json", "--iterations", "5000"])
        .output();
    let inst: serde_json::Value = out
        .ok()
        .and_then(|o| serde_json::from_slice(&o.stdout).ok())
        .unwrap_or_default();
    let inst_p50 = Duration::from_secs_f64(inst["p50_us"].as_f64().unwrap_or(f64::NAN) / 1e6);
    let inst_p99 = Duration::from_secs_f64(inst["p99_us"].as_f64().unwrap_or(f64::NAN) / 1e6);

    let all = [
        &raw_get, &get, &get_seq, &raw_batch, &first, &deep, &batch, &start, &delete,
    ];
    println!("| operation | requests | clients | throughput (req/s) | p50 (ms) | p99 (ms) |");
    println!("|---|---:|---:|---:|---:|---:|");
    for s in all {
        println!(
            "| {} | {} | {} | {:.0} | {} | {} |",
            s.name,
            s.requests,
            s.concurrency,
            s.throughput(),
            ms(s.p50()),
            ms(s.p99())
        );
    }
    println!(
        "| fresh store + instantiate + `info` call (in-process) | {} | 1 | {:.0} | {} | {} |",
        inst["iterations"],
        1.0 / inst_p50.as_secs_f64(),
        ms(inst_p50),
        ms(inst_p99)
    );
    println!();
    let row = |what: &str, value: f64, goal: &str, ok: bool| {
        println!(
            "| {what} | {value:.2} | {goal} | {} |",
            if ok { "met" } else { "**missed**" }
        );
    };
    println!("| target | measured | goal | |");
    println!("|---|---:|---|---|");
    let r = get.throughput() / raw_get.throughput();
    row(
        "get throughput ÷ raw `GET /sessions/{id}` throughput",
        r,
        "≥ 0.50",
        r >= 0.5,
    );
    let r = first.throughput() / raw_batch.throughput();
    row(
        "search (first page) throughput ÷ raw batch-of-100 throughput",
        r,
        "≥ 0.40",
        r >= 0.4,
    );
    let r = deep.p50().as_secs_f64() / first.p50().as_secs_f64();
    row("deep page p50 ÷ first page p50", r, "≤ 1.20", r <= 1.2);
    let r = inst_p50.as_secs_f64() / get_seq.p50().as_secs_f64();
    row(
        "instantiate + call p50 ÷ get p50 (one client)",
        r,
        "< 0.05",
        r < 0.05,
    );

    get_cpu.sort();
    if let Some(cpu) = get_cpu.get(get_cpu.len() / 2) {
        println!();
        println!(
            "sandboxd CPU time per get (user + system, all threads): {:.0} µs",
            cpu.as_secs_f64() * 1e6
        );
    }
    let errors: usize = all.iter().map(|s| s.errors).sum();
    if errors > 0 || inst.is_null() {
        eprintln!("{errors} requests failed (or the instantiate benchmark did not run)");
        std::process::exit(1);
    }
}
