//! Start the Node.js host of the plugin (`embed/node/bin/sandboxd-node`) as a
//! child process, the way [`crate::sandboxd`] starts the Rust binary: the same
//! [`Options`] (environment, config file, plugin file, data directory), a port
//! the OS assigns (read from the `sandboxd listening on http://ADDR` line), a
//! log file the test can read, and a kill on drop. Its methods have the Rust
//! harness's names (`start_with`, `url`, `api`, `logs`, `kill`, `stop`), so a
//! test written against one host runs against the other.
//!
//! It needs `npm ci --prefix embed/node` (the pinned Node.js and jco) and the
//! plugin the Rust build publishes at `<target>/sandboxd-plugin/` (built by
//! `cargo build -p sandboxd`, which `cargo test --workspace` does).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::client::Api;
use crate::fake_runtime::FakeRuntime;
pub use crate::sandboxd::{Options, StartFailure};
use crate::sandboxd::{process_cpu_time, spawn_listening};

/// The workspace this crate lives in.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Where `sandboxd-node` is, after checking that it can run.
pub fn binary() -> PathBuf {
    let node = workspace().join("embed/node");
    let bin = node.join("bin/sandboxd-node");
    assert!(
        node.join("node_modules/.bin/node").exists(),
        "{} has no node_modules: run `npm ci --prefix embed/node` first",
        node.display()
    );
    bin
}

pub struct NodeHost {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
    data_dir: PathBuf,
}

impl NodeHost {
    /// Start the Node host against `runtime` with default settings.
    pub fn start(runtime: &FakeRuntime) -> NodeHost {
        NodeHost::start_with(Options::for_runtime(runtime))
    }

    pub fn start_with(options: Options) -> NodeHost {
        match NodeHost::try_start(options) {
            Ok(s) => s,
            Err(f) => panic!(
                "sandboxd-node did not start (exit {:?}):\n{}",
                f.exit_code, f.stderr
            ),
        }
    }

    /// Start it; if it exits instead of listening, say how.
    pub fn try_start(options: Options) -> Result<NodeHost, StartFailure> {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("data"));
        let log_path = dir.path().join("sandboxd-node.log");
        let log = std::fs::File::create(&log_path).unwrap_or_else(|e| panic!("log file: {e}"));
        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SANDBOXD_LISTEN", "127.0.0.1:0")
            .env("SANDBOXD_DATA_DIR", &data_dir)
            .env("SANDBOXD_LOG", "info,sandboxd=debug,plugin=debug")
            // Where the Rust build published the plugin, if not in target/.
            .envs(std::env::vars().filter(|(k, _)| k == "CARGO_TARGET_DIR"))
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
        Ok(NodeHost {
            child,
            url,
            dir,
            data_dir,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A client with no credentials.
    pub fn api(&self) -> Api {
        Api::new(&self.url)
    }

    /// Everything the host has logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sandboxd-node.log")).unwrap_or_default()
    }

    /// CPU time (user + system) the process has used so far, from `/proc` (Linux).
    pub fn cpu_time(&self) -> Option<Duration> {
        process_cpu_time(self.child.id())
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

impl Drop for NodeHost {
    fn drop(&mut self) {
        self.kill();
    }
}
