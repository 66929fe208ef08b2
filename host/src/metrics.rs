//! Prometheus metrics: every family sandboxd exports, named, described and
//! recorded in this one module.
//!
//! The `metrics` facade records; `metrics-exporter-prometheus` renders the
//! Prometheus text format for `GET /metrics`. Until [`install`] runs (in unit
//! tests, in `plugin check`), recording is a no-op.
//!
//! Label values are bounded by construction, so the series count stays small
//! however much traffic there is: routes are templates (`/api/v1/sandboxes/{id}`,
//! never a raw path), runtime operations and outcomes come from fixed lists,
//! plugin exports are WIT names.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::bindings::lifecycle::PassSummary;
use crate::bindings::sandboxes::StatusCounts;

pub const HTTP_REQUESTS: &str = "sandboxd_http_requests_total";
pub const HTTP_DURATION: &str = "sandboxd_http_request_duration_seconds";
pub const RUNTIME_REQUESTS: &str = "sandboxd_runtime_requests_total";
pub const RUNTIME_DURATION: &str = "sandboxd_runtime_request_duration_seconds";
pub const PLUGIN_CALLS: &str = "sandboxd_plugin_calls_total";
pub const PLUGIN_INFO: &str = "sandboxd_plugin_info";
pub const SANDBOXES: &str = "sandboxd_sandboxes";
pub const POLL_CYCLES: &str = "sandboxd_poll_cycles_total";
pub const POLL_DURATION: &str = "sandboxd_poll_cycle_duration_seconds";
pub const EVENTS_STORED: &str = "sandboxd_events_stored_total";
pub const CALLBACK_DELIVERIES: &str = "sandboxd_callback_deliveries_total";
pub const STORAGE_COMMIT_DURATION: &str = "sandboxd_storage_commit_duration_seconds";
pub const LIFECYCLE_ACTIONS: &str = "sandboxd_lifecycle_actions_total";
pub const LIFECYCLE_DURATION: &str = "sandboxd_lifecycle_pass_duration_seconds";

/// Histogram buckets (seconds) for every `_seconds` family: from a cached read
/// (well under a millisecond) to a poll cycle of a large fleet (minutes).
const BUCKETS: [f64; 17] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0, 60.0, 300.0,
];

/// How often histogram windows are folded in (the exporter needs it done).
const UPKEEP: Duration = Duration::from_secs(5);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the process's recorder (once; later calls are no-ops) and start
/// its upkeep on the current tokio runtime.
pub fn install() -> anyhow::Result<()> {
    if HANDLE.get().is_some() {
        return Ok(());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)?
        .install_recorder()?;
    describe();
    // Families with fixed labels exist from the start, at zero: a scrape can
    // tell "none yet" from "not exported".
    for outcome in ["ok", "failed"] {
        counter!(POLL_CYCLES, "outcome" => outcome).absolute(0);
    }
    for via in ["poll", "webhook"] {
        counter!(EVENTS_STORED, "via" => via).absolute(0);
    }
    for outcome in ["delivered", "retry", "failed"] {
        counter!(CALLBACK_DELIVERIES, "outcome" => outcome).absolute(0);
    }
    let upkeep = handle.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(UPKEEP).await;
            upkeep.run_upkeep();
        }
    });
    // A race with another installer lost here would have failed above.
    let _ = HANDLE.set(handle);
    Ok(())
}

/// The Prometheus text exposition of every family (empty before [`install`]).
pub fn render() -> String {
    HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "API requests answered, by route template, method and status."
    );
    describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "Time to answer an API request (until the response head), by route template."
    );
    describe_counter!(
        RUNTIME_REQUESTS,
        "Requests to the runtime API, by operation and outcome."
    );
    describe_histogram!(
        RUNTIME_DURATION,
        metrics::Unit::Seconds,
        "Duration of runtime API requests, by operation."
    );
    describe_counter!(
        PLUGIN_CALLS,
        "Plugin calls, by export and outcome (ok, error, trap, deadline, budget)."
    );
    describe_gauge!(
        PLUGIN_INFO,
        "1 for the plugin serving now (0 for ones swapped out), by plugin and contract version."
    );
    describe_gauge!(
        SANDBOXES,
        "Stored sandboxes by status, as the last reconciliation pass observed them."
    );
    describe_counter!(
        POLL_CYCLES,
        "Poll cycles over the agent servers, by outcome."
    );
    describe_histogram!(
        POLL_DURATION,
        metrics::Unit::Seconds,
        "Duration of poll cycles."
    );
    describe_counter!(
        EVENTS_STORED,
        "Events stored for the first time, by how they came (poll or webhook)."
    );
    describe_counter!(
        CALLBACK_DELIVERIES,
        "Event callback delivery attempts, by outcome (delivered, retry, failed)."
    );
    describe_counter!(
        LIFECYCLE_ACTIONS,
        "What lifecycle policy passes did: paused, deleted, observed (a runtime change recorded), keys_retired, histories_purged, warm_started (a sandbox started for a warm pool), failed."
    );
    describe_histogram!(
        LIFECYCLE_DURATION,
        metrics::Unit::Seconds,
        "Duration of lifecycle policy passes."
    );
    describe_histogram!(
        STORAGE_COMMIT_DURATION,
        metrics::Unit::Seconds,
        "Time from handing a commit to the store until it is durable."
    );
}

/// What one lifecycle pass did, and how long it took.
pub fn lifecycle_pass(s: &PassSummary, elapsed: Duration) {
    let failed = u32::try_from(s.failures.len()).unwrap_or(u32::MAX);
    for (action, n) in [
        ("paused", s.paused),
        ("deleted", s.deleted),
        ("observed", s.observed),
        ("keys_retired", s.keys_retired),
        ("histories_purged", s.histories_purged),
        ("warm_started", s.warm_started),
        ("failed", failed),
    ] {
        counter!(LIFECYCLE_ACTIONS, "action" => action).increment(u64::from(n));
    }
    histogram!(LIFECYCLE_DURATION).record(elapsed.as_secs_f64());
}

pub fn http_request(route: String, method: &str, status: u16, elapsed: Duration) {
    counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method.to_owned(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_DURATION, "route" => route).record(elapsed.as_secs_f64());
}

pub fn runtime_request(op: &'static str, outcome: &'static str, elapsed: Duration) {
    counter!(RUNTIME_REQUESTS, "op" => op, "outcome" => outcome).increment(1);
    histogram!(RUNTIME_DURATION, "op" => op).record(elapsed.as_secs_f64());
}

pub fn plugin_call(export: &'static str, outcome: &'static str) {
    counter!(PLUGIN_CALLS, "export" => export, "outcome" => outcome).increment(1);
}

/// The plugin serving now is `current`; `previous` (if any) was swapped out.
pub fn plugin_serving(previous: Option<(&str, &str)>, current: (&str, &str)) {
    if let Some((plugin, contract)) = previous {
        gauge!(PLUGIN_INFO, "plugin_version" => plugin.to_owned(), "contract_version" => contract.to_owned())
            .set(0.0);
    }
    let (plugin, contract) = current;
    gauge!(PLUGIN_INFO, "plugin_version" => plugin.to_owned(), "contract_version" => contract.to_owned())
        .set(1.0);
}

pub fn sandboxes(counts: &StatusCounts) {
    for (status, n) in [
        ("STARTING", counts.starting),
        ("RUNNING", counts.running),
        ("PAUSED", counts.paused),
        ("ERROR", counts.error),
        ("MISSING", counts.missing),
    ] {
        gauge!(SANDBOXES, "status" => status).set(f64::from(n));
    }
}

pub fn poll_cycle(outcome: &'static str, elapsed: Duration) {
    counter!(POLL_CYCLES, "outcome" => outcome).increment(1);
    histogram!(POLL_DURATION).record(elapsed.as_secs_f64());
}

pub fn events_stored(via: &'static str, n: u32) {
    if n > 0 {
        counter!(EVENTS_STORED, "via" => via).increment(u64::from(n));
    }
}

pub fn callback_deliveries(delivered: u32, retried: u32, failed: u32) {
    for (outcome, n) in [
        ("delivered", delivered),
        ("retry", retried),
        ("failed", failed),
    ] {
        if n > 0 {
            counter!(CALLBACK_DELIVERIES, "outcome" => outcome).increment(u64::from(n));
        }
    }
}

pub fn storage_commit(elapsed: Duration) {
    histogram!(STORAGE_COMMIT_DURATION).record(elapsed.as_secs_f64());
}
