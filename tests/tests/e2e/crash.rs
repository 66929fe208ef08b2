//! Crash consistency: SIGKILL sandboxd in the middle of many concurrent starts
//! and deletes, restart it on the same data directory, reconcile, and check
//! that nothing answered was lost and no runtime runs without a record.
//!
//! The moments of the kills are random; the seed is printed (and can be set
//! with `CRASH_SEED`) so a failing run can be replayed.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use sandboxd_tests::client::Api;
use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions};
use sandboxd_tests::sandboxd::{Options, Sandboxd};

const ROUNDS: usize = 4;
const OPERATIONS: usize = 200;

/// A small deterministic generator (the moments need not be cryptographic).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What the clients were told before the kill.
#[derive(Default)]
struct Answered {
    /// Started (200) and not deleted since.
    started: HashSet<String>,
    /// Deleted (200).
    deleted: HashSet<String>,
}

fn options(rt: &FakeRuntime, data: &std::path::Path) -> Options {
    // No poll cycles and no scheduled passes: the test runs reconciliation itself.
    let mut options = Options::for_runtime(rt).config(
        "web_url = \"https://app.example\"\n\
         [runtime]\nmax_num_sandboxes = 1000000\nreconcile_interval = 3600\n\
         [sync]\nmode = \"webhook\"\n",
    );
    options.data_dir = Some(data.to_path_buf());
    options
}

/// Every sandbox id the admin sees.
async fn all_ids(api: &Api) -> HashSet<String> {
    let (items, _) = api.search_all(100).await;
    items
        .iter()
        .filter_map(|v| v["id"].as_str().map(str::to_owned))
        .collect()
}

/// After a restart: reconcile, then check every promise.
async fn verify(sd: &Sandboxd, rt: &FakeRuntime, answered: &Answered, round: usize) {
    let api = sd.api();
    let pass = api.post("/admin/reconcile").await.ok();
    assert_eq!(
        pass["failures"],
        serde_json::json!([]),
        "round {round}: {pass}"
    );
    let startup = sd
        .logs()
        .lines()
        .find(|l| l.contains("reconciliation"))
        .map(str::to_owned)
        .unwrap_or_default();
    eprintln!("after round {round}: start-up pass: {startup}");
    for id in &answered.started {
        let reply = api.get(&format!("/api/v1/sandboxes/{id}")).await;
        assert_eq!(
            reply.status, 200,
            "round {round}: answered start {id} lost: {:?}",
            reply.body
        );
    }
    for id in &answered.deleted {
        let reply = api.get(&format!("/api/v1/sandboxes/{id}")).await;
        assert_eq!(
            reply.status, 404,
            "round {round}: answered delete {id} came back"
        );
    }
    let recorded = all_ids(&api).await;
    let running: Vec<String> = rt
        .runtimes()
        .iter()
        .filter(|r| r["status"] != "stopped")
        .filter_map(|r| r["session_id"].as_str().map(str::to_owned))
        .collect();
    for id in &running {
        assert!(
            recorded.contains(id),
            "round {round}: runtime of {id} runs without a record (reconciliation: {pass})"
        );
    }
    // A second pass finds nothing left to repair.
    let again = api.post("/admin/reconcile").await.ok();
    for key in ["orphans", "completed", "removed"] {
        assert_eq!(again[key], 0, "round {round}: {again}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_starts_and_deletes_loses_nothing() {
    // 200 concurrent operations and four kills: alone, so the kill moments fall
    // where the seed puts them and the other tests' timeouts are not starved.
    let _turn = crate::serial::alone().await;
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        });
    eprintln!("CRASH_SEED={seed}");
    let mut rng = Lcg(seed);
    // A little latency widens the window between a record and its runtime.
    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        record_requests: false,
        ..Default::default()
    });
    rt.set_latency(Duration::from_millis(5));
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut answered = Answered::default();
    // Starts answered 200 in all rounds; `answered.started` keeps only those not
    // deleted since, and a later round's deletes may take every one of them.
    let mut starts_answered = 0;

    for round in 0..ROUNDS {
        let mut sd = Sandboxd::start_with(options(&rt, data.path()));
        verify(&sd, &rt, &answered, round).await;

        let deletable: Vec<String> = answered.started.iter().cloned().collect();
        let replies = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..OPERATIONS {
            let api = sd.api();
            let replies = replies.clone();
            let delete = !deletable.is_empty() && rng.below(3) == 0;
            let id = if delete {
                deletable[rng.below(deletable.len() as u64) as usize].clone()
            } else {
                format!("r{round}-{i}")
            };
            tasks.push(tokio::spawn(async move {
                let (method, path) = if delete {
                    (reqwest::Method::DELETE, format!("/api/v1/sandboxes/{id}"))
                } else {
                    (
                        reqwest::Method::POST,
                        format!("/api/v1/sandboxes?sandbox_id={id}"),
                    )
                };
                let status = api
                    .try_request(method, &path)
                    .await
                    .ok()
                    .map(|r| (r.status.as_u16(), r.body));
                if status.is_some() {
                    replies.fetch_add(1, Ordering::Relaxed);
                }
                (delete, id, status)
            }));
        }
        // The kill comes at a random moment once sandboxd is answering, so each
        // round cuts through work in progress.
        for _ in 0..500 {
            if replies.load(Ordering::Relaxed) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
        sd.kill();

        let mut started = 0;
        let mut deleted = 0;
        for task in tasks {
            let Ok((delete, id, status)) = task.await else {
                continue;
            };
            match (delete, status) {
                (false, Some((200, body))) => {
                    assert_eq!(body["id"], Value::from(id.as_str()));
                    answered.started.insert(id);
                    started += 1;
                }
                (true, Some((200, _))) => {
                    answered.started.remove(&id);
                    answered.deleted.insert(id);
                    deleted += 1;
                }
                // A delete cut off by the kill may or may not have happened: no
                // promise either way.
                (true, _) => {
                    answered.started.remove(&id);
                }
                _ => {}
            }
        }
        eprintln!("round {round}: {started} starts and {deleted} deletes answered before the kill");
        starts_answered += started;
    }
    let sd = Sandboxd::start_with(options(&rt, data.path()));
    verify(&sd, &rt, &answered, ROUNDS).await;
    assert!(
        starts_answered > 0,
        "no start was ever answered: the kills came too early to test anything"
    );
}

#[tokio::test]
async fn a_runtime_without_a_record_is_stopped_or_adopted_by_policy() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    rt.insert_runtime("stray", "running");
    let sd = Sandboxd::start_with(Options::for_runtime(&rt));
    // The start-up pass, or this one, stops it.
    let pass = sd.api().post("/admin/reconcile").await.ok();
    assert_eq!(pass["failures"], serde_json::json!([]), "{pass}");
    let running = rt
        .runtimes()
        .iter()
        .filter(|r| r["session_id"] == "stray" && r["status"] != "stopped")
        .count();
    assert_eq!(running, 0, "the orphan still runs");
    assert!(
        sd.logs()
            .contains("stopped a runtime that had no sandbox record")
    );

    let rt = FakeRuntime::start();
    rt.insert_runtime("stray", "running");
    let sd = Sandboxd::start_with(Options::for_runtime(&rt).env("SANDBOXD_ORPHANS", "adopt"));
    sd.api().post("/admin/reconcile").await.ok();
    let adopted = sd.api().get("/api/v1/sandboxes/stray").await.ok();
    assert_eq!(adopted["status"], "RUNNING");
    assert_eq!(adopted["created_by_user_id"], Value::Null);
    assert_eq!(adopted["sandbox_spec_id"], "adopted");
}
