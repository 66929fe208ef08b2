//! Swapping the plugin of a running sandboxd: by writing its file, by SIGHUP,
//! by the admin route; refusing bad components while the old one serves; the
//! compile cache; `sandboxd plugin check`.
//!
//! The plugins are real components built by `sandboxd_tests::plugins`: the
//! normal one (version `0.1.0`) and the `faults` build (`0.1.0+faults`, which
//! serves normally for ordinary ids), so a swap is visible in the version.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use sandboxd_tests::fake_runtime::FakeRuntime;
use sandboxd_tests::plugins::{self, Variant};
use sandboxd_tests::sandboxd::{self, Options, Sandboxd};
use sandboxd_tests::swap::{
    SteadyLoad, plugin_status, wait_for_version, write_like_cp, write_like_editor,
};

const NORMAL: &str = "0.1.0";
const FAULTS: &str = "0.1.0+faults";
/// Generous: a swap takes milliseconds; this only bounds a broken build.
const SWAP_TIMEOUT: Duration = Duration::from_secs(30);

/// The bytes of `variant`, built once per test binary.
fn built(variant: Variant) -> Vec<u8> {
    static BUILT: Mutex<Vec<(Variant, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let path = match built.iter().find(|(v, _)| *v == variant) {
        Some((_, path)) => path.clone(),
        None => {
            let path = plugins::build(&variant);
            built.push((variant, path.clone()));
            path
        }
    };
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// This host's contract version (`major.minor.patch`).
const HOST: &str = sandboxd_contract::VERSION;

/// `HOST` with its minor version bumped: breaking below 1.0, so refused.
fn breaking_version() -> String {
    let mut parts = HOST
        .split('.')
        .map(|p| p.parse::<u64>().unwrap_or_else(|e| panic!("{HOST}: {e}")));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    format!("{major}.{}.0", minor + 1)
}

/// `HOST` with a later patch version: compatible, so served.
fn compatible_version() -> String {
    let (major_minor, _) = HOST.rsplit_once('.').unwrap_or((HOST, ""));
    format!("{major_minor}.9")
}

fn incompatible() -> Vec<u8> {
    built(Variant::Contract(breaking_version()))
}

/// A plugin file in its own directory, holding `wasm`.
fn plugin_file(wasm: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("plugin.wasm");
    std::fs::write(&path, wasm).unwrap_or_else(|e| panic!("{e}"));
    (dir, path)
}

/// Wait until `version` serves; fail with sandboxd's log if it never does.
async fn serves(sd: &Sandboxd, version: &str) {
    if wait_for_version(&sd.api(), version, SWAP_TIMEOUT)
        .await
        .is_none()
    {
        panic!("{version} never served:\n{}", sd.logs());
    }
}

fn with_plugin(rt: &FakeRuntime, path: &Path) -> Options {
    let mut options = Options::for_runtime(rt);
    options.plugin = Some(path.to_path_buf());
    options
}

async fn start_sandboxes(sd: &Sandboxd, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let started = sd.api().start().await;
        ids.push(started["id"].as_str().unwrap_or_default().to_owned());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_the_plugin_file_swaps_it_live_with_no_failed_request() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let (_dir, path) = plugin_file(&built(Variant::Normal));
    let sd = Sandboxd::start_with(with_plugin(&rt, &path));
    let admin = sd.api();
    let ids = start_sandboxes(&sd, 4).await;
    let status = plugin_status(&admin).await;
    assert_eq!(status["plugin"]["plugin_version"], NORMAL);
    assert_eq!(status["watching"], true);
    assert_eq!(status["swaps"], 0);

    let load = SteadyLoad::start(&sd.api(), &ids, 8);
    tokio::time::sleep(Duration::from_millis(200)).await;
    write_like_cp(&path, &built(Variant::Faults));
    serves(&sd, FAULTS).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    write_like_editor(&path, &built(Variant::Normal));
    serves(&sd, NORMAL).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let samples = load.finish().await;

    let failed: Vec<_> = samples.iter().filter(|s| !s.ok).collect();
    assert!(samples.len() > 50, "the load hardly ran: {}", samples.len());
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        samples.len(),
        &failed[..failed.len().min(5)]
    );

    let status = plugin_status(&admin).await;
    assert_eq!(status["swaps"], 2, "{status}");
    assert_eq!(
        status["plugin"]["from_cache"], true,
        "swapping back to a known version must not recompile: {status}"
    );
    assert!(status["last_refused"].is_null(), "{status}");
    let logs = sd.logs();
    assert!(
        logs.contains(&format!("plugin {NORMAL} -> {FAULTS}")),
        "{logs}"
    );
    assert!(
        logs.contains(&format!("plugin {FAULTS} -> {NORMAL}")),
        "{logs}"
    );
}

#[tokio::test]
async fn sighup_and_the_admin_route_reload_the_file() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let (_dir, path) = plugin_file(&built(Variant::Normal));
    let sd = Sandboxd::start_with(with_plugin(&rt, &path).config("[plugin]\nwatch = false\n"));
    let admin = sd.api();
    assert_eq!(plugin_status(&admin).await["watching"], false);

    std::fs::write(&path, built(Variant::Faults)).unwrap_or_else(|e| panic!("{e}"));
    // Not watching: nothing happens until asked.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        plugin_status(&admin).await["plugin"]["plugin_version"],
        NORMAL
    );
    sd.signal("HUP");
    serves(&sd, FAULTS).await;

    std::fs::write(&path, built(Variant::Normal)).unwrap_or_else(|e| panic!("{e}"));
    let reply = admin.post("/admin/plugin/reload").await.ok();
    assert_eq!(reply["outcome"], "swapped");
    assert_eq!(reply["from"]["plugin_version"], FAULTS);
    assert_eq!(reply["plugin"]["plugin_version"], NORMAL);
    let again = admin.post("/admin/plugin/reload").await.ok();
    assert_eq!(again["outcome"], "unchanged");
    assert_eq!(plugin_status(&admin).await["swaps"], 2);
}

#[tokio::test]
async fn only_admins_may_see_or_reload_the_plugin_and_the_embedded_one_cannot_be_reloaded() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let sd = Sandboxd::start_with(Options::for_runtime(&rt).config(
        "[auth]\nmode = \"api-keys\"\n\
         [[auth.keys]]\nkey = \"alice-key-0123456789\"\nuser_id = \"alice\"\n\
         [[auth.keys]]\nkey = \"admin-key-0123456789\"\nadmin = true\n",
    ));
    let alice = sd.api().with_key("alice-key-0123456789");
    let admin = sd.api().with_key("admin-key-0123456789");
    assert_eq!(alice.get("/admin/plugin").await.status, 403);
    assert_eq!(alice.post("/admin/plugin/reload").await.status, 403);
    assert_eq!(sd.api().post("/admin/plugin/reload").await.status, 401);

    let status = admin.get("/admin/plugin").await.ok();
    assert_eq!(status["plugin"]["source"], "embedded");
    assert_eq!(status["file"], serde_json::Value::Null);
    let reply = admin.post("/admin/plugin/reload").await;
    assert_eq!(reply.status, 409);
    assert!(reply.detail().contains("--plugin"), "{}", reply.detail());
    assert_eq!(admin.get("/admin/plugin/reload").await.status, 405);
}

#[tokio::test]
async fn a_refused_plugin_leaves_the_running_one_serving_and_says_why() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let (_dir, path) = plugin_file(&built(Variant::Normal));
    let sd = Sandboxd::start_with(with_plugin(&rt, &path).config("[plugin]\nwatch = false\n"));
    let admin = sd.api();
    let id = sd.api().start().await["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    let cases: [(&str, Vec<u8>, &[&str]); 4] = [
        (
            "text",
            b"this is not wasm".to_vec(),
            &["not a valid WebAssembly component"],
        ),
        (
            "a core module",
            b"\0asm\x01\0\0\0".to_vec(),
            &["not a valid WebAssembly component"],
        ),
        (
            "another contract",
            incompatible(),
            &[
                &format!("contract {}", breaking_version()),
                &format!("contract {HOST}"),
            ],
        ),
        (
            "an empty file",
            Vec::new(),
            &["not a valid WebAssembly component"],
        ),
    ];
    for (what, bytes, says) in cases {
        std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        let reply = admin.post("/admin/plugin/reload").await;
        assert_eq!(reply.status, 422, "{what}: {:?}", reply.body);
        for s in says {
            assert!(reply.detail().contains(s), "{what}: {}", reply.detail());
        }
        let status = plugin_status(&admin).await;
        assert_eq!(status["plugin"]["plugin_version"], NORMAL, "{what}");
        assert_eq!(status["last_refused"]["trigger"], "api", "{what}");
        assert!(
            status["last_refused"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains(says[0])),
            "{what}: {status}"
        );
        // The old plugin still serves.
        assert_eq!(sd.api().sandbox(&id).await["status"], "RUNNING", "{what}");
    }
    let logs = sd.logs();
    assert!(logs.contains("plugin reload refused"), "{logs}");

    // A good plugin afterwards is taken.
    std::fs::write(&path, built(Variant::Faults)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        admin.post("/admin/plugin/reload").await.ok()["outcome"],
        "swapped"
    );
    assert_eq!(sd.api().sandbox(&id).await["status"], "RUNNING");
}

#[tokio::test]
async fn a_plugin_built_against_a_compatible_contract_version_serves() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let compatible = compatible_version();
    let (_dir, path) = plugin_file(&built(Variant::Contract(compatible.clone())));
    let sd = Sandboxd::start_with(with_plugin(&rt, &path));
    let status = plugin_status(&sd.api()).await;
    assert_eq!(status["plugin"]["contract_version"], compatible, "{status}");
    assert_eq!(status["host_contract_version"], HOST);
    let started = sd.api().start().await;
    let id = started["id"].as_str().unwrap_or_default();
    assert_eq!(sd.api().sandbox(id).await["status"], "RUNNING");
}

#[tokio::test]
async fn the_watcher_refuses_a_bad_file_and_takes_the_next_good_one() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let (_dir, path) = plugin_file(&built(Variant::Normal));
    let sd = Sandboxd::start_with(with_plugin(&rt, &path));
    let admin = sd.api();
    write_like_editor(&path, &incompatible());
    let mut refused = serde_json::Value::Null;
    for _ in 0..300 {
        refused = plugin_status(&admin).await["last_refused"].clone();
        if !refused.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(refused["trigger"], "watch", "{refused}\n{}", sd.logs());
    assert!(
        refused["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&breaking_version())),
        "{refused}"
    );
    assert_eq!(
        plugin_status(&admin).await["plugin"]["plugin_version"],
        NORMAL
    );

    write_like_cp(&path, &built(Variant::Faults));
    serves(&sd, FAULTS).await;
}

#[tokio::test]
async fn a_restart_loads_the_compiled_plugin_from_the_cache() {
    let _turn = crate::serial::shared().await;
    let rt = FakeRuntime::start();
    let (_dir, path) = plugin_file(&built(Variant::Faults));
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut options = with_plugin(&rt, &path);
    options.data_dir = Some(data.path().to_path_buf());
    let mut first = Sandboxd::start_with(options.clone());
    let status = plugin_status(&first.api()).await;
    assert_eq!(status["plugin"]["from_cache"], false, "{status}");
    first.stop();

    let second = Sandboxd::start_with(options);
    let status = plugin_status(&second.api()).await;
    assert_eq!(status["plugin"]["from_cache"], true, "{status}");
    assert_eq!(status["plugin"]["plugin_version"], FAULTS);
}

#[test]
fn a_bad_plugin_at_startup_is_refused_with_the_reason() {
    let _turn = crate::serial::shared_blocking();
    let rt = FakeRuntime::start();
    let (_dir, path) = plugin_file(&incompatible());
    let failure = match Sandboxd::try_start(with_plugin(&rt, &path)) {
        Ok(_) => panic!("sandboxd started with a plugin for another contract"),
        Err(f) => f,
    };
    assert_ne!(failure.exit_code, Some(0));
    assert!(
        failure
            .stderr
            .contains(&format!("contract {}", breaking_version()))
            && failure.stderr.contains(&format!("contract {HOST}")),
        "{}",
        failure.stderr
    );
}

fn check(path: &Path) -> (bool, String) {
    let out = Command::new(sandboxd::binary())
        .args(["plugin", "check"])
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn plugin_check_validates_offline_and_prints_versions_and_interface() {
    let _turn = crate::serial::shared_blocking();
    let (_d1, good) = plugin_file(&built(Variant::Faults));
    let (ok, out) = check(&good);
    assert!(ok, "{out}");
    for expected in [
        "plugin version:   0.1.0+faults".to_string(),
        format!("contract version: {HOST} (this host: {HOST})"),
        format!("sandboxd:plugin/http@{HOST}"),
        format!("sandboxd:plugin/sandboxes@{HOST}"),
        "sha256:".to_string(),
    ] {
        assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    }

    let (_d2, other) = plugin_file(&incompatible());
    let (ok, out) = check(&other);
    assert!(!ok);
    assert!(
        out.contains("refused") && out.contains(&breaking_version()),
        "{out}"
    );

    let (_d3, junk) = plugin_file(b"junk");
    let (ok, out) = check(&junk);
    assert!(!ok);
    assert!(out.contains("not a valid WebAssembly component"), "{out}");
}
