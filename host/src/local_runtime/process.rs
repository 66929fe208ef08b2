//! Child processes of the local runtime: spawning one in its own process group,
//! signalling the group, and reading what `/proc` says about a pid.
//!
//! A sandbox's process leads a new session (and so a new process group), so that
//! a signal reaches everything it started, a Ctrl-C in sandboxd's terminal reaches
//! none of it, and sandboxd's death does not make it an orphaned process group
//! (whose stopped members the kernel would send SIGHUP: a paused sandbox would
//! die with sandboxd). Its output goes to files in the sandbox's directory, not to pipes: a
//! process that outlives sandboxd (to be re-adopted after a restart) must not die
//! of a broken pipe.

use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::config::Isolation;

pub const STDOUT_FILE: &str = "stdout.log";
pub const STDERR_FILE: &str = "stderr.log";

/// Start `command` in `workdir` with exactly `env`, as the leader of its own
/// session, wrapped by bubblewrap if asked.
pub fn spawn(
    command: &[String],
    env: &[(String, String)],
    workdir: &Path,
    isolation: Isolation,
) -> std::io::Result<tokio::process::Child> {
    let (program, args) = match isolation {
        Isolation::None => {
            let (program, args) = command.split_first().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "the command is empty")
            })?;
            (program.clone(), args.to_vec())
        }
        Isolation::Bwrap => ("bwrap".to_owned(), bwrap_args(command, workdir)),
    };
    let stdout = File::create(workdir.join(STDOUT_FILE))?;
    let stderr = File::create(workdir.join(STDERR_FILE))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(false);
    // SAFETY: `setsid` is async-signal-safe and touches nothing of the parent; it
    // is all that runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    cmd.spawn()
}

/// Bubblewrap around `command`: the whole filesystem read-only, a private /tmp,
/// the sandbox's own directory writable, fresh /dev and /proc. The network is
/// shared: the sandbox must listen on loopback ports the runtime proxies to.
fn bwrap_args(command: &[String], workdir: &Path) -> Vec<String> {
    let dir = workdir.display().to_string();
    let mut args: Vec<String> = [
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "--bind",
        &dir,
        &dir,
        "--chdir",
        &dir,
        "--unshare-ipc",
        "--unshare-uts",
        "--new-session",
        "--",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(command.iter().cloned());
    args
}

/// Whether bubblewrap is installed and can run here.
pub fn bwrap_available() -> Result<(), String> {
    match std::process::Command::new("bwrap")
        .args([
            "--ro-bind",
            "/",
            "/",
            "--dev",
            "/dev",
            "--proc",
            "/proc",
            "true",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "bwrap is installed but cannot run here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!(
            "bwrap is not installed (apt-get install bubblewrap): {e}"
        )),
    }
}

/// Signal every process of the group; false if the group is gone.
pub fn signal_group(pgid: u32, signal: Signal) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    !matches!(killpg(Pid::from_raw(pgid), signal), Err(Errno::ESRCH))
}

/// Whether any process of the group is left (zombies count until reaped).
pub fn group_alive(pgid: u32) -> bool {
    let Ok(pgid) = i32::try_from(pgid) else {
        return false;
    };
    !matches!(killpg(Pid::from_raw(pgid), None), Err(Errno::ESRCH))
}

/// Wait until the group is gone, or `timeout` passes; whether it is gone.
pub async fn wait_group_gone(pgid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !group_alive(pgid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// When process `pid` started, in clock ticks since boot (`/proc/<pid>/stat`
/// field 22). With the pid, it names one process for good: a pid that was reused
/// has another start time.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` that started at `ticks` is still running (a zombie
/// is not).
pub fn same_process_alive(pid: u32, ticks: u64) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let mut fields = rest.split_whitespace();
    let state = fields.next().unwrap_or("Z");
    let started = fields.nth(18).and_then(|t| t.parse::<u64>().ok());
    state != "Z" && state != "X" && started == Some(ticks)
}

/// Zombie processes whose parent is `parent`.
pub fn zombie_children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            fields.next() == Some("Z")
                && fields.next().and_then(|p| p.parse::<u32>().ok()) == Some(parent)
        })
        .collect()
}

/// Reap one exited child without blocking.
pub fn reap(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = nix::sys::wait::waitpid(
            Pid::from_raw(pid),
            Some(nix::sys::wait::WaitPidFlag::WNOHANG),
        );
    }
}

/// The last `lines` lines of the sandbox's stderr (at most 4 KiB), for a status
/// detail.
pub fn stderr_tail(workdir: &Path, lines: usize) -> String {
    let Ok(bytes) = std::fs::read(workdir.join(STDERR_FILE)) else {
        return String::new();
    };
    let start = bytes.len().saturating_sub(4096);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_start_time() {
        let me = std::process::id();
        let ticks = start_ticks(me);
        assert!(ticks.is_some());
        assert!(same_process_alive(me, ticks.unwrap_or_default()));
        assert!(!same_process_alive(me, ticks.unwrap_or_default() + 1));
        assert!(!same_process_alive(u32::MAX - 1, 0));
    }

    #[tokio::test]
    async fn a_spawned_group_is_signalled_and_gone() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let env = vec![("PATH".to_owned(), std::env::var("PATH").unwrap_or_default())];
        let command: Vec<String> = ["sh", "-c", "sleep 30 & sleep 30 & echo started >&2; wait"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let mut child =
            spawn(&command, &env, dir.path(), Isolation::None).unwrap_or_else(|e| panic!("{e}"));
        let pid = child.id().unwrap_or_default();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(group_alive(pid));
        assert_eq!(stderr_tail(dir.path(), 5), "started");
        assert!(signal_group(pid, Signal::SIGKILL));
        let _ = child.wait().await;
        assert!(
            wait_group_gone(pid, Duration::from_secs(5)).await,
            "no stray process"
        );
        assert!(!signal_group(pid, Signal::SIGTERM));
    }
}
