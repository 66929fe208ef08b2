//! `[runtime]`: the runtime API that starts sandboxes (none: the embedded local
//! runtime), what it is asked for, and how often sandboxd polls and reconciles.

use serde::Deserialize;

use super::{Secret, choice, name, parse_base_url, whole};

/// Upstream default.
const RESOURCE_FACTOR: u8 = 1;
/// Upstream default.
const START_SANDBOX_TIMEOUT_SECS: u32 = 120;
/// Upstream default.
const MAX_NUM_SANDBOXES: u32 = 10;
/// Upstream default.
const POLLING_INTERVAL_SECS: u32 = 15;
/// Between reconciliation passes: a runtime left without a record (or a record
/// left half-way) is repaired within a minute, for one `GET /list` a minute.
const RECONCILE_INTERVAL_SECS: u32 = 60;

/// `[runtime]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeFile {
    pub api_url: Option<String>,
    pub api_key: Option<String>,
    pub resource_factor: Option<i64>,
    pub runtime_class: Option<String>,
    pub start_sandbox_timeout: Option<i64>,
    pub max_num_sandboxes: Option<i64>,
    pub polling_interval: Option<i64>,
    /// What to do with runtimes no sandbox record claims: stop, adopt, keep.
    pub orphans: Option<String>,
    /// Seconds between reconciliation passes.
    pub reconcile_interval: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Without a trailing slash; none: the embedded local runtime.
    pub api_url: Option<String>,
    /// Empty with the embedded local runtime (it makes its own).
    pub api_key: Secret,
    /// 1, 2, 4 or 8.
    pub resource_factor: u8,
    pub runtime_class: RuntimeClass,
    pub start_sandbox_timeout_secs: u32,
    pub max_num_sandboxes: u32,
    /// Seconds between poll cycles of the agent servers.
    pub polling_interval_secs: u32,
    pub orphans: Orphans,
    pub reconcile_interval_secs: u32,
}

/// What reconciliation does with a runtime no sandbox record claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Orphans {
    /// The default: a runtime nobody can reach through the API only costs.
    #[default]
    Stop,
    Adopt,
    Keep,
}

/// The runtime class sandboxes are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeClass {
    #[default]
    Gvisor,
    Sysbox,
}

pub(super) fn validate(rt: RuntimeFile, err: &mut impl FnMut(String)) -> RuntimeConfig {
    let api_url = rt
        .api_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            parse_base_url(u).unwrap_or_else(|e| {
                err(format!("{}: {e}", name("runtime.api_url")));
                String::new()
            })
        });
    let api_key = Secret::new(rt.api_key.unwrap_or_default());
    if api_url.is_some() && api_key.is_empty() {
        err(format!(
            "{}: required with a remote runtime API",
            name("runtime.api_key")
        ));
    }
    let resource_factor = match rt.resource_factor.unwrap_or(i64::from(RESOURCE_FACTOR)) {
        v @ (1 | 2 | 4 | 8) => v as u8,
        v => {
            err(format!(
                "{}: {v} is not allowed; use 1, 2, 4 or 8",
                name("runtime.resource_factor")
            ));
            RESOURCE_FACTOR
        }
    };
    let runtime_class: RuntimeClass =
        choice("runtime.runtime_class", rt.runtime_class.as_deref(), err).unwrap_or_default();
    let orphans: Orphans =
        choice("runtime.orphans", rt.orphans.as_deref(), err).unwrap_or_default();
    // From one second (or sandbox) up, as far as a u32 goes.
    let mut positive = |key: &str, value: Option<i64>, default: u32| -> u32 {
        whole(key, value, 1..=i64::from(u32::MAX), "", err).map_or(default, |v| v as u32)
    };
    RuntimeConfig {
        api_url,
        api_key,
        resource_factor,
        runtime_class,
        start_sandbox_timeout_secs: positive(
            "runtime.start_sandbox_timeout",
            rt.start_sandbox_timeout,
            START_SANDBOX_TIMEOUT_SECS,
        ),
        max_num_sandboxes: positive(
            "runtime.max_num_sandboxes",
            rt.max_num_sandboxes,
            MAX_NUM_SANDBOXES,
        ),
        polling_interval_secs: positive(
            "runtime.polling_interval",
            rt.polling_interval,
            POLLING_INTERVAL_SECS,
        ),
        orphans,
        reconcile_interval_secs: positive(
            "runtime.reconcile_interval",
            rt.reconcile_interval,
            RECONCILE_INTERVAL_SECS,
        ),
    }
}
