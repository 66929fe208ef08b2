//! A real PostgreSQL server for the tests and benchmarks, never a shared one:
//! `initdb` into a temporary directory and `postgres` on a free loopback port,
//! as the `postgres` user when the tests run as root (PostgreSQL refuses to
//! run as root), one server per test process.
//!
//! The server is a child of a thread that lives as long as the process, and is
//! told to stop when its parent goes (`PR_SET_PDEATHSIG`): whatever way the
//! test process ends, no server is left running. Each test takes a database
//! of its own ([`Postgres::database`]), so tests share the server, not data.
//!
//! The binaries are found through `SANDBOXD_PG_BIN`, `pg_config --bindir`, or
//! `/usr/lib/postgresql/<version>/bin` (Debian's `postgresql-15` puts them
//! there).

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The database user the tests connect as (trusted on loopback).
const USER: &str = "sandboxd";

/// A running server.
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    /// Kept for the process's lifetime (the data directory).
    _dir: tempfile::TempDir,
}

/// How the server is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// PostgreSQL's defaults (fsync on): what a benchmark measures.
    Durable,
    /// fsync and synchronous commit off: what a correctness test needs, fast.
    Fast,
}

/// The process's server (started on first use).
///
/// # Panics
/// With instructions, if the PostgreSQL binaries cannot be found or the
/// server does not start.
pub fn server() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(|| Postgres::start(Durability::Fast))
}

/// The server binaries' directory.
pub fn bindir() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("SANDBOXD_PG_BIN").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("postgres").is_file() {
            return Ok(dir);
        }
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(|bin| bin.join("postgres").is_file())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found.pop().ok_or_else(|| {
        "PostgreSQL's server binaries were not found (tried SANDBOXD_PG_BIN, pg_config --bindir, \
         /usr/lib/postgresql/*/bin); install them (Debian: apt-get install postgresql) or point \
         SANDBOXD_PG_BIN at their directory"
            .to_owned()
    })
}

/// The uid and gid to run PostgreSQL as: the `postgres` user when we are
/// root, ourselves otherwise.
fn run_as() -> Option<(u32, u32)> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return None;
    }
    let out = Command::new("id").args(["-u", "postgres"]).output().ok()?;
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let out = Command::new("id").args(["-g", "postgres"]).output().ok()?;
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((uid, gid))
}

/// `command`, to run as `user` if given, and to be stopped when its parent
/// thread ends.
fn as_user(mut command: Command, user: Option<(u32, u32)>) -> Command {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if let Some((uid, gid)) = user
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0)
            {
                return Err(std::io::Error::last_os_error());
            }
            // After setuid (which clears it): SIGTERM is PostgreSQL's "smart"
            // shutdown, SIGQUIT its immediate one.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

impl Postgres {
    /// Start a server of its own (tests use [`server`]; a benchmark wants a
    /// durable one).
    pub fn start(durability: Durability) -> Postgres {
        let bin = bindir().unwrap_or_else(|e| panic!("{e}"));
        let user = run_as();
        let dir = tempfile::Builder::new()
            .prefix("sandboxd-pg-")
            .tempdir()
            .unwrap_or_else(|e| panic!("tempdir: {e}"));
        let data = dir.path().join("data");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {}: {e}", dir.path().display()));
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", USER, "--auth=trust", "--encoding=UTF8", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = as_user(initdb, user)
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = dir.path().join("postgres.log");
        let mut postgres = Command::new(bin.join("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(dir.path())
            .args(["-c", "max_connections=400", "-c", "shared_buffers=64MB"]);
        if durability == Durability::Fast {
            postgres.args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]);
        }
        let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
        if let Some((uid, gid)) = user {
            let _ = std::os::unix::fs::chown(&log, Some(uid), Some(gid));
        }
        postgres.stdout(Stdio::null()).stderr(log_file);
        let mut postgres = as_user(postgres, user);
        // The server's parent is a thread that never ends: it must outlive
        // every test, and the server must not outlive the process.
        let (started, result) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("postgres".into())
            .spawn(move || match postgres.spawn() {
                Ok(mut child) => {
                    let _ = started.send(Ok(()));
                    let status = child.wait();
                    eprintln!("postgres exited: {status:?}");
                }
                Err(e) => {
                    let _ = started.send(Err(e));
                }
            })
            .unwrap_or_else(|e| panic!("cannot start the postgres thread: {e}"));
        result
            .recv()
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("cannot start postgres: {e}"));
        let server = Postgres {
            port,
            bin,
            _dir: dir,
        };
        server.wait_ready(&log);
        server
    }

    fn wait_ready(&self, log: &Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", USER])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not become ready:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A new, empty database; its connection string.
    pub fn database(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                USER,
                &name,
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run createdb: {e}"));
        assert!(
            out.status.success(),
            "createdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }
}
