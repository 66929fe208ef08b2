//! The embedded local runtime, through the real binary: sandboxes that are real
//! processes, their statuses, the proxy behind the exposed URLs, signals, and
//! what survives a crash of sandboxd.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use sandboxd_tests::client::Api;
use sandboxd_tests::sandboxd::{Options, Sandboxd};

/// A process that serves the same tiny HTTP handler on all four of its ports,
/// naming the role of each, so every exposed URL can be checked.
const FOUR_PORTS: &str = r#"import http.server, json, os, sys, threading
roles = {"agent": int(sys.argv[1]), "vscode": int(sys.argv[2]), "work-1": int(sys.argv[3]), "work-2": int(sys.argv[4])}
def handler(role):
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            data = json.dumps({"role": role, "path": self.path, "key": os.environ.get("SESSION_API_KEY")}).encode()
            self.send_response(200); self.send_header("Content-Length", str(len(data))); self.end_headers(); self.wfile.write(data)
        def log_message(self, *a): pass
    return H
servers = [http.server.ThreadingHTTPServer(("127.0.0.1", port), handler(role)) for role, port in roles.items()]
for s in servers[1:]:
    threading.Thread(target=s.serve_forever, daemon=True).start()
servers[0].serve_forever()
"#;

fn toml_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect();
    format!("[{}]", quoted.join(", "))
}

fn config(extra: &str, specs: &[(&str, Vec<&str>, &str)]) -> String {
    let mut out = format!("[runtime]\nstart_sandbox_timeout = 30\n{extra}\n");
    for (id, command, more) in specs {
        out.push_str(&format!(
            "[[specs]]\nid = \"{id}\"\ncommand = {}\n{more}\n",
            toml_list(command)
        ));
    }
    out
}

fn four_ports_spec() -> (&'static str, Vec<&'static str>, &'static str) {
    (
        "four-ports",
        vec![
            "python3",
            "-c",
            FOUR_PORTS,
            "{port}",
            "{vscode_port}",
            "{worker_1_port}",
            "{worker_2_port}",
        ],
        "",
    )
}

async fn start(api: &Api, spec: &str) -> Value {
    api.post(&format!("/api/v1/sandboxes?sandbox_spec_id={spec}"))
        .await
        .ok()
}

async fn wait_status(api: &Api, id: &str, want: &str, timeout: Duration) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let sb = api.sandbox(id).await;
        if sb["status"] == want {
            return sb;
        }
        assert!(
            Instant::now() < deadline,
            "sandbox {id} never became {want}: {sb}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Processes whose working directory is inside `dir`.
fn processes_in(dir: &Path) -> Vec<(u32, char)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        if cwd.starts_with(dir) {
            let state = std::fs::read_to_string(entry.path().join("stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, r)| r.trim().chars().next())
                })
                .unwrap_or('?');
            found.push((pid, state));
        }
    }
    found
}

fn url_of(sb: &Value, name: &str) -> String {
    sb["exposed_urls"]
        .as_array()
        .and_then(|urls| urls.iter().find(|u| u["name"] == name))
        .and_then(|u| u["url"].as_str())
        .unwrap_or_default()
        .to_owned()
}

async fn get_json(url: &str, key: Option<&str>) -> (u16, Value) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut req = client.get(url);
    if let Some(k) = key {
        req = req.header("X-Session-API-Key", k);
    }
    match req.send().await {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(e) => panic!("{url}: {e}"),
    }
}

#[tokio::test]
async fn a_local_sandbox_is_a_real_process_behind_the_exposed_urls() {
    let _turn = crate::serial::shared().await;
    let sd = Sandboxd::start_with(Options::default().config(&config("", &[four_ports_spec()])));
    let api = sd.api();
    let sb = start(&api, "four-ports").await;
    let id = sb["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(sb["status"], "STARTING");
    let sb = wait_status(&api, &id, "RUNNING", Duration::from_secs(20)).await;
    let key = sb["session_api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // Each exposed URL reaches its own port, through the runtime's proxy.
    let agent = url_of(&sb, "AGENT_SERVER");
    assert!(agent.starts_with("http://127.0.0.1:"), "{agent}");
    let (status, body) = get_json(&format!("{agent}/alive?x=1"), None).await;
    assert_eq!(
        (status, body["role"].as_str(), body["path"].as_str()),
        (200, Some("agent"), Some("/alive?x=1"))
    );
    assert_eq!(body["key"], json!(key), "the process got the session key");
    for (name, role) in [
        ("VSCODE", "vscode"),
        ("WORKER_1", "work-1"),
        ("WORKER_2", "work-2"),
    ] {
        let url = url_of(&sb, name);
        let (status, body) = get_json(&url, None).await;
        assert_eq!(
            (status, body["role"].as_str()),
            (200, Some(role)),
            "{name} {url}"
        );
    }

    // Pause stops the process (SIGSTOP), resume continues it.
    let sandboxes = sd.data_dir().join("sandboxes");
    let procs = processes_in(&sandboxes);
    assert_eq!(procs.len(), 1, "{procs:?}");
    api.post(&format!("/api/v1/sandboxes/{id}/pause"))
        .await
        .ok();
    assert_eq!(api.sandbox(&id).await["status"], "PAUSED");
    assert_eq!(processes_in(&sandboxes).first().map(|p| p.1), Some('T'));
    api.post(&format!("/api/v1/sandboxes/{id}/resume"))
        .await
        .ok();
    assert_eq!(api.sandbox(&id).await["status"], "RUNNING");
    assert_ne!(processes_in(&sandboxes).first().map(|p| p.1), Some('T'));
    assert_eq!(get_json(&format!("{agent}/alive"), None).await.0, 200);

    // Delete ends it: no process, no directory.
    api.delete(&format!("/api/v1/sandboxes/{id}")).await.ok();
    assert!(processes_in(&sandboxes).is_empty());
    assert_eq!(
        std::fs::read_dir(&sandboxes)
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
    assert_eq!(api.sandbox(&id).await, Value::Null);
}

#[tokio::test]
async fn the_default_spec_runs_with_nothing_but_python() {
    let _turn = crate::serial::shared().await;
    let sd = Sandboxd::start_with(Options::default());
    let api = sd.api();
    let specs = api.get("/api/v1/sandbox-specs/search").await.ok();
    assert_eq!(specs["items"][0]["id"], "local/python-http");
    let id = api.start().await["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let sb = wait_status(&api, &id, "RUNNING", Duration::from_secs(20)).await;
    let agent = url_of(&sb, "AGENT_SERVER");
    assert_eq!(get_json(&format!("{agent}/alive"), None).await.0, 200);
    assert_eq!(
        get_json(&format!("{agent}/api/anything"), None).await.0,
        401,
        "the session key is checked"
    );
    let key = sb["session_api_key"].as_str().unwrap_or_default();
    assert_eq!(
        get_json(&format!("{agent}/api/anything"), Some(key))
            .await
            .0,
        200
    );
    api.delete(&format!("/api/v1/sandboxes/{id}")).await.ok();
}

#[tokio::test]
async fn failures_of_the_process_are_errors_with_their_reason() {
    let _turn = crate::serial::shared().await;
    let specs = [
        ("missing", vec!["/definitely/not/a/command", "{port}"], ""),
        (
            "crashes",
            vec!["sh", "-c", "echo 'boom: out of cheese' >&2; exit 3"],
            "",
        ),
        ("finishes", vec!["sh", "-c", "exit 0"], ""),
        ("never-ready", vec!["sleep", "60"], "probe = \"tcp\""),
    ];
    let sd = Sandboxd::start_with(
        Options::default().config(&config("[local_runtime]\nready_timeout = 1.5", &specs)),
    );
    let api = sd.api();
    let missing = start(&api, "missing").await;
    // The spawn fails synchronously, so the answer is normally ERROR already; a
    // runtime that reports STARTING first must still settle on ERROR with the reason.
    let missing = if missing["status"] == "ERROR" {
        missing
    } else {
        eprintln!("the start of a missing command answered {missing}");
        let id = missing["id"].as_str().unwrap_or_default().to_owned();
        wait_status(&api, &id, "ERROR", Duration::from_secs(10)).await
    };
    assert!(
        missing["status_detail"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot run '/definitely/not/a/command'"),
        "{missing}"
    );

    let crashes = start(&api, "crashes").await["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let sb = wait_status(&api, &crashes, "ERROR", Duration::from_secs(10)).await;
    let detail = sb["status_detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("exited with status 3") && detail.contains("boom: out of cheese"),
        "{detail}"
    );

    let finishes = start(&api, "finishes").await["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    wait_status(&api, &finishes, "MISSING", Duration::from_secs(10)).await;

    let slow = start(&api, "never-ready").await["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let sb = wait_status(&api, &slow, "ERROR", Duration::from_secs(10)).await;
    assert!(
        sb["status_detail"]
            .as_str()
            .unwrap_or_default()
            .contains("not ready within"),
        "{sb}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        processes_in(&sd.data_dir().join("sandboxes")).is_empty(),
        "the never-ready process was ended"
    );
    for id in [&crashes, &finishes, &slow] {
        assert_eq!(
            api.delete(&format!("/api/v1/sandboxes/{id}")).await.status,
            200
        );
    }
}

#[tokio::test]
async fn a_stop_ends_the_whole_process_group_even_if_it_ignores_sigterm() {
    let _turn = crate::serial::shared().await;
    let stubborn = (
        "stubborn",
        vec![
            "sh",
            "-c",
            "trap '' TERM; (trap '' TERM; sleep 600) & python3 -m http.server --bind 127.0.0.1 {port}",
        ],
        "",
    );
    let sd = Sandboxd::start_with(
        Options::default().config(&config("[local_runtime]\nstop_grace = 0.5", &[stubborn])),
    );
    let api = sd.api();
    let id = start(&api, "stubborn").await["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    wait_status(&api, &id, "RUNNING", Duration::from_secs(20)).await;
    let sandboxes = sd.data_dir().join("sandboxes");
    assert!(processes_in(&sandboxes).len() >= 2);
    api.post(&format!("/api/v1/sandboxes/{id}/pause"))
        .await
        .ok();
    let started = Instant::now();
    api.delete(&format!("/api/v1/sandboxes/{id}")).await.ok();
    assert!(started.elapsed() < Duration::from_secs(8));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let left: Vec<_> = processes_in(&sandboxes)
        .into_iter()
        .filter(|p| p.1 != 'Z')
        .collect();
    assert!(left.is_empty(), "stray processes: {left:?}");
}

#[tokio::test]
async fn sandboxes_survive_a_crash_of_sandboxd_and_are_adopted() {
    let _turn = crate::serial::shared().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let options = || Options {
        data_dir: Some(dir.path().to_path_buf()),
        ..Options::default().config(&config("", &[four_ports_spec()]))
    };
    let mut sd = Sandboxd::start_with(options());
    let api = sd.api();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            start(&api, "four-ports").await["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    for id in &ids {
        wait_status(&api, id, "RUNNING", Duration::from_secs(20)).await;
    }
    api.post(&format!("/api/v1/sandboxes/{}/pause", ids[2]))
        .await
        .ok();
    let sandboxes = dir.path().join("sandboxes");
    let before = processes_in(&sandboxes);
    assert_eq!(before.len(), 3);

    sd.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        processes_in(&sandboxes).len(),
        3,
        "the processes outlive a crash: before {before:?}, after {:?}",
        processes_in(&sandboxes)
    );

    let sd = Sandboxd::start_with(options());
    let api = sd.api();
    for id in &ids[..2] {
        let sb = api.sandbox(id).await;
        assert_eq!(sb["status"], "RUNNING", "adopted: {sb}");
        assert_eq!(get_json(&url_of(&sb, "AGENT_SERVER"), None).await.0, 200);
    }
    assert_eq!(
        api.sandbox(&ids[2]).await["status"],
        "PAUSED",
        "logs:\n{}",
        sd.logs()
    );
    api.post(&format!("/api/v1/sandboxes/{}/resume", ids[2]))
        .await
        .ok();
    assert_eq!(api.sandbox(&ids[2]).await["status"], "RUNNING");
    let mut pids_before: Vec<u32> = before.iter().map(|p| p.0).collect();
    let mut pids_after: Vec<u32> = processes_in(&sandboxes).iter().map(|p| p.0).collect();
    pids_before.sort_unstable();
    pids_after.sort_unstable();
    assert_eq!(pids_after, pids_before, "the same processes, adopted");
    for id in &ids {
        api.delete(&format!("/api/v1/sandboxes/{id}")).await.ok();
    }
    assert!(processes_in(&sandboxes).is_empty());
}

#[tokio::test]
async fn a_clean_shutdown_stops_sandboxes_unless_told_to_keep_them() {
    let _turn = crate::serial::shared().await;
    for keep in [false, true] {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let extra = format!("[local_runtime]\nkeep_on_exit = {keep}");
        let options = || Options {
            data_dir: Some(dir.path().to_path_buf()),
            ..Options::default().config(&config(&extra, &[four_ports_spec()]))
        };
        let mut sd = Sandboxd::start_with(options());
        let api = sd.api();
        let id = start(&api, "four-ports").await["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        wait_status(&api, &id, "RUNNING", Duration::from_secs(20)).await;
        assert_eq!(sd.stop(), Some(0), "a clean exit");
        let sandboxes = dir.path().join("sandboxes");
        assert_eq!(
            processes_in(&sandboxes).is_empty(),
            !keep,
            "keep_on_exit = {keep}"
        );
        let sd = Sandboxd::start_with(options());
        let status = sd.api().sandbox(&id).await["status"].clone();
        assert_eq!(
            status,
            if keep { "RUNNING" } else { "MISSING" },
            "keep_on_exit = {keep}"
        );
        sd.api()
            .delete(&format!("/api/v1/sandboxes/{id}"))
            .await
            .ok();
        assert!(processes_in(&sandboxes).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sandboxes_start_at_once() {
    let _turn = crate::serial::shared().await;
    let sd = Sandboxd::start_with(
        Options::default().config(&config("max_num_sandboxes = 100", &[four_ports_spec()])),
    );
    let api = sd.api();
    let starts = (0..20).map(|_| {
        let api = api.clone();
        async move {
            start(&api, "four-ports").await["id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    });
    let ids: Vec<String> = futures_join_all(starts).await;
    let mut agents = std::collections::HashSet::new();
    for id in &ids {
        let sb = wait_status(&api, id, "RUNNING", Duration::from_secs(60)).await;
        let agent = url_of(&sb, "AGENT_SERVER");
        assert_eq!(
            get_json(&format!("{agent}/alive"), None).await.1["role"],
            "agent"
        );
        agents.insert(agent);
    }
    assert_eq!(agents.len(), 20);
    let deletes = ids.iter().map(|id| {
        let api = api.clone();
        let id = id.clone();
        async move { api.delete(&format!("/api/v1/sandboxes/{id}")).await.status }
    });
    assert!(futures_join_all(deletes).await.iter().all(|s| *s == 200));
    assert!(processes_in(&sd.data_dir().join("sandboxes")).is_empty());
}

async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().collect();
    let mut out = Vec::with_capacity(handles.len());
    // Polled concurrently by a JoinSet-free join: pin them all in one select loop.
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = handles.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if results[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => results[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.extend(results.into_iter().flatten());
    out
}

#[tokio::test]
async fn bubblewrap_isolation_keeps_the_sandbox_in_its_directory() {
    let _turn = crate::serial::shared().await;
    if std::process::Command::new("bwrap")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "SKIPPED: bubblewrap is not installed (apt-get install bubblewrap); .ci/run installs it"
        );
        return;
    }
    let probe = r#"import http.server, os, sys
results = {}
for name, path in [("workdir", "written.txt"), ("etc", "/etc/sandboxd-escape"), ("tmp", "/tmp/sandboxd-private")]:
    try:
        open(path, "w").write("x"); results[name] = "ok"
    except OSError as e:
        results[name] = "denied"
open("results.txt", "w").write(repr(sorted(results.items())))
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
"#;
    let spec = ("isolated", vec!["python3", "-c", probe, "{port}"], "");
    let sd = Sandboxd::start_with(
        Options::default().config(&config("[local_runtime]\nisolation = \"bwrap\"", &[spec])),
    );
    let api = sd.api();
    let id = start(&api, "isolated").await["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let sb = wait_status(&api, &id, "RUNNING", Duration::from_secs(20)).await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let results = client
        .get(format!("{}/results.txt", url_of(&sb, "AGENT_SERVER")))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    assert_eq!(
        results,
        "[('etc', 'denied'), ('tmp', 'ok'), ('workdir', 'ok')]"
    );
    assert!(!Path::new("/etc/sandboxd-escape").exists());
    assert!(
        !Path::new("/tmp/sandboxd-private").exists(),
        "its /tmp is private"
    );
    api.delete(&format!("/api/v1/sandboxes/{id}")).await.ok();
}

#[test]
fn bubblewrap_requested_but_missing_stops_startup_with_a_clear_error() {
    let _turn = crate::serial::shared_blocking();
    let failure = Sandboxd::try_start(
        Options::default()
            .config("[local_runtime]\nisolation = \"bwrap\"\n")
            .env("PATH", "/nonexistent"),
    );
    match failure {
        Ok(_) => panic!("sandboxd started without bwrap"),
        Err(f) => assert!(
            f.stderr.contains("bwrap") && f.stderr.contains("isolation"),
            "{}",
            f.stderr
        ),
    }
}
