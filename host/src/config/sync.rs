//! `[sync]`: how sandboxd learns of agent servers' events (polling them, or
//! their webhooks) and how hard it may press them.

use std::time::Duration;

use serde::Deserialize;

use super::{choice, seconds, whole};

/// Requests of one `send-batch` in flight at once: how many agent servers a poll
/// cycle talks to at the same time.
const CONCURRENCY: usize = 32;
/// Deadline of one request to an agent server while syncing: a dead one costs
/// this much of a cycle, no more.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// `[sync]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncFile {
    /// `auto`, `poll` or `webhook`.
    pub mode: Option<String>,
    pub concurrency: Option<i64>,
    /// Seconds.
    pub request_timeout: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    /// Poll when agent servers cannot call back (no `web_url`, or a localhost
    /// one). The default: it is right both with and without a public URL.
    #[default]
    Auto,
    Poll,
    /// Rely on webhooks only.
    Webhook,
}

#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub mode: SyncMode,
    /// Agent-server requests in flight at once: 1 to 1024.
    pub concurrency: usize,
    pub request_timeout: Duration,
}

pub(super) fn validate(raw: SyncFile, err: &mut impl FnMut(String)) -> SyncConfig {
    SyncConfig {
        mode: choice("sync.mode", raw.mode.as_deref(), err).unwrap_or_default(),
        concurrency: whole("sync.concurrency", raw.concurrency, 1..=1024, "", err)
            .map_or(CONCURRENCY, |n| n as usize),
        request_timeout: seconds(
            "sync.request_timeout",
            raw.request_timeout,
            REQUEST_TIMEOUT,
            err,
        ),
    }
}
