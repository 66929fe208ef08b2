//! Time to a running sandbox (issue 12, point 5): `POST /api/v1/sandboxes` →
//! `RUNNING` with the real OpenHands agent server as the spec, on the embedded
//! local runtime, started cold and taken from a warm pool (`warm = 1`),
//! measured in the same run.
//!
//! Run (release build of sandboxd; the agent-server venv of
//! `scripts/agent-server-venv.sh`):
//!
//! ```text
//! cargo build --release -p sandboxd && cargo run --release -p sandboxd-tests --bin warm-bench
//! ```
//!
//! Each of `SANDBOXD_BENCH_STARTS` (5) starts is timed from sending the start
//! to the first answer that says `RUNNING` (the start's own, or a get polled
//! every 10 ms), then the sandbox is deleted. A warm start waits, untimed,
//! until the pool has a running sandbox again (an agent server takes seconds
//! to start: the pool hides that time, it does not remove it).

use std::time::{Duration, Instant};

use serde_json::Value;

use sandboxd_tests::agent_server::{local_spec_toml, venv_python};
use sandboxd_tests::load::{self, env_or};
use sandboxd_tests::sandboxd::{self, Options, Sandboxd};

/// Longest a start may take to reach `RUNNING`.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(120);

async fn json(req: reqwest::RequestBuilder) -> Value {
    match req.send().await {
        Ok(r) => r.json().await.unwrap_or_default(),
        Err(e) => panic!("request failed: {e}"),
    }
}

/// One start: the time to `RUNNING`, and whether the start's own answer said so.
async fn start_to_running(http: &reqwest::Client, base: &str) -> (Duration, bool) {
    let started = Instant::now();
    let sb = json(http.post(format!("{base}/api/v1/sandboxes"))).await;
    let id = sb["id"].as_str().unwrap_or_default().to_owned();
    let first = sb["status"] == "RUNNING";
    let mut status = sb["status"].clone();
    while status != "RUNNING" {
        assert!(
            status == "STARTING" && started.elapsed() < RUNNING_TIMEOUT,
            "sandbox {id} did not start: {status}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = json(http.get(format!("{base}/api/v1/sandboxes/{id}"))).await["status"].clone();
    }
    let took = started.elapsed();
    let deleted = http
        .delete(format!("{base}/api/v1/sandboxes/{id}"))
        .send()
        .await
        .map(|r| r.status().is_success());
    assert!(matches!(deleted, Ok(true)), "delete of {id} failed");
    (took, first)
}

/// Passes until the pool has a running sandbox.
async fn wait_for_pool(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + RUNNING_TIMEOUT;
    loop {
        let pass = json(http.post(format!("{base}/admin/lifecycle/pass"))).await;
        if pass["warm_ready"].as_u64().unwrap_or(0) >= 1 {
            return;
        }
        assert!(Instant::now() < deadline, "the pool never filled: {pass}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let starts = env_or("SANDBOXD_BENCH_STARTS", 5).max(1);
    eprintln!("sandboxd binary: {}", sandboxd::binary().display());
    let python = venv_python().display().to_string();
    let http = load::client(4);
    let mut rows = Vec::new();
    for (name, warm) in [("cold", ""), ("warm pool (`warm = 1`)", "warm = 1")] {
        let sd = Sandboxd::start_with(Options::default().env("SANDBOXD_LOG", "warn").config(
            &format!(
                "[runtime]\nstart_sandbox_timeout = 120\n[lifecycle]\ninterval = 0.5\n{}",
                local_spec_toml(&python, warm)
            ),
        ));
        let mut times = Vec::with_capacity(starts);
        let mut running_at_once = 0;
        for i in 0..starts {
            if !warm.is_empty() {
                wait_for_pool(&http, sd.url()).await;
            }
            let (took, first) = start_to_running(&http, sd.url()).await;
            eprintln!("{name}: start {}/{starts}: {took:?}", i + 1);
            times.push(took);
            running_at_once += usize::from(first);
        }
        times.sort();
        rows.push((name, times, running_at_once));
    }
    let cold_p50 = percentile(&rows[0].1, 0.5);
    println!(
        "| start → RUNNING, real agent server, local runtime ({starts} starts) | p50 (ms) | min (ms) | max (ms) | RUNNING in the first answer | p50 ÷ cold p50 |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, times, at_once) in &rows {
        let p50 = percentile(times, 0.5);
        println!(
            "| {name} | {} | {} | {} | {at_once} of {starts} | {:.4} |",
            load::ms(p50),
            load::ms(times[0]),
            load::ms(times[times.len() - 1]),
            p50.as_secs_f64() / cold_p50.as_secs_f64()
        );
    }
}
