//! `/admin`: operator actions, for admin callers only.

use std::time::SystemTime;

use hyper::{Response, StatusCode};

use super::body::Body;
use super::error::ApiError;
use super::{AppState, json};
use crate::plugin::{CONTRACT_VERSION, LoadedPlugin, Refusal, Reload, ReloadError, Trigger};

/// `POST /admin/sync/poll`: run a poll cycle now (after the one running, if any)
/// and answer its summary.
pub async fn poll(state: &AppState) -> Result<Response<Body>, ApiError> {
    let (summary, millis) = state.poller.cycle().await?;
    Ok(json::ok(&serde_json::json!({
        "sandboxes": summary.sandboxes,
        "conversations": summary.conversations,
        "new_events": summary.new_events,
        "requests": summary.requests,
        "failures": summary.failures.iter().map(|f| serde_json::json!({"sandbox_id": f.sandbox_id, "reason": f.reason})).collect::<Vec<_>>(),
        "millis": millis,
    })))
}

/// `POST /admin/reconcile`: run a reconciliation pass now (after the one
/// running, if any) and answer what it found and did.
pub async fn reconcile(state: &AppState) -> Result<Response<Body>, ApiError> {
    let (s, millis) = state.reconciler.pass().await?;
    Ok(json::ok(&serde_json::json!({
        "runtimes": s.runtimes,
        "records": s.records,
        "orphans": s.orphans,
        "stopped": s.stopped,
        "adopted": s.adopted,
        "completed": s.completed,
        "removed": s.removed,
        "failures": s.failures.iter().map(|(id, reason)| serde_json::json!({"sandbox_id": id, "reason": reason})).collect::<Vec<_>>(),
        "millis": millis,
    })))
}

/// RFC 3339 with microseconds: swap times are compared with request times.
fn timestamp(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn plugin_json(p: &LoadedPlugin) -> serde_json::Value {
    serde_json::json!({
        "plugin_version": &*p.plugin_version,
        "contract_version": p.contract_version,
        "sha256": p.sha256,
        "source": p.source,
        "loaded_at": timestamp(p.loaded_at),
        "compile_ms": p.compile_millis,
        "from_cache": p.from_cache,
    })
}

fn refusal_json(r: &Refusal) -> serde_json::Value {
    serde_json::json!({
        "at": timestamp(r.at),
        "trigger": r.trigger.as_str(),
        "sha256": r.sha256,
        "reason": r.reason,
    })
}

/// `GET /admin/plugin`: the running plugin, how it is reloaded, swaps so far
/// and the last refused attempt.
pub fn plugin(state: &AppState) -> Response<Body> {
    let history = state.plugin.history();
    json::ok(&serde_json::json!({
        "plugin": plugin_json(&state.plugin.current()),
        "host_contract_version": CONTRACT_VERSION,
        "file": state.plugin.file().map(|p| p.display().to_string()),
        "watching": state.watching,
        "swaps": history.swaps,
        "last_refused": history.last_refused.as_ref().map(refusal_json),
    }))
}

/// `POST /admin/plugin/reload`: load the plugin file now. 200 with what
/// happened; 422 with the reason when the new plugin is refused (the old one
/// keeps serving); 409 when sandboxd runs its embedded plugin.
pub async fn reload(state: &AppState) -> Result<Response<Body>, ApiError> {
    match state.plugin.reload(Trigger::Api).await {
        Ok(Reload::Swapped { from, to }) => Ok(json::ok(&serde_json::json!({
            "outcome": "swapped",
            "from": plugin_json(&from),
            "plugin": plugin_json(&to),
        }))),
        Ok(Reload::Unchanged(current)) => Ok(json::ok(&serde_json::json!({
            "outcome": "unchanged",
            "plugin": plugin_json(&current),
        }))),
        Err(e @ ReloadError::NoFile) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        Err(e) => Err(ApiError::unprocessable(e.to_string())),
    }
}
