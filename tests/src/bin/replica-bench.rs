//! The scale-out benchmark: the same API work on redb (one process), on
//! PostgreSQL with one replica, and on PostgreSQL with three replicas behind
//! a round-robin client, in one run; then the agent-server requests one poll
//! cycle costs with one replica and with three.
//!
//! ```text
//! cargo build --release -p sandboxd && cargo run --release -p sandboxd-tests --bin replica-bench
//! ```
//!
//! The PostgreSQL server is started by the benchmark (durable: fsync on, as
//! redb commits are), on loopback, and stopped at the end. Everything shares
//! the machine's cores: client, fake runtime, replicas and PostgreSQL, so three
//! replicas on two cores measure the cost of sharing a database, not the gain
//! of more machines. This is a benchmark, not a test: it reports, and exits
//! non-zero only if a request failed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use sandboxd_tests::fake_agent::{FakeAgentServer, FakeAgentServerOptions};
use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions};
use sandboxd_tests::load::{self, Stats, ms, send_ok};
use sandboxd_tests::postgres::{Durability, Postgres};
use sandboxd_tests::sandboxd::{Options, Sandboxd};

/// The same on every replica (callback secrets are derived from it).
const HOST_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// Concurrent clients.
const CONCURRENCY: usize = 8;
/// Sandboxes started (and later deleted) per configuration.
const STARTS: usize = 1_000;
const GETS: usize = 5_000;
const SEARCHES: usize = 1_000;
/// Running sandboxes, each with an agent server, for the poll-cycle count.
const POLLED: usize = 60;
/// Seconds between poll cycles in the poll-cycle count.
const INTERVAL: u64 = 2;
/// Cycles counted.
const CYCLES: u64 = 5;

/// Where the state lives.
#[derive(Clone, Copy)]
enum Backend {
    Redb,
    Postgres { replicas: usize },
}

impl Backend {
    fn label(self) -> String {
        match self {
            Backend::Redb => "redb".into(),
            Backend::Postgres { replicas: 1 } => "postgres, 1 replica".into(),
            Backend::Postgres { replicas } => format!("postgres, {replicas} replicas"),
        }
    }

    /// Start the processes of this configuration, each with `extra` TOML.
    fn start(self, rt: &FakeRuntime, pg: &Postgres, extra: &str) -> Vec<Sandboxd> {
        let options = |toml: String| {
            Options::for_runtime(rt)
                .env("SANDBOXD_LOG", "warn")
                .config(&toml)
        };
        match self {
            Backend::Redb => vec![Sandboxd::start_with(options(extra.to_owned()))],
            Backend::Postgres { replicas } => {
                let toml = format!(
                    "database_url = \"{}\"\nhost_key = \"{HOST_KEY}\"\n{extra}",
                    pg.database()
                );
                (0..replicas)
                    .map(|_| Sandboxd::start_with(options(toml.clone())))
                    .collect()
            }
        }
    }
}

/// The four operations on one configuration; requests go round-robin to its
/// processes.
async fn api_work(backend: Backend, rt: &FakeRuntime, pg: &Postgres) -> (Vec<Stats>, Duration) {
    let fleet = backend.start(
        rt,
        pg,
        "[runtime]\nmax_num_sandboxes = 1000000\n[sync]\nmode = \"webhook\"\n",
    );
    let bases: Arc<Vec<String>> = Arc::new(fleet.iter().map(|s| s.url().to_owned()).collect());
    let cpu_before: Vec<Option<Duration>> = fleet.iter().map(Sandboxd::cpu_time).collect();
    let http = load::client(64);
    let label = backend.label();
    let base = move |bases: &[String], i: usize| bases[i % bases.len()].clone();

    let ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let (h, b, ids2) = (http.clone(), bases.clone(), ids.clone());
    let start = load::run(&format!("{label}: start"), STARTS, CONCURRENCY, move |i| {
        let (h, url, ids) = (
            h.clone(),
            format!("{}/api/v1/sandboxes", base(&b, i)),
            ids2.clone(),
        );
        async move {
            let Ok(r) = h.post(url).send().await else {
                return false;
            };
            let Ok(v) = r.json::<Value>().await else {
                return false;
            };
            match v["id"].as_str() {
                Some(id) => ids.lock().map(|mut ids| ids.push(id.to_owned())).is_ok(),
                None => false,
            }
        }
    })
    .await;
    let ids: Arc<Vec<String>> = Arc::new(ids.lock().map(|v| v.clone()).unwrap_or_default());
    let n = ids.len().max(1);

    let (h, b, ids2) = (http.clone(), bases.clone(), ids.clone());
    let get = load::run(&format!("{label}: get"), GETS, CONCURRENCY, move |i| {
        let url = format!(
            "{}/api/v1/sandboxes/{}",
            base(&b, i),
            ids2.get((i * 7919) % n).map_or("", String::as_str)
        );
        let h = h.clone();
        async move { send_ok(h.get(url)).await }
    })
    .await;

    let (h, b) = (http.clone(), bases.clone());
    let search = load::run(
        &format!("{label}: search, first page (limit 100)"),
        SEARCHES,
        CONCURRENCY,
        move |i| {
            let url = format!("{}/api/v1/sandboxes/search?limit=100", base(&b, i));
            let h = h.clone();
            async move { send_ok(h.get(url)).await }
        },
    )
    .await;

    let (h, b, ids2) = (http.clone(), bases.clone(), ids.clone());
    let delete = load::run(
        &format!("{label}: delete"),
        ids.len(),
        CONCURRENCY,
        move |i| {
            let url = format!("{}/api/v1/sandboxes/{}", base(&b, i), ids2[i]);
            let h = h.clone();
            async move { matches!(h.delete(url).send().await, Ok(r) if r.status().is_success()) }
        },
    )
    .await;

    let cpu: Duration = fleet
        .iter()
        .zip(cpu_before)
        .filter_map(|(s, before)| Some(s.cpu_time()? - before?))
        .sum();
    (vec![start, get, search, delete], cpu)
}

/// What one poll cycle costs the agent servers, counted over [`CYCLES`]
/// cycles once the replicas hold all buckets between them.
struct CycleCount {
    requests_per_sandbox: f64,
    searches_per_sandbox: f64,
}

async fn poll_cycles(replicas: usize, pg: &Postgres) -> CycleCount {
    let agents = FakeAgentServer::start_with(FakeAgentServerOptions::default());
    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        url_template: format!("{}/{{session_id}}", agents.url()),
        record_requests: false,
        ..Default::default()
    });
    let fleet = Backend::Postgres { replicas }.start(
        &rt,
        pg,
        &format!(
            "[runtime]\npolling_interval = {INTERVAL}\nmax_num_sandboxes = 1000000\n[sync]\nmode = \"poll\"\n"
        ),
    );
    let api = fleet[0].api();
    for i in 0..POLLED {
        let sb = fleet[i % fleet.len()].api().start().await;
        let id = sb["id"].as_str().unwrap_or_default();
        let key = sb["session_api_key"].as_str().unwrap_or_default();
        agents.add_agent(id, key);
        let conversation = agents.add_conversation(id, json!({}));
        agents.add_event(id, &conversation, json!({"kind": "MessageEvent"}));
    }
    // Every bucket held, by one replica each, and a cycle or two done.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let items = api.get("/admin/replicas").await.ok()["items"].clone();
        let held: usize = items
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["buckets"].as_array().map_or(0, Vec::len))
            .sum();
        let live = items.as_array().map_or(0, Vec::len);
        if (live == replicas && held == 64) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2 * INTERVAL)).await;
    agents.clear_requests();
    tokio::time::sleep(Duration::from_secs(CYCLES * INTERVAL)).await;
    let requests = agents.count_any("/");
    let searches = agents.count_any("/api/conversations/search");
    let per = (POLLED as u64 * CYCLES) as f64;
    CycleCount {
        requests_per_sandbox: requests as f64 / per,
        searches_per_sandbox: searches as f64 / per,
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    eprintln!("starting PostgreSQL (durable)…");
    let pg = Postgres::start(Durability::Durable);
    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        record_requests: false,
        ..Default::default()
    });

    let backends = [
        Backend::Redb,
        Backend::Postgres { replicas: 1 },
        Backend::Postgres { replicas: 3 },
    ];
    let mut runs = Vec::new();
    for backend in backends {
        eprintln!("{}…", backend.label());
        runs.push((backend, api_work(backend, &rt, &pg).await));
    }

    println!(
        "| backend: operation | requests | clients | throughput (req/s) | p50 (ms) | p99 (ms) |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let mut errors = 0;
    for (_, (stats, _)) in &runs {
        for s in stats {
            errors += s.errors;
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
    }
    println!();
    println!(
        "| operation | postgres (1) ÷ redb throughput | postgres (3) ÷ redb throughput | postgres (3) ÷ postgres (1) throughput |"
    );
    println!("|---|---:|---:|---:|");
    let ops = ["start", "get", "search, first page", "delete"];
    for (i, op) in ops.iter().enumerate() {
        let t = |run: usize| runs[run].1.0[i].throughput();
        println!(
            "| {op} | {:.2} | {:.2} | {:.2} |",
            t(1) / t(0),
            t(2) / t(0),
            t(2) / t(1)
        );
    }
    println!();
    for (backend, (_, cpu)) in &runs {
        println!(
            "CPU of sandboxd over the {} run (all its processes): {:.1} s",
            backend.label(),
            cpu.as_secs_f64()
        );
    }

    eprintln!("poll cycles…");
    println!();
    println!(
        "| replicas | agent-server requests per sandbox per cycle | conversation searches per sandbox per cycle |"
    );
    println!("|---:|---:|---:|");
    for replicas in [1, 3] {
        let c = poll_cycles(replicas, &pg).await;
        println!(
            "| {replicas} | {:.2} | {:.2} |",
            c.requests_per_sandbox, c.searches_per_sandbox
        );
    }
    if errors > 0 {
        eprintln!("{errors} requests failed");
        std::process::exit(1);
    }
}
