//! `[local_runtime]`: how the embedded local runtime runs sandboxes (used when
//! `runtime.api_url` is not set): their isolation, whether they outlive
//! sandboxd, and how long they may take to start and to stop.

use std::time::Duration;

use serde::Deserialize;

use super::{choice, seconds};

/// A local sandbox still not ready after this long is an error (and killed);
/// upstream's `start_sandbox_timeout` is the same idea, seen from the app.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a local sandbox has between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// `[local_runtime]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalRuntimeFile {
    /// `none` or `bwrap`.
    pub isolation: Option<String>,
    pub keep_on_exit: Option<bool>,
    /// Seconds between SIGTERM and SIGKILL.
    pub stop_grace: Option<f64>,
    /// Seconds a sandbox may take to become ready.
    pub ready_timeout: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct LocalRuntimeConfig {
    pub isolation: Isolation,
    /// Leave sandboxes running when sandboxd stops, for the next start to adopt.
    pub keep_on_exit: bool,
    pub stop_grace: Duration,
    pub ready_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    /// None at all: the command runs as sandboxd's user, sees what it sees. The
    /// default: it needs nothing installed.
    #[default]
    None,
    /// Bubblewrap: a private /tmp, the sandbox's directory writable, the rest
    /// read-only.
    Bwrap,
}

pub(super) fn validate(raw: LocalRuntimeFile, err: &mut impl FnMut(String)) -> LocalRuntimeConfig {
    LocalRuntimeConfig {
        isolation: choice("local_runtime.isolation", raw.isolation.as_deref(), err)
            .unwrap_or_default(),
        // Sandboxes end with the sandboxd that started them unless asked.
        keep_on_exit: raw.keep_on_exit.unwrap_or(false),
        stop_grace: seconds("local_runtime.stop_grace", raw.stop_grace, STOP_GRACE, err),
        ready_timeout: seconds(
            "local_runtime.ready_timeout",
            raw.ready_timeout,
            READY_TIMEOUT,
            err,
        ),
    }
}
