//! A bounded load generator: a fixed number of requests, a fixed concurrency, and
//! the latency of each, for benchmarks on loopback.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What one run of `requests` calls measured.
#[derive(Debug, Clone)]
pub struct Stats {
    pub name: String,
    pub requests: usize,
    pub concurrency: usize,
    pub errors: usize,
    pub elapsed: Duration,
    /// Sorted.
    latencies: Vec<Duration>,
}

impl Stats {
    pub fn throughput(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)]
    }

    pub fn p50(&self) -> Duration {
        self.percentile(0.50)
    }

    pub fn p99(&self) -> Duration {
        self.percentile(0.99)
    }

    /// Several runs of one operation as one (their requests, errors, time and
    /// latencies added up).
    pub fn combine(name: &str, runs: Vec<Stats>) -> Stats {
        let mut latencies: Vec<Duration> = runs
            .iter()
            .flat_map(|r| r.latencies.iter().copied())
            .collect();
        latencies.sort_unstable();
        Stats {
            name: name.to_owned(),
            requests: runs.iter().map(|r| r.requests).sum(),
            concurrency: runs.iter().map(|r| r.concurrency).max().unwrap_or(0),
            errors: runs.iter().map(|r| r.errors).sum(),
            elapsed: runs.iter().map(|r| r.elapsed).sum(),
            latencies,
        }
    }
}

/// Run `call(i)` for `i` in `0..requests`, `concurrency` at a time. A call
/// returns whether it succeeded.
pub async fn run<F, Fut>(name: &str, requests: usize, concurrency: usize, call: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send,
{
    let call = Arc::new(call);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let call = call.clone();
        let next = next.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let t = Instant::now();
                if !call(i).await {
                    errors += 1;
                }
                latencies.push(t.elapsed());
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::with_capacity(requests);
    let mut errors = 0;
    for w in workers {
        if let Ok((l, e)) = w.await {
            latencies.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Stats {
        name: name.to_owned(),
        requests,
        concurrency,
        errors,
        elapsed,
        latencies,
    }
}

/// A whole number from the environment variable `name`, or `default`: how a
/// benchmark is sized (`SANDBOXD_BENCH_STORED`, `SANDBOXD_BENCH_ROUNDS`).
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A client for benchmarks on loopback: no proxy, no Nagle delay, and up to
/// `idle` kept-alive connections per host (one per concurrent caller).
pub fn client(idle: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(idle)
        .tcp_nodelay(true)
        .build()
        .unwrap_or_else(|e| panic!("client: {e}"))
}

/// One request: successful on 2xx with its whole body read.
pub async fn send_ok(req: reqwest::RequestBuilder) -> bool {
    match req.send().await {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

/// A small deterministic pseudo-random sequence in `0..n`, so every run asks
/// for the same items in the same order.
pub fn pick(i: usize, n: usize) -> usize {
    (i.wrapping_mul(2_654_435_761) ^ (i >> 3)) % n
}

/// Milliseconds with three decimals, for the tables.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}
