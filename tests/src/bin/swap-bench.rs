//! The live-swap benchmark: swap the plugin of a loaded sandboxd 20 times and
//! count what failed.
//!
//! ```text
//! cargo build --release -p sandboxd && cargo run --release -p sandboxd-tests --bin swap-bench
//! ```
//!
//! Two builds of the plugin that differ only in their version stamp
//! (`0.1.0-bench.a`, `0.1.0-bench.b`, release profile) take turns in the
//! watched plugin file, written the way `cp` writes. A steady load of mixed API
//! calls (get, search, batch get, a missing id, specs) runs throughout. Ten
//! swaps find the compiled component in the cache; for ten more the cache is
//! emptied first, so each compiles afresh. For each swap: the time from the
//! start of the write to the new version serving (polled every 2 ms). For the
//! calls in flight at a swap (the host's `loaded_at` inside their interval):
//! their latency, next to the latency of all calls in the same run.

use std::time::{Duration, Instant, SystemTime};

use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions};
use sandboxd_tests::plugins::{self, Variant};
use sandboxd_tests::sandboxd::{Options, Sandboxd};
use sandboxd_tests::swap::{
    Sample, SteadyLoad, parse_time, plugin_status, wait_for_version, write_like_cp,
};

const SWAPS_PER_PHASE: usize = 10;
const CLIENTS: usize = 8;
const SANDBOXES: usize = 20;
/// Load between swaps, so every swap happens under a steady load.
const BETWEEN: Duration = Duration::from_millis(300);

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut d: Vec<Duration>) -> (Duration, Duration, Duration) {
    d.sort();
    (
        percentile(&d, 0.5),
        percentile(&d, 0.99),
        d.last().copied().unwrap_or_default(),
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    eprintln!("building the two plugin versions (release profile)…");
    let versions = ["0.1.0-bench.a", "0.1.0-bench.b"];
    let wasm: Vec<Vec<u8>> = versions
        .iter()
        .map(|v| {
            let path = plugins::build(&Variant::Stamped((*v).to_owned()));
            std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();

    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        record_requests: false,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plugin = dir.path().join("plugin.wasm");
    std::fs::write(&plugin, &wasm[0]).unwrap_or_else(|e| panic!("{e}"));
    let mut options = Options::for_runtime(&rt)
        .config("web_url = \"https://app.example\"\n[sync]\nmode = \"webhook\"\n[runtime]\nmax_num_sandboxes = 1000\n")
        .env("SANDBOXD_LOG", "warn");
    options.plugin = Some(plugin.clone());
    let sd = Sandboxd::start_with(options);
    let admin = sd.api();
    let cache_dir = sd.data_dir().join("plugin-cache");

    let mut ids = Vec::new();
    for _ in 0..SANDBOXES {
        ids.push(
            admin.start().await["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let load = SteadyLoad::start(&sd.api(), &ids, CLIENTS);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Warm-up: the second version's first compile, so both are cached.
    let mut current = 0;
    let swap_to = |next: usize| {
        write_like_cp(&plugin, &wasm[next]);
        next
    };
    current = swap_to(1 - current);
    wait_for_version(&admin, versions[current], Duration::from_secs(60))
        .await
        .unwrap_or_else(|| panic!("the warm-up swap never served:\n{}", sd.logs()));
    tokio::time::sleep(BETWEEN).await;

    let mut swap_at: Vec<SystemTime> = Vec::new();
    let mut cached_times = Vec::new();
    let mut fresh_times = Vec::new();
    for phase in ["cached", "fresh"] {
        for _ in 0..SWAPS_PER_PHASE {
            if phase == "fresh" {
                for entry in std::fs::read_dir(&cache_dir)
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            let started = Instant::now();
            current = swap_to(1 - current);
            let Some(_) =
                wait_for_version(&admin, versions[current], Duration::from_secs(60)).await
            else {
                panic!("a swap never served:\n{}", sd.logs());
            };
            let took = started.elapsed();
            let status = plugin_status(&admin).await;
            let from_cache = status["plugin"]["from_cache"] == true;
            assert_eq!(from_cache, phase == "cached", "{status}");
            if let Some(t) = status["plugin"]["loaded_at"].as_str().and_then(parse_time) {
                swap_at.push(t);
            }
            if phase == "cached" {
                cached_times.push(took);
            } else {
                fresh_times.push(took);
            }
            tokio::time::sleep(BETWEEN).await;
        }
    }
    let samples: Vec<Sample> = load.finish().await;
    let status = plugin_status(&admin).await;

    let failed = samples.iter().filter(|s| !s.ok).count();
    let straddling: Vec<Duration> = samples
        .iter()
        .filter(|s| swap_at.iter().any(|t| s.straddles(*t)))
        .map(|s| s.elapsed)
        .collect();
    let all: Vec<Duration> = samples.iter().map(|s| s.elapsed).collect();
    let (s50, s99, smax) = summary(straddling.clone());
    let (a50, a99, amax) = summary(all);
    let (c50, _, cmax) = summary(cached_times);
    let (f50, _, fmax) = summary(fresh_times);

    println!("## Live plugin swap under load\n");
    println!(
        "{} swaps ({SWAPS_PER_PHASE} from the compile cache, {SWAPS_PER_PHASE} compiling afresh, plus one warm-up) \
         between two {:.0} KiB plugin builds, {CLIENTS} clients of mixed API calls throughout, {} requests in all.\n",
        2 * SWAPS_PER_PHASE,
        wasm[0].len() as f64 / 1024.0,
        samples.len()
    );
    println!("| measure | result | target |");
    println!("|---|---|---|");
    println!("| failed requests | {failed} of {} | 0 |", samples.len());
    println!(
        "| file write → new version serving, from the cache | p50 {:.0} ms, max {:.0} ms | < 100 ms |",
        ms(c50),
        ms(cmax)
    );
    println!(
        "| file write → new version serving, fresh compile | p50 {:.0} ms, max {:.0} ms | < 1 s |",
        ms(f50),
        ms(fmax)
    );
    println!(
        "| latency of the {} calls in flight at a swap | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms | |",
        straddling.len(),
        ms(s50),
        ms(s99),
        ms(smax)
    );
    println!(
        "| latency of all calls (baseline, same run) | p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms | |",
        ms(a50),
        ms(a99),
        ms(amax)
    );
    println!(
        "| in-flight p99 ÷ all p99 | {:.2} | |",
        ms(s99) / ms(a99).max(1e-9)
    );
    println!("\nswaps recorded by sandboxd: {}", status["swaps"]);
    if failed > 0 {
        for s in samples.iter().filter(|s| !s.ok).take(10) {
            eprintln!("failed: {s:?}");
        }
        std::process::exit(1);
    }
}
