//! `[plugin]`: which plugin runs (the embedded one, or a file), and the limits
//! of its calls: time, memory, instances at once, where its requests may go, and
//! how much one call may send and write.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{name, seconds, whole};

/// A plugin call that takes longer is cut off. Generous, because a start waits
/// for the runtime API, which may take tens of seconds under load.
const CALL_TIMEOUT: Duration = Duration::from_secs(90);

/// A poll cycle that takes longer is cut off (the next one starts over from the
/// stored cursors, so nothing is lost).
const POLL_TIMEOUT: Duration = Duration::from_secs(600);

/// Linear memory one plugin call may use. The plugin needs a few MiB for a page
/// of 100 sandboxes; this leaves room for large answers without letting a
/// runaway call eat the machine.
const MEMORY_LIMIT_BYTES: usize = 64 << 20;

/// Plugin calls running at once (each holds one instance slot of the pooling
/// allocator); more wait for a slot rather than fail.
const MAX_INSTANCES: u32 = 256;

/// A plugin file that changes is loaded again, so a deployment updates it
/// without a restart.
const WATCH: bool = true;

/// Outbound requests one API call may send: an API call asks the runtime a few
/// times; a thousand means a plugin in a loop.
const CALL_HTTP_REQUESTS: u64 = 1_000;
/// Outbound requests one poll cycle or delivery run may send: a few per
/// conversation of every running sandbox, with room for very large fleets.
const POLL_HTTP_REQUESTS: u64 = 1_000_000;
/// Bytes one API call may write to storage (keys and values of its puts).
const CALL_WRITE_BYTES: u64 = 64 << 20;
/// Bytes one poll cycle may write: a first sync of a large fleet stores every
/// event it finds.
const POLL_WRITE_BYTES: u64 = 4 << 30;

/// `[plugin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginFile {
    pub path: Option<PathBuf>,
    /// Seconds.
    pub call_timeout: Option<f64>,
    pub memory_limit_mb: Option<i64>,
    pub max_instances: Option<i64>,
    /// Seconds a poll cycle may take.
    pub poll_timeout: Option<f64>,
    /// Reload the plugin when its file changes.
    pub watch: Option<bool>,
    /// Where the plugin's requests may go (see `crate::egress`).
    pub allowed_hosts: Option<Vec<String>>,
    pub call_http_requests: Option<i64>,
    pub poll_http_requests: Option<i64>,
    pub call_write_mb: Option<i64>,
    pub poll_write_mb: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// A plugin to run instead of the embedded one.
    pub path: Option<PathBuf>,
    pub call_timeout: Duration,
    /// 1 MiB to 4 GiB.
    pub memory_limit_bytes: usize,
    /// 1 to 10000.
    pub max_instances: u32,
    pub poll_timeout: Duration,
    /// Reload the plugin when its file changes (with `path` only).
    pub watch: bool,
    pub allowed_hosts: Vec<crate::egress::Rule>,
    /// The budgets below are each at least 1.
    pub call_http_requests: u64,
    pub poll_http_requests: u64,
    pub call_write_bytes: u64,
    pub poll_write_bytes: u64,
}

pub(super) fn validate(raw: PluginFile, err: &mut impl FnMut(String)) -> PluginConfig {
    let call_timeout = seconds("plugin.call_timeout", raw.call_timeout, CALL_TIMEOUT, err);
    let memory_limit_bytes = whole(
        "plugin.memory_limit_mb",
        raw.memory_limit_mb,
        1..=4096,
        "",
        err,
    )
    .map_or(MEMORY_LIMIT_BYTES, |mb| (mb as usize) << 20);
    let max_instances = whole(
        "plugin.max_instances",
        raw.max_instances,
        1..=10_000,
        "",
        err,
    )
    .map_or(MAX_INSTANCES, |n| n as u32);
    let allowed_hosts = match raw.allowed_hosts {
        None => crate::egress::DEFAULT_ALLOWED_HOSTS
            .iter()
            .filter_map(|r| crate::egress::Rule::parse(r).ok())
            .collect(),
        Some(list) => list
            .iter()
            .filter_map(|r| {
                crate::egress::Rule::parse(r)
                    .map_err(|e| err(format!("{}: {e}", name("plugin.allowed_hosts"))))
                    .ok()
            })
            .collect(),
    };
    // A budget: from 1 up, in `unit`s (saturating: a huge one is no limit).
    let mut budget = |key: &str, value: Option<i64>, default: u64, unit: u64| -> u64 {
        whole(key, value, 1..=i64::MAX, "", err)
            .map_or(default, |v| (v as u64).saturating_mul(unit))
    };
    let call_http_requests = budget(
        "plugin.call_http_requests",
        raw.call_http_requests,
        CALL_HTTP_REQUESTS,
        1,
    );
    let poll_http_requests = budget(
        "plugin.poll_http_requests",
        raw.poll_http_requests,
        POLL_HTTP_REQUESTS,
        1,
    );
    let call_write_bytes = budget(
        "plugin.call_write_mb",
        raw.call_write_mb,
        CALL_WRITE_BYTES,
        1 << 20,
    );
    let poll_write_bytes = budget(
        "plugin.poll_write_mb",
        raw.poll_write_mb,
        POLL_WRITE_BYTES,
        1 << 20,
    );
    PluginConfig {
        path: raw.path,
        call_timeout,
        memory_limit_bytes,
        max_instances,
        poll_timeout: seconds("plugin.poll_timeout", raw.poll_timeout, POLL_TIMEOUT, err),
        watch: raw.watch.unwrap_or(WATCH),
        allowed_hosts,
        call_http_requests,
        poll_http_requests,
        call_write_bytes,
        poll_write_bytes,
    }
}
