//! The lifecycle benchmark (issue 13): one policy pass over 10,000 stored
//! sandboxes, next to a search pass over the same sandboxes (every page of
//! 100, one client), measured in the same run against the same fake runtime.
//!
//! Run (release builds of both):
//!
//! ```text
//! cargo build --release -p sandboxd && cargo run --release -p sandboxd-tests --bin lifecycle-bench
//! ```
//!
//! Two passes are measured: with no policy on (what every sandboxd pays: the
//! runtime's status of each sandbox, compared with the history), and with
//! `idle_pause` and `max_running` on but not due (each running sandbox's
//! conversations are read too). Each figure is the median of
//! `SANDBOXD_BENCH_ROUNDS` rounds (3). Both runs pass every 10,000 sandboxes
//! through the plugin and the runtime's batch route 100 at a time; the search
//! pass pays one HTTP request per page, the policy pass one plugin call.

use std::time::{Duration, Instant};

use serde_json::Value;

use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions};
use sandboxd_tests::load::{self, env_or, send_ok};
use sandboxd_tests::sandboxd::{self, Options, Sandboxd};

/// Every page of the search, one after the other; how long, and how many.
async fn search_pass(http: &reqwest::Client, base: &str) -> (Duration, usize) {
    let started = Instant::now();
    let (mut seen, mut cursor) = (0, String::new());
    loop {
        let query = if cursor.is_empty() {
            String::new()
        } else {
            format!("&page_id={cursor}")
        };
        let page: Value = match http
            .get(format!("{base}/api/v1/sandboxes/search?limit=100{query}"))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(e) => panic!("search: {e}"),
        };
        seen += page["items"].as_array().map_or(0, Vec::len);
        match page["next_page_id"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return (started.elapsed(), seen),
        }
    }
}

/// One policy pass through the admin route: the wall time, and the pass's own.
async fn policy_pass(http: &reqwest::Client, base: &str) -> (Duration, Value) {
    let started = Instant::now();
    let summary: Value = match http
        .post(format!("{base}/admin/lifecycle/pass"))
        .send()
        .await
    {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(e) => panic!("pass: {e}"),
    };
    (started.elapsed(), summary)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

async fn fill(http: &reqwest::Client, base: &str, n: usize) {
    let (h, base) = (http.clone(), base.to_owned());
    let stats = load::run("start", n, 8, move |_| {
        send_ok(h.post(format!("{base}/api/v1/sandboxes")))
    })
    .await;
    assert_eq!(stats.errors, 0, "starts failed while filling");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let stored = env_or("SANDBOXD_BENCH_STORED", 10_000);
    let rounds = env_or("SANDBOXD_BENCH_ROUNDS", 3).max(1);
    eprintln!("sandboxd binary: {}", sandboxd::binary().display());
    let http = load::client(8);
    let mut rows = Vec::new();
    for (name, policies) in [
        ("no policy on", ""),
        (
            "idle_pause and max_running on, not due",
            "idle_pause = 86400\nmax_running = 86400\n",
        ),
    ] {
        let rt = FakeRuntime::start_with(FakeRuntimeOptions {
            record_requests: false,
            ..Default::default()
        });
        let sd = Sandboxd::start_with(
            Options::for_runtime(&rt)
                .env("SANDBOXD_LOG", "warn")
                .env("SANDBOXD_MAX_NUM_SANDBOXES", "1000000")
                // Passes run when asked, not on the clock, while measured.
                .config(&format!("[lifecycle]\ninterval = 86400\n{policies}")),
        );
        eprintln!("{name}: starting {stored} sandboxes…");
        fill(&http, sd.url(), stored).await;
        let (mut searches, mut passes) = (Vec::new(), Vec::new());
        let mut looked_at = 0;
        for round in 0..rounds {
            eprintln!("{name}: round {}/{rounds}…", round + 1);
            let (took, seen) = search_pass(&http, sd.url()).await;
            assert_eq!(seen, stored, "the search pass saw every sandbox");
            searches.push(took);
            let (took, summary) = policy_pass(&http, sd.url()).await;
            looked_at = summary["sandboxes"].as_u64().unwrap_or(0);
            let failures = summary["failures"].as_array().map_or(0, Vec::len);
            assert_eq!(failures, 0, "{summary}");
            assert_eq!(summary["paused"], 0, "{summary}");
            passes.push(took);
        }
        rows.push((name, looked_at, median(searches), median(passes)));
    }
    println!(
        "| pass over {stored} stored sandboxes | sandboxes | search pass (ms) | policy pass (ms) | policy ÷ search |"
    );
    println!("|---|---:|---:|---:|---:|");
    for (name, n, search, pass) in rows {
        println!(
            "| {name} | {n} | {} | {} | {:.2} |",
            ms(search),
            ms(pass),
            pass.as_secs_f64() / search.as_secs_f64()
        );
    }
}
