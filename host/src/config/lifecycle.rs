//! `[lifecycle]`: the policies that pause and delete sandboxes nobody watches,
//! how often they are applied, waking paused sandboxes on a request, and how
//! long old keys and histories are kept.
//!
//! The three policies are off by default (sandboxd does not stop what a user
//! started unless the operator says so), each a number of seconds, and each
//! overridable per spec in `[[specs]]` under the same name, where 0 turns it
//! off for that spec. [`LifecycleConfig::policy_of`] is the one place the two
//! are combined.

use std::time::Duration;

use serde::Deserialize;

use super::{seconds, whole};

/// How often the policy pass runs: often enough that a policy acts within a
/// few seconds of its moment, rarely enough that a pass over 10,000 sandboxes
/// is a small share of a core (see the README's benchmark).
const INTERVAL: Duration = Duration::from_secs(5);
/// How long a paused sandbox's old key still authenticates its agent server's
/// final webhooks: upstream's default.
const TEARDOWN_GRACE_SECS: u32 = 30;
/// How long the history of a deleted sandbox is kept: a week, to answer "why
/// did it stop" after the fact.
const HISTORY_RETENTION_SECS: u32 = 7 * 24 * 3600;

/// The policy keys, as written in `[lifecycle]` and in a `[[specs]]` entry.
#[derive(Debug, Default, Clone, Copy)]
pub struct PolicyFile {
    pub idle_pause: Option<i64>,
    pub max_running: Option<i64>,
    pub delete_paused_after: Option<i64>,
}

/// `[lifecycle]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleFile {
    /// Seconds, each.
    pub idle_pause: Option<i64>,
    pub max_running: Option<i64>,
    pub delete_paused_after: Option<i64>,
    /// Seconds.
    pub interval: Option<f64>,
    pub wake_on_request: Option<bool>,
    pub teardown_grace: Option<i64>,
    pub history_retention: Option<i64>,
}

/// A policy in whole seconds; none is off.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub idle_pause: Option<u32>,
    pub max_running: Option<u32>,
    pub delete_paused_after: Option<u32>,
}

/// One spec's overrides: none keeps the `[lifecycle]` value, `Some(None)` is
/// a 0 (off for this spec).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PolicyOverrides {
    pub idle_pause: Option<Option<u32>>,
    pub max_running: Option<Option<u32>>,
    pub delete_paused_after: Option<Option<u32>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LifecycleConfig {
    /// The policy of every spec that does not override it.
    pub policy: Policy,
    pub interval: Duration,
    /// Whether a request to a paused sandbox's URL resumes it (local runtime).
    pub wake_on_request: bool,
    pub teardown_grace_secs: u32,
    pub history_retention_secs: u32,
}

impl LifecycleConfig {
    /// The policy of a spec with `overrides`.
    pub fn policy_of(&self, overrides: &PolicyOverrides) -> Policy {
        Policy {
            idle_pause: overrides.idle_pause.unwrap_or(self.policy.idle_pause),
            max_running: overrides.max_running.unwrap_or(self.policy.max_running),
            delete_paused_after: overrides
                .delete_paused_after
                .unwrap_or(self.policy.delete_paused_after),
        }
    }
}

/// A policy's seconds as configured: 0 is off.
fn policy_secs(key: &str, value: Option<i64>, err: &mut impl FnMut(String)) -> Option<Option<u32>> {
    let v = whole(
        key,
        value,
        0..=i64::from(u32::MAX),
        " seconds (0 is off)",
        err,
    )?;
    Some(u32::try_from(v).ok().filter(|s| *s > 0))
}

/// The overrides of the `[[specs]]` entry at `at` (`specs[2]`).
pub(super) fn overrides(
    at: &str,
    raw: &PolicyFile,
    err: &mut impl FnMut(String),
) -> PolicyOverrides {
    PolicyOverrides {
        idle_pause: policy_secs(&format!("{at}.idle_pause"), raw.idle_pause, err),
        max_running: policy_secs(&format!("{at}.max_running"), raw.max_running, err),
        delete_paused_after: policy_secs(
            &format!("{at}.delete_paused_after"),
            raw.delete_paused_after,
            err,
        ),
    }
}

pub(super) fn validate(raw: LifecycleFile, err: &mut impl FnMut(String)) -> LifecycleConfig {
    let written = PolicyFile {
        idle_pause: raw.idle_pause,
        max_running: raw.max_running,
        delete_paused_after: raw.delete_paused_after,
    };
    let policy = overrides("lifecycle", &written, err);
    let secs = |key: &str, value, default: u32, err: &mut dyn FnMut(String)| {
        let mut e = |m| err(m);
        whole(key, value, 0..=i64::from(u32::MAX), " seconds", &mut e)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(default)
    };
    LifecycleConfig {
        policy: Policy {
            idle_pause: policy.idle_pause.flatten(),
            max_running: policy.max_running.flatten(),
            delete_paused_after: policy.delete_paused_after.flatten(),
        },
        interval: seconds("lifecycle.interval", raw.interval, INTERVAL, err),
        wake_on_request: raw.wake_on_request.unwrap_or(false),
        teardown_grace_secs: secs(
            "lifecycle.teardown_grace",
            raw.teardown_grace,
            TEARDOWN_GRACE_SECS,
            err,
        ),
        history_retention_secs: secs(
            "lifecycle.history_retention",
            raw.history_retention,
            HISTORY_RETENTION_SECS,
            err,
        ),
    }
}
