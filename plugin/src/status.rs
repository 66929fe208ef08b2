//! Runtime state → sandbox status.
//!
//! The runtime API's `status` is the source of truth. `pod_status` is consulted only
//! when `status` is absent (an older generation of the runtime API reported only
//! that). Anything unknown is `MISSING`: the app must never be told a sandbox runs
//! on the strength of a value we do not understand.
//!
//! One rule the upstream service declares but never applies is applied here: a
//! runtime still `starting` more than `start_sandbox_timeout` after it was started
//! (or resumed) is reported `ERROR`, with a detail saying so.

use crate::model::Status;
use crate::runtime::Runtime;

/// The status of a sandbox whose runtime answered `runtime` (None: no runtime).
pub fn from_runtime(runtime: Option<&Runtime>) -> Status {
    let Some(runtime) = runtime else {
        return Status::Missing;
    };
    match runtime.status.as_deref() {
        Some(status) => from_status(status).unwrap_or(Status::Missing),
        None => runtime
            .pod_status
            .as_deref()
            .and_then(from_pod_status)
            .unwrap_or(Status::Missing),
    }
}

/// Why a runtime the API did describe reads as `MISSING`, for `status_detail`
/// (none when the status is understood, or when there is no runtime at all).
pub fn unknown_status_detail(runtime: Option<&Runtime>) -> Option<String> {
    let runtime = runtime?;
    if from_runtime(Some(runtime)) != Status::Missing {
        return None;
    }
    Some(
        match (runtime.status.as_deref(), runtime.pod_status.as_deref()) {
            (Some(s), _) if s.eq_ignore_ascii_case("stopped") => return None,
            (Some(s), _) => {
                format!("the runtime API reported status '{s}', which sandboxd does not know")
            }
            (None, Some(p)) => format!("the runtime API reported pod_status '{p}' and no status"),
            (None, None) => "the runtime API described the runtime without a status".to_owned(),
        },
    )
}

/// The runtime API's `status`, in any case.
fn from_status(status: &str) -> Option<Status> {
    Some(match status.to_ascii_lowercase().as_str() {
        "running" => Status::Running,
        "paused" => Status::Paused,
        "stopped" => Status::Missing,
        // `provisioning` is what some runtime backends say before `starting`.
        "starting" | "provisioning" => Status::Starting,
        "error" => Status::Error,
        _ => return None,
    })
}

/// The Kubernetes pod phase an older runtime API reported.
fn from_pod_status(pod_status: &str) -> Option<Status> {
    Some(match pod_status.to_ascii_lowercase().as_str() {
        "ready" => Status::Running,
        "pending" | "running" => Status::Starting,
        "failed" | "unknown" | "crashloopbackoff" => Status::Error,
        _ => return None,
    })
}

/// Turn a `STARTING` that has lasted longer than `timeout_secs` since
/// `started_at_us` into `ERROR`, with the reason; any other status passes through.
pub fn apply_start_timeout(
    status: Status,
    started_at_us: i64,
    now_us: i64,
    timeout_secs: u32,
) -> (Status, Option<String>) {
    let waited_us = now_us.saturating_sub(started_at_us);
    if status == Status::Starting && waited_us > i64::from(timeout_secs) * 1_000_000 {
        let detail = format!(
            "the runtime has been starting for {}s, longer than start_sandbox_timeout ({}s)",
            waited_us / 1_000_000,
            timeout_secs
        );
        (Status::Error, Some(detail))
    } else {
        (status, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(status: Option<&str>, pod: Option<&str>) -> Runtime {
        Runtime {
            status: status.map(str::to_owned),
            pod_status: pod.map(str::to_owned),
            ..Runtime::default()
        }
    }

    #[test]
    fn maps_every_runtime_status_in_any_case() {
        for (raw, want) in [
            ("running", Status::Running),
            ("RUNNING", Status::Running),
            ("Paused", Status::Paused),
            ("stopped", Status::Missing),
            ("starting", Status::Starting),
            ("provisioning", Status::Starting),
            ("error", Status::Error),
            ("ERROR", Status::Error),
        ] {
            assert_eq!(from_runtime(Some(&runtime(Some(raw), None))), want, "{raw}");
        }
    }

    #[test]
    fn a_status_that_is_not_understood_is_explained() {
        assert_eq!(unknown_status_detail(None), None);
        assert_eq!(
            unknown_status_detail(Some(&runtime(Some("running"), None))),
            None
        );
        assert_eq!(
            unknown_status_detail(Some(&runtime(Some("stopped"), None))),
            None
        );
        assert!(
            unknown_status_detail(Some(&runtime(Some("weird"), None)))
                .is_some_and(|d| d.contains("'weird'"))
        );
        assert!(
            unknown_status_detail(Some(&runtime(None, None)))
                .is_some_and(|d| d.contains("without a status"))
        );
    }

    #[test]
    fn no_runtime_empty_or_unknown_status_is_missing() {
        assert_eq!(from_runtime(None), Status::Missing);
        assert_eq!(
            from_runtime(Some(&runtime(Some(""), None))),
            Status::Missing
        );
        assert_eq!(
            from_runtime(Some(&runtime(Some("weird"), None))),
            Status::Missing
        );
        assert_eq!(from_runtime(Some(&runtime(None, None))), Status::Missing);
    }

    #[test]
    fn status_wins_over_pod_status() {
        let rt = runtime(Some("paused"), Some("ready"));
        assert_eq!(from_runtime(Some(&rt)), Status::Paused);
        // Even an unknown status is not overridden by the pod.
        let rt = runtime(Some("weird"), Some("ready"));
        assert_eq!(from_runtime(Some(&rt)), Status::Missing);
    }

    #[test]
    fn pod_status_is_the_fallback_when_status_is_absent() {
        for (pod, want) in [
            ("ready", Status::Running),
            ("Pending", Status::Starting),
            ("running", Status::Starting),
            ("failed", Status::Error),
            ("unknown", Status::Error),
            ("CrashLoopBackOff", Status::Error),
            ("something-else", Status::Missing),
        ] {
            assert_eq!(from_runtime(Some(&runtime(None, Some(pod)))), want, "{pod}");
        }
    }

    #[test]
    fn starting_past_the_timeout_is_an_error_with_a_reason() {
        let (s, d) = apply_start_timeout(Status::Starting, 0, 121_000_000, 120);
        assert_eq!(s, Status::Error);
        let detail = d.unwrap_or_default();
        assert!(
            detail.contains("121s") && detail.contains("120s"),
            "{detail}"
        );
    }

    #[test]
    fn starting_within_the_timeout_or_other_statuses_pass_through() {
        assert_eq!(
            apply_start_timeout(Status::Starting, 0, 120_000_000, 120),
            (Status::Starting, None)
        );
        assert_eq!(
            apply_start_timeout(Status::Running, 0, 999_000_000, 120),
            (Status::Running, None)
        );
        // A clock that went backwards does not turn anything into an error.
        assert_eq!(
            apply_start_timeout(Status::Starting, 10, 0, 0),
            (Status::Starting, None)
        );
    }
}
