//! A faulty plugin cannot take sandboxd down or reach what it should not.
//!
//! The plugin here is the `faults` build (see `plugin/src/glue/faults.rs`):
//! getting the sandbox `fault-loop` computes forever, `fault-alloc` allocates
//! without bound, `fault-trap` traps, `fault-flood` sends requests without end,
//! `fault-egress-PORT` posts to a port on loopback, `fault-background` makes
//! every later poll cycle and delivery run trap. Each fault fails its own call
//! with a clear error while other calls go on; a good plugin swapped in
//! afterwards serves normally.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sandboxd_tests::client::Api;
use sandboxd_tests::fake_agent::FakeAgentServer;
use sandboxd_tests::fake_runtime::{FakeRuntime, FakeRuntimeOptions};
use sandboxd_tests::plugins::{self, Variant};
use sandboxd_tests::receiver::Receiver;
use sandboxd_tests::sandboxd::{Options, Sandboxd};

fn faults_plugin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| plugins::build(&Variant::Faults))
        .clone()
}

fn normal_plugin() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| plugins::build(&Variant::Normal))
        .clone()
}

/// sandboxd running a copy of the faults plugin (so it can be swapped).
struct Faulty {
    sd: Sandboxd,
    plugin: PathBuf,
    _dir: tempfile::TempDir,
}

fn start(rt: &FakeRuntime, config: &str) -> Faulty {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let plugin = dir.path().join("plugin.wasm");
    std::fs::copy(faults_plugin(), &plugin).unwrap_or_else(|e| panic!("{e}"));
    let mut options = Options::for_runtime(rt).config(config);
    options.plugin = Some(plugin.clone());
    Faulty {
        sd: Sandboxd::start_with(options),
        plugin,
        _dir: dir,
    }
}

impl Faulty {
    /// Swap the normal plugin in and check it serves what the faulty one could not.
    async fn swap_in_a_good_plugin(&self) {
        std::fs::copy(normal_plugin(), &self.plugin).unwrap_or_else(|e| panic!("{e}"));
        let api = self.sd.api();
        let reply = api.post("/admin/plugin/reload").await.ok();
        assert_eq!(reply["plugin"]["plugin_version"], "0.1.0", "{reply}");
        for id in ["fault-loop", "fault-alloc", "fault-trap", "fault-flood"] {
            let reply = api.get(&format!("/api/v1/sandboxes/{id}")).await;
            assert_eq!(reply.status, 404, "{id}: {:?}", reply.body);
        }
        let started = api.start().await;
        let id = started["id"].as_str().unwrap_or_default();
        assert_eq!(api.sandbox(id).await["status"], "RUNNING");
    }
}

/// The error id in a `detail`, which must also be in the log.
fn error_id(detail: &str) -> String {
    let (_, rest) = detail
        .split_once("error id ")
        .unwrap_or_else(|| panic!("no error id in {detail:?}"));
    rest.trim_end_matches(')').to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_that_computes_forever_is_stopped_at_its_deadline_while_others_are_served() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let f = start(&rt, "[plugin]\ncall_timeout = 1.0\n");
    let api = f.sd.api();
    let id = api.start().await["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let looping = {
        let api = api.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            (api.get("/api/v1/sandboxes/fault-loop").await, t.elapsed())
        })
    };
    // While one call spins, others are answered.
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..10 {
        assert_eq!(api.sandbox(&id).await["status"], "RUNNING");
    }
    let (reply, took) = looping.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    assert!(
        reply.detail().contains("did not answer within 1s"),
        "{}",
        reply.detail()
    );
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    assert!(f.sd.logs().contains("plugin call stopped at its deadline"));
    f.swap_in_a_good_plugin().await;
}

#[tokio::test]
async fn unbounded_allocation_fails_the_call_at_the_memory_limit() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let f = start(&rt, "[plugin]\nmemory_limit_mb = 32\n");
    let api = f.sd.api();
    let reply = api.get("/api/v1/sandboxes/fault-alloc").await;
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    assert!(
        reply.detail().contains("memory limit of 32 MiB"),
        "{}",
        reply.detail()
    );
    let id = error_id(reply.detail());
    assert!(
        f.sd.logs().contains(&id),
        "the error id {id} is not in the log"
    );
    // The slot's memory is reset; the next calls are fine.
    for _ in 0..5 {
        assert_eq!(api.get("/api/v1/sandboxes/search").await.status, 200);
    }
    f.swap_in_a_good_plugin().await;
}

#[tokio::test]
async fn a_trap_fails_only_its_call_with_an_error_id_in_the_log() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let f = start(&rt, "");
    let api = f.sd.api();
    for _ in 0..20 {
        let reply = api.get("/api/v1/sandboxes/fault-trap").await;
        assert_eq!(reply.status, 500, "{:?}", reply.body);
        assert!(
            reply.detail().starts_with("the plugin failed (error id "),
            "{}",
            reply.detail()
        );
        let id = error_id(reply.detail());
        let logs = f.sd.logs();
        let line = logs
            .lines()
            .find(|l| l.contains(&id))
            .unwrap_or_else(|| panic!("no log line with {id}"));
        assert!(line.contains("plugin call trapped"), "{line}");
    }
    assert_eq!(api.get("/healthz").await.status, 200);
    assert_eq!(api.get("/api/v1/sandboxes/search").await.status, 200);
    f.swap_in_a_good_plugin().await;
}

#[tokio::test]
async fn a_request_flood_is_stopped_at_the_budget() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    // No poll cycles: every /list the runtime sees comes from the flood.
    let f = start(
        &rt,
        "web_url = \"https://app.example\"\n[sync]\nmode = \"webhook\"\n[plugin]\ncall_http_requests = 50\n",
    );
    let api = f.sd.api();
    // The start-up reconciliation pass sends its own /list, concurrently with the
    // first requests: wait for it to finish, so that it is counted before the flood
    // and not in it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f.sd.logs().contains("reconciliation") {
        assert!(
            Instant::now() < deadline,
            "no start-up reconciliation in the log:\n{}",
            f.sd.logs()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = rt.count("GET", "/list");
    let reply = api.get("/api/v1/sandboxes/fault-flood").await;
    assert_eq!(reply.status, 503, "{:?}", reply.body);
    assert!(
        reply.detail().contains("limit of 50 HTTP requests"),
        "{}",
        reply.detail()
    );
    let sent = rt.count("GET", "/list") - before;
    assert_eq!(sent, 50, "the runtime saw {sent} requests");
    f.swap_in_a_good_plugin().await;
}

#[tokio::test]
async fn a_destination_outside_the_allow_list_is_denied_and_never_contacted() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let outside = Receiver::start();
    let port = outside
        .url()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .unwrap_or_else(|| panic!("receiver port in {}", outside.url()));
    let f = start(&rt, "");
    let reply =
        f.sd.api()
            .get(&format!("/api/v1/sandboxes/fault-egress-{port}"))
            .await;
    assert_eq!(reply.status, 502, "{:?}", reply.body);
    assert!(
        reply.detail().contains("the host answered denied:")
            && reply
                .detail()
                .contains(&format!("127.0.0.1:{port} is not an allowed destination")),
        "{}",
        reply.detail()
    );
    assert!(outside.received().is_empty(), "the request left the host");

    // An operator can widen the policy to exactly that destination.
    let widened = start(
        &rt,
        &format!("[plugin]\nallowed_hosts = [\"@runtime\", \"127.0.0.1:{port}\"]\n"),
    );
    let reply = widened
        .sd
        .api()
        .get(&format!("/api/v1/sandboxes/fault-egress-{port}"))
        .await;
    assert!(
        reply.detail().contains("the host answered status 200"),
        "{}",
        reply.detail()
    );
    assert_eq!(outside.received().len(), 1);
    // The runtime API key stays in the host: the plugin could not attach it.
    assert!(outside.received()[0].header("x-api-key").is_none());
    f.swap_in_a_good_plugin().await;
}

#[tokio::test]
async fn narrowing_the_allow_list_cuts_off_agent_servers() {
    let _turn = crate::serial::shared().await;
    let agents = FakeAgentServer::start();
    let rt = FakeRuntime::start_with(FakeRuntimeOptions {
        url_template: format!("{}/{{session_id}}", agents.url()),
        ..Default::default()
    });
    let f = start(&rt, "[plugin]\nallowed_hosts = [\"@runtime\"]\n");
    let api = f.sd.api();
    let started = api.start().await;
    let id = started["id"].as_str().unwrap_or_default();
    let key = started["session_api_key"].as_str().unwrap_or_default();
    agents.add_agent(id, key);
    let cycle = api.post("/admin/sync/poll").await.ok();
    let failures = cycle["failures"].to_string();
    assert!(
        failures.contains(id) && failures.contains("not an allowed destination"),
        "{cycle}"
    );
    assert_eq!(agents.total_requests(), 0, "the agent server was contacted");
}

/// Lines of the log containing `needle`.
fn count(sd: &Sandboxd, needle: &str) -> usize {
    sd.logs().lines().filter(|l| l.contains(needle)).count()
}

#[tokio::test]
async fn a_plugin_that_keeps_trapping_in_the_background_does_not_make_the_host_spin() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let receiver = Receiver::start();
    let f = start(&rt, "[runtime]\npolling_interval = 1\n");
    let api: Api = f.sd.api();
    // A callback, so the delivery worker has work to ask for.
    let created = reqwest::Client::new()
        .post(format!("{}/api/v1/event-callbacks", f.sd.url()))
        .json(&serde_json::json!({"url": receiver.url()}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.status(), 200);
    assert_eq!(
        api.get("/api/v1/sandboxes/fault-background").await.status,
        404
    );

    let cpu_before = f.sd.cpu_time().unwrap_or_default();
    let window = Duration::from_secs(4);
    let (polls_before, deliveries_before) = (
        count(&f.sd, "poll cycle failed"),
        count(&f.sd, "callback deliveries failed"),
    );
    tokio::time::sleep(window).await;
    let polls = count(&f.sd, "poll cycle failed") - polls_before;
    let deliveries = count(&f.sd, "callback deliveries failed") - deliveries_before;
    let cpu =
        f.sd.cpu_time()
            .unwrap_or_default()
            .saturating_sub(cpu_before);
    // One attempt per polling interval, deliveries backing off: a handful of
    // traps, not a loop.
    assert!(
        (2..=6).contains(&polls),
        "{polls} failed poll cycles in {window:?}"
    );
    assert!(
        deliveries <= 4,
        "{deliveries} failed delivery runs in {window:?}"
    );
    assert!(
        cpu < Duration::from_secs(2),
        "sandboxd used {cpu:?} of CPU in {window:?}"
    );
    // The API is unaffected.
    assert_eq!(api.get("/api/v1/sandboxes/search").await.status, 200);

    // Turned off, the background work recovers.
    assert_eq!(api.get("/api/v1/sandboxes/fault-calm").await.status, 404);
    let cycle = api.post("/admin/sync/poll").await;
    assert_eq!(cycle.status, 200, "{:?}", cycle.body);
    f.swap_in_a_good_plugin().await;
}

/// The isolation promise: one fresh instance per call, so nothing a call
/// leaves in the plugin's memory (its globals) reaches the next call, whoever
/// makes it. `fault-remember` answers with what the instance's memory holds
/// from earlier calls; a host that reused instances would show a count above
/// one, or the previous caller's name.
#[tokio::test]
async fn nothing_of_one_call_is_visible_to_the_next() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let (alice, bob) = ("alice-key-0123456789abcdef", "bob-key-0123456789abcdef");
    let f = start(
        &rt,
        &format!(
            "[auth]\nmode = \"api-keys\"\n\
             [[auth.keys]]\nkey = \"{alice}\"\nuser_id = \"alice\"\n\
             [[auth.keys]]\nkey = \"{bob}\"\nuser_id = \"bob\"\n"
        ),
    );
    let callers = [
        ("alice", f.sd.api().with_key(alice)),
        ("bob", f.sd.api().with_key(bob)),
    ];
    for round in 0..20 {
        let (name, api) = &callers[round % 2];
        let reply = api.get("/api/v1/sandboxes/fault-remember").await;
        assert_eq!(reply.status, 400, "{:?}", reply.body);
        assert_eq!(
            reply.detail(),
            format!("fault-remember: call 1 on this instance, for {name}; earlier caller: none"),
            "round {round}"
        );
    }
}
