//! The core benchmark: sandboxd's API against the fake runtime API on loopback,
//! next to the references it is judged against, all measured in the same run.
//!
//! Run (release builds of both):
//!
//! ```text
//! cargo build --release -p sandboxd && cargo run --release -p sandboxd-tests --bin sandboxd-bench
//! ```
//!
//! Two kinds of figures:
//! - **Sequential latency** (one keep-alive client, p50): each operation next to
//!   what it is made of when sandboxd costs nothing: the raw runtime calls it
//!   needs, a round trip to sandboxd's `/healthz` (HTTP alone), and for writes one
//!   durable commit of the store measured alone (`sandboxd store bench`).
//! - **Throughput** (64 clients): get and search next to the raw runtime
//!   requests they wrap, from the same client.
//!
//! Every read figure is the median of `SANDBOXD_BENCH_ROUNDS` rounds (3). Prints
//! markdown tables, then the targets. This is a benchmark, not a test: it
//! reports, and exits non-zero only if a request failed.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions};
use sandboxd_tests::load::{self, Stats, env_or, ms, pick, send_ok};
use sandboxd_tests::sandboxd::{self, Options, Sandboxd};

/// Clients of the throughput runs.
const CLIENTS: usize = 64;

/// What the benchmark talks to.
struct Bench {
    http: reqwest::Client,
    /// sandboxd's base URL.
    sd: String,
    /// The fake runtime's base URL and key.
    rt: String,
    key: Arc<str>,
    ids: Arc<Vec<String>>,
}

impl Bench {
    /// `GET` `path` of sandboxd, `count` times with `clients` clients; `path`
    /// gets the request's index.
    async fn sandboxd_get(
        &self,
        name: &str,
        count: usize,
        clients: usize,
        path: impl Fn(usize) -> String + Send + Sync + 'static,
    ) -> Stats {
        let (http, base) = (self.http.clone(), self.sd.clone());
        load::run(name, count, clients, move |i| {
            send_ok(http.get(format!("{base}{}", path(i))))
        })
        .await
    }

    /// The same against the raw runtime API, with its key.
    async fn runtime_get(
        &self,
        name: &str,
        count: usize,
        clients: usize,
        path: impl Fn(usize) -> String + Send + Sync + 'static,
    ) -> Stats {
        let (http, base, key) = (self.http.clone(), self.rt.clone(), self.key.clone());
        load::run(name, count, clients, move |i| {
            send_ok(
                http.get(format!("{base}{}", path(i)))
                    .header("x-api-key", &*key),
            )
        })
        .await
    }

    fn id(&self, i: usize) -> String {
        self.ids[pick(i, self.ids.len())].clone()
    }

    /// `ids=a&ids=b…`: 100 stored sandboxes for request `i`.
    fn hundred(&self, i: usize, name: &str) -> String {
        (0..100)
            .map(|j| format!("{name}={}", self.id(i * 100 + j)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// The median round of each figure (by p50 for latency, by throughput for load).
fn median_by(mut rounds: Vec<Stats>, key: impl Fn(&Stats) -> f64) -> Stats {
    rounds.sort_by(|a, b| key(a).total_cmp(&key(b)));
    rounds.swap_remove(rounds.len() / 2)
}

/// The p50 of `sandboxd <args> --json`, an offline measurement of the binary.
fn offline_p50(args: &[&str]) -> Option<Duration> {
    let out = Command::new(sandboxd::binary()).args(args).output().ok()?;
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(Duration::from_secs_f64(v["p50_us"].as_f64()? / 1e6))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let stored = env_or("SANDBOXD_BENCH_STORED", 10_000);
    let rounds = env_or("SANDBOXD_BENCH_ROUNDS", 3).max(1);
    eprintln!("sandboxd binary: {}", sandboxd::binary().display());
    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        record_requests: false,
        ..Default::default()
    });
    let sd = Sandboxd::start_with(
        Options::for_runtime(&rt)
            .env("SANDBOXD_LOG", "warn")
            // The per-user limit's housekeeping is measured by the tests, not here:
            // with 10,000 sandboxes of one user it would pause them as they start.
            .env("SANDBOXD_MAX_NUM_SANDBOXES", "1000000")
            // The raw /start calls below make runtimes no record claims.
            .env("SANDBOXD_ORPHANS", "keep"),
    );
    let http = load::client(CLIENTS);

    // ---- fill the store ----
    eprintln!("starting {stored} sandboxes…");
    let ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let fill = {
        let (http, base, ids) = (http.clone(), sd.url().to_owned(), ids.clone());
        load::run("start", stored, 8, move |_| {
            let (http, base, ids) = (http.clone(), base.clone(), ids.clone());
            async move {
                let Ok(r) = http.post(format!("{base}/api/v1/sandboxes")).send().await else {
                    return false;
                };
                let Ok(v) = r.json::<Value>().await else {
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
    let b = Arc::new(Bench {
        http: http.clone(),
        sd: sd.url().to_owned(),
        rt: rt.url().to_owned(),
        key: Arc::from(rt.api_key()),
        ids: Arc::new(ids.lock().map(|v| v.clone()).unwrap_or_default()),
    });

    // The cursor of the page 9,900 items deep, found by walking the pages.
    let mut deep_cursor = String::new();
    for _ in 0..(b.ids.len() / 100).saturating_sub(1).min(99) {
        let query = if deep_cursor.is_empty() {
            String::new()
        } else {
            format!("&page_id={deep_cursor}")
        };
        let page: Value = match http
            .get(format!("{}/api/v1/sandboxes/search?limit=100{query}", b.sd))
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        deep_cursor = page["next_page_id"].as_str().unwrap_or_default().to_owned();
    }

    // ---- reads: sequential and under load, in rounds ----
    let mut seq: Vec<Vec<Stats>> = vec![Vec::new(); 8];
    let mut load_runs: Vec<Vec<Stats>> = vec![Vec::new(); 4];
    let mut get_cpu: Vec<Duration> = Vec::new();
    for round in 0..rounds {
        eprintln!("round {}/{rounds}…", round + 1);
        let figures = [
            b.sandboxd_get("sandboxd GET /healthz", 3_000, 1, |_| "/healthz".into())
                .await,
            {
                let b2 = b.clone();
                b.runtime_get("raw GET /sessions/batch (1 id)", 3_000, 1, move |i| {
                    format!("/sessions/batch?ids={}", b2.id(i))
                })
                .await
            },
            {
                let b2 = b.clone();
                b.runtime_get("raw GET /sessions/{id}", 3_000, 1, move |i| {
                    format!("/sessions/{}", b2.id(i))
                })
                .await
            },
            {
                let b2 = b.clone();
                b.runtime_get("raw GET /sessions/batch (100 ids)", 1_000, 1, move |i| {
                    format!("/sessions/batch?{}", b2.hundred(i, "ids"))
                })
                .await
            },
            {
                let b2 = b.clone();
                b.sandboxd_get("get", 3_000, 1, move |i| {
                    format!("/api/v1/sandboxes/{}", b2.id(i))
                })
                .await
            },
            b.sandboxd_get("search, first page (limit 100)", 1_000, 1, |_| {
                "/api/v1/sandboxes/search?limit=100".into()
            })
            .await,
            {
                let c = deep_cursor.clone();
                b.sandboxd_get("search, page 9,900 deep (limit 100)", 1_000, 1, move |_| {
                    format!("/api/v1/sandboxes/search?limit=100&page_id={c}")
                })
                .await
            },
            {
                let b2 = b.clone();
                b.sandboxd_get("batch get (100 ids)", 1_000, 1, move |i| {
                    format!("/api/v1/sandboxes?{}", b2.hundred(i, "id"))
                })
                .await
            },
        ];
        for (all, s) in seq.iter_mut().zip(figures) {
            all.push(s);
        }

        let b2 = b.clone();
        load_runs[0].push(
            b.runtime_get("raw GET /sessions/{id}", 40_000, CLIENTS, move |i| {
                format!("/sessions/{}", b2.id(i))
            })
            .await,
        );
        let cpu_before = sd.cpu_time();
        let b2 = b.clone();
        load_runs[1].push(
            b.sandboxd_get("get", 20_000, CLIENTS, move |i| {
                format!("/api/v1/sandboxes/{}", b2.id(i))
            })
            .await,
        );
        if let (Some(a), Some(z)) = (cpu_before, sd.cpu_time()) {
            get_cpu.push((z - a) / 20_000);
        }
        let b2 = b.clone();
        load_runs[2].push(
            b.runtime_get(
                "raw GET /sessions/batch (100 ids)",
                4_000,
                CLIENTS,
                move |i| format!("/sessions/batch?{}", b2.hundred(i, "ids")),
            )
            .await,
        );
        load_runs[3].push(
            b.sandboxd_get("search, first page (limit 100)", 2_000, CLIENTS, |_| {
                "/api/v1/sandboxes/search?limit=100".into()
            })
            .await,
        );
    }
    let p50 = |s: &Stats| s.p50().as_secs_f64();
    let [
        healthz,
        raw_batch1,
        raw_get1,
        raw_batch100,
        get,
        first,
        deep,
        batch,
    ]: [Stats; 8] = seq
        .into_iter()
        .map(|r| median_by(r, p50))
        .collect::<Vec<_>>()
        .try_into()
        .unwrap_or_else(|_| panic!("eight sequential figures"));
    let [raw_get_load, get_load, raw_batch_load, search_load]: [Stats; 4] = load_runs
        .into_iter()
        .map(|r| median_by(r, Stats::throughput))
        .collect::<Vec<_>>()
        .try_into()
        .unwrap_or_else(|_| panic!("four load figures"));

    // ---- writes, sequential: start and delete, next to raw /start and /stop ----
    eprintln!("writes…");
    let writes = 1_000.min(b.ids.len());
    let runtimes: Arc<Mutex<Vec<String>>> = Arc::default();
    let (h, base, key, rts) = (http.clone(), b.rt.clone(), b.key.clone(), runtimes.clone());
    let raw_start = load::run("raw POST /start", writes, 1, move |i| {
        let body = json!({
            "image": "ghcr.io/openhands/agent-server:latest-python",
            "command": ["/usr/local/bin/openhands-agent-server", "--port", "60000"],
            "working_dir": "/workspace/project",
            "environment": {"LOG_JSON": "true", "WORKER_1": "12000", "WORKER_2": "12001"},
            "session_id": format!("bench-raw-{i}"),
            "resource_factor": 1,
            "run_as_user": 10001,
            "run_as_group": 10001,
            "fs_group": 10001,
        });
        let req = h
            .post(format!("{base}/start"))
            .header("x-api-key", &*key)
            .json(&body);
        let rts = rts.clone();
        async move {
            let Ok(r) = req.send().await else {
                return false;
            };
            let v: Value = r.json().await.unwrap_or_default();
            match v["runtime_id"].as_str() {
                Some(id) => rts.lock().map(|mut r| r.push(id.to_owned())).is_ok(),
                None => false,
            }
        }
    })
    .await;
    let runtimes = Arc::new(runtimes.lock().map(|v| v.clone()).unwrap_or_default());
    let (h, base, key, rts) = (http.clone(), b.rt.clone(), b.key.clone(), runtimes.clone());
    let raw_stop = load::run("raw POST /stop", rts.len(), 1, move |i| {
        send_ok(
            h.post(format!("{base}/stop"))
                .header("x-api-key", &*key)
                .json(&json!({"runtime_id": rts[i]})),
        )
    })
    .await;
    // The filled sandboxes are paused first, as a long-lived user's are (the
    // limit then counts only what runs), and starts and deletes alternate in
    // groups of ten, so every start finds the same few active sandboxes.
    eprintln!("pausing the {} filled sandboxes…", b.ids.len());
    let (h, base, ids) = (http.clone(), b.sd.clone(), b.ids.clone());
    let pause_fill = load::run("pause", ids.len(), 8, move |i| {
        send_ok(h.post(format!("{base}/api/v1/sandboxes/{}/pause", ids[i])))
    })
    .await;
    let (mut starts, mut deletes) = (Vec::new(), Vec::new());
    for _ in 0..writes / 10 {
        let started: Arc<Mutex<Vec<String>>> = Arc::default();
        let (h, base, st) = (http.clone(), b.sd.clone(), started.clone());
        starts.push(
            load::run("start", 10, 1, move |_| {
                let (h, base, st) = (h.clone(), base.clone(), st.clone());
                async move {
                    let Ok(r) = h.post(format!("{base}/api/v1/sandboxes")).send().await else {
                        return false;
                    };
                    match r
                        .json::<Value>()
                        .await
                        .ok()
                        .and_then(|v| v["id"].as_str().map(str::to_owned))
                    {
                        Some(id) => st.lock().map(|mut s| s.push(id)).is_ok(),
                        None => false,
                    }
                }
            })
            .await,
        );
        let started = Arc::new(started.lock().map(|v| v.clone()).unwrap_or_default());
        let (h, base, st) = (http.clone(), b.sd.clone(), started.clone());
        deletes.push(
            load::run("delete", st.len(), 1, move |i| {
                send_ok(h.delete(format!("{base}/api/v1/sandboxes/{}", st[i])))
            })
            .await,
        );
    }
    let start = Stats::combine("start", starts);
    let delete = Stats::combine("delete", deletes);
    let commit = offline_p50(&["store", "bench", "--json", "--iterations", "500"]);
    let instantiate = offline_p50(&["plugin", "bench", "--json", "--iterations", "5000"]);

    // ---- report ----
    println!("Sequential, one client:");
    println!();
    println!("| operation | requests | p50 (ms) | p99 (ms) |");
    println!("|---|---:|---:|---:|");
    for s in [
        &healthz,
        &raw_batch1,
        &raw_get1,
        &raw_batch100,
        &raw_start,
        &raw_stop,
        &get,
        &first,
        &deep,
        &batch,
        &start,
        &delete,
    ] {
        println!(
            "| {} | {} | {} | {} |",
            s.name,
            s.requests,
            ms(s.p50()),
            ms(s.p99())
        );
    }
    let show = |what: &str, d: Option<Duration>| match d {
        Some(d) => println!("| {what} (offline) | | {} | |", ms(d)),
        None => println!("| {what} (offline) | | did not run | |"),
    };
    show("one durable store commit, alone", commit);
    show("fresh store + instance + `info` call", instantiate);
    println!();
    println!("Throughput, {CLIENTS} clients:");
    println!();
    println!("| operation | requests | throughput (req/s) | p50 (ms) | p99 (ms) |");
    println!("|---|---:|---:|---:|---:|");
    for s in [&raw_get_load, &get_load, &raw_batch_load, &search_load] {
        println!(
            "| {} | {} | {:.0} | {} | {} |",
            s.name,
            s.requests,
            s.throughput(),
            ms(s.p50()),
            ms(s.p99())
        );
    }
    println!(
        "| (filling the store) start, 8 clients | {} | {:.0} | {} | {} |",
        fill.requests,
        fill.throughput(),
        ms(fill.p50()),
        ms(fill.p99())
    );
    println!();
    println!("| target | measured | goal | |");
    println!("|---|---:|---|---|");
    let row = |what: &str, value: f64, goal: f64, at_most: bool| {
        let met = if at_most {
            value <= goal
        } else {
            value >= goal
        };
        println!(
            "| {what} | {value:.2} | {} {goal:.2} | {} |",
            if at_most { "≤" } else { "≥" },
            if met { "met" } else { "**missed**" }
        );
    };
    let h = p50(&healthz);
    row(
        "get p50 ÷ (raw batch of 1 + healthz)",
        p50(&get) / (p50(&raw_batch1) + h),
        1.25,
        true,
    );
    row(
        "search p50 ÷ (raw batch of 100 + healthz)",
        p50(&first) / (p50(&raw_batch100) + h),
        1.6,
        true,
    );
    row(
        "batch get of 100 p50 ÷ (raw batch of 100 + healthz)",
        p50(&batch) / (p50(&raw_batch100) + h),
        1.6,
        true,
    );
    let c = commit.map_or(f64::NAN, |d| d.as_secs_f64());
    row(
        "start p50 ÷ (raw /start + healthz + one commit)",
        p50(&start) / (p50(&raw_start) + h + c),
        1.25,
        true,
    );
    row(
        "delete p50 ÷ (raw GET /sessions/{id} + raw /stop + healthz + one commit)",
        p50(&delete) / (p50(&raw_get1) + p50(&raw_stop) + h + c),
        1.25,
        true,
    );
    row(
        "get throughput ÷ raw GET /sessions/{id} throughput",
        get_load.throughput() / raw_get_load.throughput(),
        0.35,
        false,
    );
    row(
        "search throughput ÷ raw batch-of-100 throughput",
        search_load.throughput() / raw_batch_load.throughput(),
        0.5,
        false,
    );
    row(
        "deep page p50 ÷ first page p50",
        p50(&deep) / p50(&first),
        1.2,
        true,
    );

    get_cpu.sort();
    if let Some(cpu) = get_cpu.get(get_cpu.len() / 2) {
        println!();
        println!(
            "sandboxd CPU time per get under load (user + system, all threads): {:.0} µs",
            cpu.as_secs_f64() * 1e6
        );
    }
    let all = [
        &fill,
        &pause_fill,
        &healthz,
        &raw_batch1,
        &raw_get1,
        &raw_batch100,
        &get,
        &first,
        &deep,
        &batch,
        &raw_get_load,
        &get_load,
        &raw_batch_load,
        &search_load,
        &raw_start,
        &raw_stop,
        &start,
        &delete,
    ];
    let errors: usize = all.iter().map(|s| s.errors).sum();
    if errors > 0 || commit.is_none() || instantiate.is_none() {
        eprintln!("{errors} requests failed (or an offline measurement did not run)");
        std::process::exit(1);
    }
}
