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
    /// What follows from the mode and `web_url`: decided once, here.
    pub plan: SyncPlan,
    /// Agent-server requests in flight at once: 1 to 1024.
    pub concurrency: usize,
    pub request_timeout: Duration,
}

/// How sandboxd hears of agent servers' events. Whether sandboxes are told to
/// post webhooks and whether sandboxd polls them are one decision, made here
/// and nowhere else: the plugin is handed [`SyncPlan::callback_url`] (it writes
/// the environment a sandbox starts with), the host runs its poller only when
/// [`SyncPlan::poll`] says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    /// The public URL sandboxes are told to post their webhooks to (and to
    /// allow for CORS), if they are to call back at all.
    pub callback_url: Option<String>,
    /// Whether the host polls the agent servers.
    pub poll: bool,
}

impl SyncPlan {
    /// - `auto` (the upstream service's rule): sandboxes are told to call back
    ///   whenever there is a `web_url`, and polled when there is none or it is a
    ///   localhost one (which they cannot reach from their cluster);
    /// - `poll`: polled, and not told to call back (a URL they were told of but
    ///   cannot reach would cost them retries);
    /// - `webhook`: never polled; told to call back to `web_url` if there is one
    ///   (without it, something else must configure them).
    pub fn new(mode: SyncMode, web_url: Option<&str>) -> SyncPlan {
        let web_url = web_url.map(str::to_owned);
        match mode {
            SyncMode::Auto => SyncPlan {
                poll: web_url.as_deref().is_none_or(|u| u.contains("localhost")),
                callback_url: web_url,
            },
            SyncMode::Poll => SyncPlan {
                callback_url: None,
                poll: true,
            },
            SyncMode::Webhook => SyncPlan {
                callback_url: web_url,
                poll: false,
            },
        }
    }
}

pub(super) fn validate(
    raw: SyncFile,
    web_url: Option<&str>,
    err: &mut impl FnMut(String),
) -> SyncConfig {
    let mode = choice("sync.mode", raw.mode.as_deref(), err).unwrap_or_default();
    SyncConfig {
        mode,
        plan: SyncPlan::new(mode, web_url),
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

#[cfg(test)]
mod tests {
    use super::{SyncMode, SyncPlan};

    #[test]
    fn one_plan_says_whether_sandboxes_call_back_and_whether_they_are_polled() {
        let plan = |mode, url: Option<&str>| {
            let p = SyncPlan::new(mode, url);
            (p.callback_url, p.poll)
        };
        let public = Some("https://app.example");
        let local = Some("http://localhost:3000");
        assert_eq!(plan(SyncMode::Auto, None), (None, true));
        assert_eq!(
            plan(SyncMode::Auto, public),
            (public.map(Into::into), false)
        );
        assert_eq!(plan(SyncMode::Auto, local), (local.map(Into::into), true));
        assert_eq!(plan(SyncMode::Poll, public), (None, true));
        assert_eq!(
            plan(SyncMode::Webhook, public),
            (public.map(Into::into), false)
        );
        assert_eq!(plan(SyncMode::Webhook, None), (None, false));
    }
}
