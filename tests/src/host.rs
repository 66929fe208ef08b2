//! The two hosts of the plugin, so that one end-to-end scenario runs against
//! each: the Rust binary `sandboxd` (`host/`, wasmtime) and the Node.js host
//! `embed/node/bin/sandboxd-node` (V8 through jco).
//!
//! [`Host::spawn`] starts either with the same [`Options`] (environment, config
//! file, plugin file, data directory) and gives the same handle, [`Sandboxd`],
//! with the same [`Api`](crate::client::Api) client, so a scenario is written
//! once as `async fn scenario(host: Host)` and a difference between the hosts
//! is a failing test. Both read the same `SANDBOXD_*` variables and TOML keys;
//! a key the Node.js host does not support makes it exit naming the key, which
//! [`Host::spawn`] reports with its log.
//!
//! The Node.js host needs `npm ci --prefix embed/node` (its pinned Node.js and
//! jco) and the plugin the Rust build publishes at
//! `<target>/sandboxd-plugin/sandboxd_plugin.wasm` (built by
//! `cargo build -p sandboxd`, which `cargo test --workspace` does). Without
//! them, [`Host::Node`] fails the test with the command to run; it never skips.

use std::path::{Path, PathBuf};

use crate::fake_runtime::FakeRuntime;
use crate::sandboxd::{Options, Sandboxd, StartFailure};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host {
    /// `sandboxd` (`host/`): wasmtime, redb.
    Rust,
    /// `sandboxd-node` (`embed/node/`): Node.js and jco, SQLite.
    Node,
}

impl Host {
    pub const ALL: [Host; 2] = [Host::Rust, Host::Node];

    /// The program's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Host::Rust => "sandboxd",
            Host::Node => "sandboxd-node",
        }
    }

    /// Start this host against `runtime` with default settings.
    pub fn start(self, runtime: &FakeRuntime) -> Sandboxd {
        self.spawn(Options::for_runtime(runtime))
    }

    /// Start this host; a host that does not come up fails the test with its log.
    pub fn spawn(self, options: Options) -> Sandboxd {
        match self.try_spawn(options) {
            Ok(s) => s,
            Err(f) => panic!(
                "{} did not start (exit {:?}):\n{}",
                self.name(),
                f.exit_code,
                f.stderr
            ),
        }
    }

    /// Start this host; if it exits instead of listening, say how.
    pub fn try_spawn(self, options: Options) -> Result<Sandboxd, StartFailure> {
        Sandboxd::try_spawn(self, options)
    }

    /// The program to run (after checking that it can run).
    pub fn program(self) -> PathBuf {
        match self {
            Host::Rust => crate::sandboxd::binary(),
            Host::Node => node_host(),
        }
    }

    /// Which variables of the test's own environment reach the host (all
    /// others are cleared, so the host sees only what the test gives it).
    pub(crate) fn passes_through(self, name: &str) -> bool {
        match self {
            Host::Rust => name == "SANDBOXD_WASM_PERFMAP" || name == "TOKIO_WORKER_THREADS",
            // Where the Rust build published the plugin, if not in target/.
            Host::Node => name == "CARGO_TARGET_DIR",
        }
    }
}

/// The workspace this crate lives in.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// `embed/node/bin/sandboxd-node`, after checking that `npm ci` has set its
/// folder up from the current lockfile: otherwise a panic that says exactly
/// which command to run.
pub fn node_host() -> PathBuf {
    let dir = workspace().join("embed/node");
    let fix = format!(
        "run `npm ci --prefix embed/node` in {} (it installs the Node.js host's pinned Node.js and jco from its lockfile), then run the tests again",
        workspace().display()
    );
    let node = dir.join("node_modules/.bin/node");
    assert!(
        node.exists(),
        "the Node.js host is not set up: {} is missing; {fix}",
        node.display()
    );
    // npm ci writes node_modules/.package-lock.json; a lockfile changed since
    // (a pull, a branch switch) means node_modules may hold other versions.
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(lock), Some(installed)) = (
        modified(&dir.join("package-lock.json")),
        modified(&dir.join("node_modules/.package-lock.json")),
    ) {
        assert!(
            installed >= lock,
            "the Node.js host's node_modules is older than embed/node/package-lock.json; {fix}"
        );
    }
    dir.join("bin/sandboxd-node")
}
