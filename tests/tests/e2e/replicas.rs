//! Several `sandboxd serve` processes on one PostgreSQL database (a real
//! server the tests start): interchangeable answers, background work split
//! rather than repeated, a replica's death taken over, streams across
//! replicas, and the fleet as operators see it.
//!
//! The random moment of the kill comes from `REPLICAS_SEED` (printed; set it
//! to repeat a run).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use sandboxd_tests::client::Api;
use sandboxd_tests::fake_agent::FakeAgentServer;
use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions};
use sandboxd_tests::plugins::{self, Variant};
use sandboxd_tests::postgres;
use sandboxd_tests::receiver::Receiver;
use sandboxd_tests::sandboxd::{Options, Sandboxd};

/// The same on every replica (callback secrets are derived from it).
const HOST_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
/// Seconds between poll cycles: heartbeats every 0.4 s, leases of 1 s.
const INTERVAL: u64 = 2;

struct Fleet {
    agents: FakeAgentServer,
    rt: FakeRuntime,
    database: String,
}

impl Fleet {
    fn new() -> Fleet {
        let agents = FakeAgentServer::start();
        let rt = FakeRuntime::start_with(FakeRuntimeOptions {
            url_template: format!("{}/{{session_id}}", agents.url()),
            ..Default::default()
        });
        Fleet {
            agents,
            rt,
            database: postgres::server().database(),
        }
    }

    fn options(&self) -> Options {
        Options::for_runtime(&self.rt).config(&format!(
            "database_url = \"{}\"\nhost_key = \"{HOST_KEY}\"\n\
             [runtime]\npolling_interval = {INTERVAL}\nreconcile_interval = 2\nmax_num_sandboxes = 1000\n",
            self.database
        ))
    }

    fn replica(&self) -> Sandboxd {
        Sandboxd::start_with(self.options())
    }

    /// Start a sandbox through `api` and give it an agent server with one
    /// conversation; its id and session key.
    async fn sandbox(&self, api: &Api) -> (String, String) {
        let sb = api.start().await;
        let id = sb["id"].as_str().unwrap_or_default().to_owned();
        let key = sb["session_api_key"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.agents.add_agent(&id, &key);
        self.agents.add_conversation(&id, json!({}));
        (id, key)
    }
}

async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The live replicas as `/admin/replicas` lists them.
async fn replicas(api: &Api) -> Vec<Value> {
    api.get("/admin/replicas").await.ok()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Whether `n` live replicas hold all 64 buckets between them, none twice.
async fn balanced(api: &Api, n: usize) -> bool {
    let items = replicas(api).await;
    let mut held = HashSet::new();
    let mut total = 0;
    for r in &items {
        for b in r["buckets"].as_array().into_iter().flatten() {
            held.insert(b.as_u64().unwrap_or(u64::MAX));
            total += 1;
        }
    }
    items.len() == n && held.len() == 64 && total == 64
}

/// Conversation searches each agent server got.
fn searches(agents: &FakeAgentServer, ids: &[String]) -> Vec<usize> {
    ids.iter()
        .map(|id| agents.count(id, "/api/conversations/search"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_answer_alike_and_split_the_polling_instead_of_repeating_it() {
    let _turn = crate::serial::alone().await;
    let fleet = Fleet::new();
    let first = fleet.replica();
    let a = first.api();
    let mut ids = Vec::new();
    for _ in 0..24 {
        ids.push(fleet.sandbox(&a).await.0);
    }

    // One replica: how often each agent server is asked in a few cycles.
    wait_for("the first polls", Duration::from_secs(20), || async {
        searches(&fleet.agents, &ids).iter().all(|n| *n > 0)
    })
    .await;
    let window = Duration::from_secs(INTERVAL * 4);
    fleet.agents.clear_requests();
    tokio::time::sleep(window).await;
    let alone = searches(&fleet.agents, &ids);

    // Three replicas on the same database: the same questions, split.
    let second = fleet.replica();
    let third = fleet.replica();
    let (b, c) = (second.api(), third.api());
    wait_for(
        "three replicas sharing the 64 buckets",
        Duration::from_secs(20),
        || balanced(&a, 3),
    )
    .await;
    // Let the handovers settle (a bucket handed over waits out its interval).
    tokio::time::sleep(Duration::from_secs(INTERVAL)).await;
    fleet.agents.clear_requests();
    tokio::time::sleep(window).await;
    let shared = searches(&fleet.agents, &ids);
    let (alone_total, shared_total): (usize, usize) = (alone.iter().sum(), shared.iter().sum());
    println!("searches per agent server in {window:?}: one replica {alone:?}, three {shared:?}");
    assert!(
        shared.iter().all(|n| *n >= 1),
        "every agent server is still polled: {shared:?}"
    );
    let most_alone = alone.iter().max().copied().unwrap_or(0);
    assert!(
        shared.iter().all(|n| *n <= most_alone + 1),
        "no agent server is asked by several replicas per interval: one replica {alone:?}, three {shared:?}"
    );
    assert!(
        shared_total <= alone_total + ids.len() / 2,
        "three replicas ask about as often as one: {alone_total} then {shared_total}"
    );

    // Any replica answers alike, and a write through one is read through another.
    let (new, _) = fleet.sandbox(&b).await;
    for api in [&a, &b, &c] {
        let got = api.get(&format!("/api/v1/sandboxes/{new}")).await.ok();
        assert_eq!(got["id"], json!(new));
        assert_eq!(got["status"], "RUNNING");
    }
    let page = |api: &Api| {
        let api = api.clone();
        async move {
            let mut page = api.get("/api/v1/sandboxes/search?limit=100").await.ok();
            // Statuses and keys are the runtime's: identical; drop nothing.
            page["items"]
                .as_array_mut()
                .map(|items| items.len())
                .unwrap_or(0)
        }
    };
    assert_eq!(page(&a).await, 25);
    assert_eq!(page(&c).await, 25);
    assert_eq!(
        a.delete(&format!("/api/v1/sandboxes/{new}")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        c.get(&format!("/api/v1/sandboxes/{new}")).await.status,
        StatusCode::NOT_FOUND,
        "a delete through one replica is seen by the others at once"
    );

    // Operators see the fleet: three replicas, their versions and shares.
    let fleet_view = replicas(&c).await;
    assert_eq!(fleet_view.len(), 3, "{fleet_view:?}");
    for r in &fleet_view {
        assert_eq!(r["contract_version"], sandboxd_contract::VERSION);
        assert!(
            r["last_heartbeat"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
        assert_eq!(r["contract_differs"], false);
    }
    assert_eq!(fleet_view.iter().filter(|r| r["this"] == true).count(), 1);
}

/// A rolling upgrade caught half-way: one replica runs a plugin of a later
/// (compatible) contract version than the others. It still serves, and it is
/// named, both in `/admin/replicas` and in the others' logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_on_another_contract_version_is_named_in_the_list_and_the_log() {
    let _turn = crate::serial::shared().await;
    let (major_minor, _) = sandboxd_contract::VERSION
        .rsplit_once('.')
        .unwrap_or((sandboxd_contract::VERSION, ""));
    let other = format!("{major_minor}.9");
    let plugin = plugins::build(&Variant::Contract(other.clone()));
    let fleet = Fleet::new();
    let a = fleet.replica();
    let b = fleet.replica();
    let mut options = fleet.options();
    options.plugin = Some(plugin);
    let odd = Sandboxd::start_with(options);
    let api = a.api();
    wait_for("three replicas", Duration::from_secs(20), || async {
        replicas(&api).await.len() == 3
    })
    .await;

    let items = replicas(&api).await;
    let differing: Vec<&Value> = items
        .iter()
        .filter(|r| r["contract_differs"] == true)
        .collect();
    assert_eq!(differing.len(), 1, "{items:?}");
    assert_eq!(differing[0]["contract_version"], json!(other), "{items:?}");
    let odd_id = differing[0]["id"].as_str().unwrap_or_default().to_owned();
    let odd_view = replicas(&odd.api()).await;
    assert!(
        odd_view
            .iter()
            .any(|r| r["this"] == true && r["id"] == json!(odd_id)),
        "the odd replica is the one named: {odd_view:?}"
    );
    for r in items.iter().filter(|r| r["id"] != json!(odd_id)) {
        assert_eq!(
            r["contract_version"],
            sandboxd_contract::VERSION,
            "{items:?}"
        );
    }

    // Its log and the others' name it (at their next heartbeat).
    for replica in [&a, &b, &odd] {
        wait_for(
            "the warning in the log",
            Duration::from_secs(10),
            || async {
                let logs = replica.logs();
                logs.contains("another contract version") && logs.contains(&odd_id)
            },
        )
        .await;
    }
    // And it serves like the others.
    let started = odd.api().start().await;
    let id = started["id"].as_str().unwrap_or_default();
    assert_eq!(b.api().sandbox(id).await["status"], "RUNNING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stored_through_one_replica_reaches_a_stream_on_another() {
    let _turn = crate::serial::shared().await;
    let fleet = Fleet::new();
    let one = fleet.replica();
    let two = fleet.replica();
    let (a, b) = (one.api(), two.api());
    let (_, key) = fleet.sandbox(&a).await;
    let conversation = "0f000000-0000-4000-8000-00000000000a";
    let webhook = |api: &Api, id: &str, at: &str| {
        let url = format!("{}/api/v1/webhooks/events/{conversation}", api_base(api));
        let body = json!([{"kind": "MessageEvent", "id": id, "timestamp": at, "source": "agent"}]);
        let key = key.clone();
        async move {
            reqwest::Client::new()
                .post(url)
                .header("x-session-api-key", key)
                .json(&body)
                .send()
                .await
                .map(|r| r.status())
        }
    };
    // The conversation exists; a stream on replica B starts after its events.
    assert_eq!(
        webhook(&a, "before", "2026-12-03T10:00:00").await.ok(),
        Some(StatusCode::OK)
    );
    let mut stream = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/conversations/{conversation}/events/stream",
            two.url()
        ))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stream.status(), StatusCode::OK);
    // Through replica A.
    let sent = Instant::now();
    assert_eq!(
        webhook(&a, "across", "2026-12-03T10:00:01").await.ok(),
        Some(StatusCode::OK)
    );
    let mut seen = String::new();
    while !seen.contains("id: across") {
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no event on replica B within 5 s; got {seen:?}\nA's log:\n{}\nB's log:\n{}",
                    one.logs(),
                    two.logs()
                )
            })
            .unwrap_or_else(|e| panic!("{e}"));
        match chunk {
            Some(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
            None => panic!("the stream ended: {seen:?}"),
        }
    }
    let took = sent.elapsed();
    println!("an event stored through A reached a stream on B in {took:?}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(
        !seen.contains("id: before"),
        "the stream starts after what was stored"
    );
    drop(b);
}

/// The base URL an [`Api`] talks to (the harness does not expose it).
fn api_base(api: &Api) -> String {
    api.base().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_loses_nothing_and_its_share_is_taken_over() {
    let _turn = crate::serial::alone().await;
    let seed: u64 = std::env::var("REPLICAS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(7, |d| d.as_nanos() as u64)
        });
    println!("REPLICAS_SEED={seed}");
    let fleet = Fleet::new();
    let mut replicas_up = [fleet.replica(), fleet.replica(), fleet.replica()];
    let apis: Vec<Api> = replicas_up.iter().map(Sandboxd::api).collect();
    wait_for(
        "three replicas sharing the 64 buckets",
        Duration::from_secs(20),
        || balanced(&apis[0], 3),
    )
    .await;
    let receiver = Receiver::start();
    let hook = apis[0]
        .post_json("/api/v1/event-callbacks", &json!({"url": receiver.url()}))
        .await
        .ok();
    assert!(hook["secret"].is_string());

    // Mixed load through all three, while one of them is killed at a random
    // moment of it.
    let victim = usize::try_from(seed % 3).unwrap_or(0);
    let kill_after = Duration::from_millis(1_500 + seed % 2_500);
    let load_for = Duration::from_secs(8);
    let started = Instant::now();
    let mut killed = false;
    let mut acked: Vec<(String, String)> = Vec::new();
    let mut deleted: HashSet<String> = HashSet::new();
    let mut posted: HashMap<String, Vec<String>> = HashMap::new();
    let mut n = 0u64;
    while started.elapsed() < load_for {
        if !killed && started.elapsed() >= kill_after {
            replicas_up[victim].kill();
            killed = true;
            println!("killed replica {victim} after {:?}", started.elapsed());
        }
        n += 1;
        // Round-robin over the replicas; a dead one's requests fail and go to
        // the next, as a load balancer's health check would send them.
        let order: Vec<usize> = (0..3).map(|i| (n as usize + i) % 3).collect();
        let mut done = false;
        for i in order {
            if killed && i == victim {
                continue;
            }
            let api = &apis[i];
            let outcome = match n % 5 {
                // Start a sandbox (its agent server ready to be polled).
                0 | 1 => {
                    let reply = api
                        .try_request(reqwest::Method::POST, "/api/v1/sandboxes")
                        .await;
                    match reply {
                        Ok(r) if r.status == StatusCode::OK => {
                            let id = r.body["id"].as_str().unwrap_or_default().to_owned();
                            let key = r.body["session_api_key"]
                                .as_str()
                                .unwrap_or_default()
                                .to_owned();
                            fleet.agents.add_agent(&id, &key);
                            acked.push((id, key));
                            true
                        }
                        _ => false,
                    }
                }
                // Events from a sandbox's agent server, by webhook.
                2 | 3 if !acked.is_empty() => {
                    let (id, key) = &acked[(n as usize) % acked.len()];
                    if deleted.contains(id) {
                        true
                    } else {
                        let conversation = conversation_of(id);
                        let event_id = format!("{id}-{n}");
                        let url = format!("{}/api/v1/webhooks/events/{conversation}", api.base());
                        let body = json!([{"kind": "MessageEvent", "id": event_id, "timestamp": "2026-12-03T10:00:00", "source": "agent"}]);
                        let sent = reqwest::Client::new()
                            .post(url)
                            .header("x-session-api-key", key)
                            .json(&body)
                            .timeout(Duration::from_secs(10))
                            .send()
                            .await;
                        if sent.is_ok_and(|r| r.status() == StatusCode::OK) {
                            posted.entry(conversation).or_default().push(event_id);
                            true
                        } else {
                            false
                        }
                    }
                }
                // Delete a sandbox now and then.
                4 if acked.len() > deleted.len() + 3 => {
                    let (id, _) = &acked[(seed as usize + n as usize) % acked.len()];
                    if deleted.contains(id) {
                        true
                    } else {
                        let reply = api
                            .try_request(
                                reqwest::Method::DELETE,
                                &format!("/api/v1/sandboxes/{id}"),
                            )
                            .await;
                        let ok = reply.is_ok_and(|r| r.status == StatusCode::OK);
                        if ok {
                            deleted.insert(id.clone());
                        }
                        ok
                    }
                }
                _ => api
                    .try_request(reqwest::Method::GET, "/api/v1/sandboxes/search")
                    .await
                    .is_ok(),
            };
            if outcome {
                done = true;
                break;
            }
        }
        assert!(done, "no live replica served request {n}");
    }
    assert!(killed, "the kill happened during the load");
    let live: Vec<&Api> = (0..3).filter(|i| *i != victim).map(|i| &apis[i]).collect();

    // The dead replica's share is taken over within two polling intervals.
    let takeover = Instant::now();
    wait_for(
        "the two live replicas to hold every bucket",
        Duration::from_secs(INTERVAL * 2 + 2),
        || balanced(live[0], 2),
    )
    .await;
    println!("share taken over {:?} after the load", takeover.elapsed());

    // No acknowledged start lost.
    for (id, _) in &acked {
        let status = live[0].get(&format!("/api/v1/sandboxes/{id}")).await.status;
        let want = if deleted.contains(id) {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(status, want, "sandbox {id}");
    }
    // No runtime without a record, once reconciliation has run on both.
    for api in &live {
        api.post("/admin/reconcile").await.ok();
    }
    let records: HashSet<String> = acked
        .iter()
        .filter(|(id, _)| !deleted.contains(id))
        .map(|(id, _)| id.clone())
        .collect();
    for runtime in fleet.rt.runtimes() {
        let session = runtime["session_id"].as_str().unwrap_or_default();
        assert!(
            records.contains(session),
            "a runtime without a record: {session}"
        );
    }
    // Every event stored once.
    for (conversation, ids) in &posted {
        let page = live[1]
            .get(&format!(
                "/api/v1/conversations/{conversation}/events/search?limit=100"
            ))
            .await
            .ok();
        let mut stored: Vec<String> = page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["id"].as_str().map(str::to_owned))
            .collect();
        stored.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(stored, want, "the events of {conversation}");
    }
    // Every running sandbox still polled, by the two that are left.
    let running: Vec<String> = records.iter().cloned().collect();
    fleet.agents.clear_requests();
    wait_for(
        "every running sandbox polled again",
        Duration::from_secs(INTERVAL * 3 + 2),
        || async { searches(&fleet.agents, &running).iter().all(|n| *n > 0) },
    )
    .await;
    // Callbacks delivered: every event, and twice only if it was in the dead
    // replica's hands when it died.
    let total: usize = posted.values().map(Vec::len).sum();
    let received = receiver.wait_for(total, Duration::from_secs(30));
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for r in &received {
        *per_event
            .entry(r.json()["id"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    for ids in posted.values() {
        for id in ids {
            assert!(
                per_event.contains_key(id),
                "event {id} never reached the callback"
            );
        }
    }
    let twice = per_event.values().filter(|n| **n > 1).count();
    println!(
        "{} starts, {} deletes, {total} events; {twice} delivered twice",
        acked.len(),
        deleted.len()
    );
    assert!(
        twice <= 256,
        "more events delivered twice than one replica had in flight"
    );
}

/// The one conversation the load posts for a sandbox.
fn conversation_of(sandbox: &str) -> String {
    let digest = <sha2::Sha256 as sha2::Digest>::digest(sandbox.as_bytes());
    hex_uuid(&digest[..16])
}

fn hex_uuid(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
