//! Start a host of the plugin as a child process, for end-to-end tests: the
//! real `sandboxd` binary ([`Sandboxd::start_with`]), or either host by name
//! ([`Host::spawn`](crate::host::Host::spawn): the same handle for both).
//!
//! The `sandboxd` binary is the one cargo built next to the test executable (so
//! `cargo test --workspace` tests what it just built), or `SANDBOXD_BIN`. Each
//! instance gets its own data directory (unless one is given, to test restarts),
//! listens on a port the OS assigns (read from the line it prints), and
//! writes its log to a file the test can read. Dropping the handle kills it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::client::Api;
use crate::fake_runtime::FakeRuntime;
use crate::host::Host;

/// How long sandboxd may take to start listening (it compiles the plugin).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The host's standard error, in its temporary directory.
const LOG_FILE: &str = "host.log";

/// Where the `sandboxd` binary is.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SANDBOXD_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test> → target/<profile>/sandboxd
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(format!("sandboxd{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} does not exist: build it first (cargo build -p sandboxd), or run the whole suite with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// How to start one sandboxd (either host: the Node.js host reads the same
/// variables and config file, for the keys it supports).
#[derive(Default, Clone)]
pub struct Options {
    pub env: Vec<(String, String)>,
    /// Written to a file and passed as `--config`.
    pub config_toml: Option<String>,
    pub plugin: Option<PathBuf>,
    /// Reuse this data directory (for restart tests); a fresh one otherwise.
    pub data_dir: Option<PathBuf>,
}

impl Options {
    /// Talk to `runtime` (its URL and key).
    pub fn for_runtime(runtime: &FakeRuntime) -> Options {
        Options::default()
            .env("SANDBOXD_RUNTIME_API_URL", runtime.url())
            .env("SANDBOXD_RUNTIME_API_KEY", runtime.api_key())
    }

    pub fn env(mut self, key: &str, value: &str) -> Options {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn config(mut self, toml: &str) -> Options {
        self.config_toml = Some(toml.to_owned());
        self
    }
}

/// A running host of the plugin (the `sandboxd` binary, or the Node.js host
/// when started by [`Host::Node`]).
pub struct Sandboxd {
    host: Host,
    child: Child,
    url: String,
    dir: tempfile::TempDir,
    data_dir: PathBuf,
}

/// What a sandboxd that failed to start said.
#[derive(Debug)]
pub struct StartFailure {
    pub exit_code: Option<i32>,
    pub stderr: String,
}

impl Sandboxd {
    /// Start sandboxd against `runtime` with default settings.
    pub fn start(runtime: &FakeRuntime) -> Sandboxd {
        Sandboxd::start_with(Options::for_runtime(runtime))
    }

    pub fn start_with(options: Options) -> Sandboxd {
        Host::Rust.spawn(options)
    }

    /// Start sandboxd; if it exits instead of listening, say how.
    pub fn try_start(options: Options) -> Result<Sandboxd, StartFailure> {
        Host::Rust.try_spawn(options)
    }

    /// Start `host`; if it exits instead of listening, say how. (Through
    /// [`Host::try_spawn`].)
    pub(crate) fn try_spawn(host: Host, options: Options) -> Result<Sandboxd, StartFailure> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let log_path = dir.path().join(LOG_FILE);
        let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("log file: {e}"));
        let mut cmd = Command::new(host.program());
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SANDBOXD_LISTEN", "127.0.0.1:0")
            .env("SANDBOXD_DATA_DIR", &data_dir)
            .env("SANDBOXD_LOG", "info,sandboxd=debug,plugin=debug")
            .envs(std::env::vars().filter(|(k, _)| host.passes_through(k)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        if let Some(toml) = &options.config_toml {
            let path = dir.path().join("sandboxd.toml");
            std::fs::write(&path, toml).unwrap_or_else(|e| panic!("config: {e}"));
            cmd.arg("--config").arg(path);
        }
        if let Some(plugin) = &options.plugin {
            cmd.arg("--plugin").arg(plugin);
        }
        for (k, v) in &options.env {
            cmd.env(k, v);
        }
        let (child, url) = spawn_listening(&mut cmd, &log_path)?;
        Ok(Sandboxd {
            host,
            child,
            url,
            dir,
            data_dir,
        })
    }

    /// Which host this is.
    pub fn host(&self) -> Host {
        self.host
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) the process has used so far, from `/proc` (Linux).
    pub fn cpu_time(&self) -> Option<Duration> {
        process_cpu_time(self.child.id())
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A client with no credentials.
    pub fn api(&self) -> Api {
        Api::new(&self.url)
    }

    /// Everything sandboxd has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(LOG_FILE)).unwrap_or_default()
    }

    /// Send a signal by name (`HUP`, `TERM`, …).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "kill -{name} {pid} failed"
        );
    }

    /// SIGKILL: no chance to clean up, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a clean exit; returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.kill();
        None
    }
}

impl Drop for Sandboxd {
    fn drop(&mut self) {
        self.kill();
        // Local sandboxes outlive sandboxd by design (to be re-adopted); a test
        // must not leave them behind.
        kill_processes_in(&self.data_dir.join("sandboxes"));
    }
}

/// Spawn `cmd` (its stdout piped) and wait for its `sandboxd listening on
/// http://ADDR` line; the child and the URL, or how it failed (its exit code
/// and the log at `log_path`).
fn spawn_listening(cmd: &mut Command, log_path: &Path) -> Result<(Child, String), StartFailure> {
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));

    // Read the "listening" line on a thread, so a silent child cannot hang us.
    let stdout = child
        .stdout
        .take()
        .unwrap_or_else(|| panic!("stdout is piped"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && let Some(url) = line.strip_prefix("sandboxd listening on ") {
                let _ = tx.send(url.trim().to_owned());
                sent = true;
            }
        }
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(url) => Ok((child, url)),
        Err(_) => {
            let _ = child.kill();
            let status = child.wait().ok();
            Err(StartFailure {
                exit_code: status.and_then(|s| s.code()),
                stderr: std::fs::read_to_string(log_path).unwrap_or_default(),
            })
        }
    }
}

/// CPU time (user + system) process `pid` has used so far, from `/proc` (Linux).
pub fn process_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line, in clock ticks (100 per second).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// SIGKILL every process whose working directory is inside `dir`.
pub fn kill_processes_in(dir: &Path) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir)) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}
