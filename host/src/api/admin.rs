//! `/admin`: operator actions, for admin callers only.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Admin;
use super::error::{ApiError, ErrorBody};
use crate::cluster::ReplicaInfo;
use crate::plugin::{CONTRACT_VERSION, LoadedPlugin, Refusal, Reload, ReloadError, Trigger};

/// A sandbox that could not be synced or repaired, and why.
#[derive(Serialize, ToSchema)]
pub struct Failure {
    sandbox_id: String,
    reason: String,
}

/// What one poll cycle did.
#[derive(Serialize, ToSchema)]
pub struct PollJson {
    /// Running sandboxes whose agent servers were asked.
    sandboxes: u32,
    conversations: u32,
    /// Events stored for the first time.
    new_events: u32,
    /// Requests made to agent servers.
    requests: u32,
    failures: Vec<Failure>,
    millis: u64,
}

/// Run a poll cycle now (after the one running, if any).
#[utoipa::path(
    post, path = "/admin/sync/poll", operation_id = "admin_poll", tag = "admin",
    responses((status = 200, description = "What the cycle did", body = PollJson)),
)]
pub async fn poll(State(app): State<Arc<AppState>>, _: Admin) -> Result<Json<PollJson>, ApiError> {
    let (s, millis) = app.poller.cycle().await?;
    Ok(Json(PollJson {
        sandboxes: s.sandboxes,
        conversations: s.conversations,
        new_events: s.new_events,
        requests: s.requests,
        failures: s
            .failures
            .into_iter()
            .map(|f| Failure {
                sandbox_id: f.sandbox_id,
                reason: f.reason,
            })
            .collect(),
        millis,
    }))
}

/// What one reconciliation pass found and did.
#[derive(Serialize, ToSchema)]
pub struct ReconcileJson {
    /// Runtimes the runtime API listed.
    runtimes: u32,
    /// Sandbox records in the store.
    records: u32,
    /// Listed runtimes that no record claims.
    orphans: u32,
    stopped: u32,
    adopted: u32,
    /// Starts left half-way whose runtime exists: completed.
    completed: u32,
    /// Starts left half-way that never reached the runtime: removed.
    removed: u32,
    failures: Vec<Failure>,
    millis: u64,
}

/// Compare the runtime's `/list` with the store now, and repair.
#[utoipa::path(
    post, path = "/admin/reconcile", operation_id = "admin_reconcile", tag = "admin",
    responses(
        (status = 200, description = "What the pass found and did", body = ReconcileJson),
        (status = 502, description = "The runtime API could not be asked", body = ErrorBody),
    ),
)]
pub async fn reconcile(
    State(app): State<Arc<AppState>>,
    _: Admin,
) -> Result<Json<ReconcileJson>, ApiError> {
    let (s, millis) = app.reconciler.pass().await?;
    Ok(Json(ReconcileJson {
        runtimes: s.runtimes,
        records: s.records,
        orphans: s.orphans,
        stopped: s.stopped,
        adopted: s.adopted,
        completed: s.completed,
        removed: s.removed,
        failures: s
            .failures
            .into_iter()
            .map(|(sandbox_id, reason)| Failure { sandbox_id, reason })
            .collect(),
        millis,
    }))
}

/// What one lifecycle policy pass found and did.
#[derive(Serialize, ToSchema)]
pub struct LifecyclePassJson {
    /// Sandboxes looked at.
    sandboxes: u32,
    /// Status changes the runtime reported, recorded.
    observed: u32,
    paused: u32,
    deleted: u32,
    /// Old session keys whose teardown grace ended.
    keys_retired: u32,
    /// Histories of deleted sandboxes past their retention, removed.
    histories_purged: u32,
    /// Sandboxes started for the warm pools (`[[specs]] warm`).
    warm_started: u32,
    /// Warm sandboxes running, ready to be handed out by a start.
    warm_ready: u32,
    failures: Vec<Failure>,
    millis: u64,
}

/// Run a lifecycle policy pass now (after the one running, if any).
#[utoipa::path(
    post, path = "/admin/lifecycle/pass", operation_id = "admin_lifecycle_pass", tag = "admin",
    responses((status = 200, description = "What the pass did", body = LifecyclePassJson)),
)]
pub async fn lifecycle_pass(
    State(app): State<Arc<AppState>>,
    _: Admin,
) -> Result<Json<LifecyclePassJson>, ApiError> {
    let (s, millis) = app.lifecycle.pass().await?;
    Ok(Json(LifecyclePassJson {
        sandboxes: s.sandboxes,
        observed: s.observed,
        paused: s.paused,
        deleted: s.deleted,
        keys_retired: s.keys_retired,
        histories_purged: s.histories_purged,
        warm_started: s.warm_started,
        warm_ready: s.warm_ready,
        failures: s
            .failures
            .into_iter()
            .map(|(sandbox_id, reason)| Failure { sandbox_id, reason })
            .collect(),
        millis,
    }))
}

/// RFC 3339 with microseconds: swap times are compared with request times.
fn timestamp(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// A loaded plugin.
#[derive(Serialize, ToSchema)]
pub struct PluginJson {
    plugin_version: String,
    contract_version: String,
    /// Lower-case hex SHA-256 of the component.
    sha256: String,
    /// `embedded`, or the file it was read from.
    source: String,
    loaded_at: String,
    /// Milliseconds spent compiling it (or loading it compiled).
    compile_ms: f64,
    from_cache: bool,
}

impl From<&LoadedPlugin> for PluginJson {
    fn from(p: &LoadedPlugin) -> Self {
        PluginJson {
            plugin_version: p.plugin_version.to_string(),
            contract_version: p.contract_version.clone(),
            sha256: p.sha256.clone(),
            source: p.source.clone(),
            loaded_at: timestamp(p.loaded_at),
            compile_ms: p.compile_millis,
            from_cache: p.from_cache,
        }
    }
}

/// A reload that was refused.
#[derive(Serialize, ToSchema)]
pub struct RefusalJson {
    at: String,
    /// `watch`, `signal` or `api`.
    trigger: String,
    #[schema(required = true)]
    sha256: Option<String>,
    reason: String,
}

impl From<&Refusal> for RefusalJson {
    fn from(r: &Refusal) -> Self {
        RefusalJson {
            at: timestamp(r.at),
            trigger: r.trigger.as_str().to_owned(),
            sha256: r.sha256.clone(),
            reason: r.reason.clone(),
        }
    }
}

/// The running plugin and its history.
#[derive(Serialize, ToSchema)]
pub struct PluginStatusJson {
    plugin: PluginJson,
    host_contract_version: String,
    /// The file the plugin is reloaded from; null for the embedded one.
    #[schema(required = true)]
    file: Option<String>,
    watching: bool,
    swaps: u64,
    #[schema(required = true)]
    last_refused: Option<RefusalJson>,
}

/// The running plugin, how it is reloaded, swaps so far and the last refusal.
#[utoipa::path(
    get, path = "/admin/plugin", operation_id = "admin_plugin", tag = "admin",
    responses((status = 200, description = "The running plugin", body = PluginStatusJson)),
)]
pub async fn plugin(State(app): State<Arc<AppState>>, _: Admin) -> Json<PluginStatusJson> {
    let history = app.plugin.history();
    Json(PluginStatusJson {
        plugin: PluginJson::from(&*app.plugin.current()),
        host_contract_version: CONTRACT_VERSION.to_owned(),
        file: app.plugin.file().map(|p| p.display().to_string()),
        watching: app.watching,
        swaps: history.swaps,
        last_refused: history.last_refused.as_ref().map(RefusalJson::from),
    })
}

/// What a reload did.
#[derive(Serialize, ToSchema)]
pub struct ReloadJson {
    /// `swapped` or `unchanged`.
    outcome: String,
    /// The plugin swapped out, when one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<PluginJson>,
    /// The plugin serving now.
    plugin: PluginJson,
}

/// Load the plugin file now.
#[utoipa::path(
    post, path = "/admin/plugin/reload", operation_id = "admin_reload_plugin", tag = "admin",
    responses(
        (status = 200, description = "Swapped, or the file holds the running plugin", body = ReloadJson),
        (status = 409, description = "sandboxd runs its embedded plugin: there is no file", body = ErrorBody),
        (status = 422, description = "The new plugin was refused; the old one keeps serving", body = ErrorBody),
    ),
)]
pub async fn reload(
    State(app): State<Arc<AppState>>,
    _: Admin,
) -> Result<Json<ReloadJson>, ApiError> {
    match app.plugin.reload(Trigger::Api).await {
        Ok(Reload::Swapped { from, to }) => Ok(Json(ReloadJson {
            outcome: "swapped".into(),
            from: Some(PluginJson::from(&*from)),
            plugin: PluginJson::from(&*to),
        })),
        Ok(Reload::Unchanged(current)) => Ok(Json(ReloadJson {
            outcome: "unchanged".into(),
            from: None,
            plugin: PluginJson::from(&*current),
        })),
        Err(e @ ReloadError::NoFile) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        Err(e) => Err(ApiError::unprocessable(e.to_string())),
    }
}

/// The live replicas.
#[derive(Serialize, ToSchema)]
pub struct ReplicasJson {
    items: Vec<ReplicaInfo>,
}

/// The live replicas on the database (just this process with the embedded
/// store), with their plugin's versions, last heartbeat and share of the
/// background work.
#[utoipa::path(
    get, path = "/admin/replicas", operation_id = "admin_replicas", tag = "admin",
    responses((status = 200, description = "Oldest first", body = ReplicasJson)),
)]
pub async fn replicas(
    State(app): State<Arc<AppState>>,
    _: Admin,
) -> Result<Json<ReplicasJson>, ApiError> {
    let current = app.plugin.current();
    let items = app
        .cluster
        .replicas((&current.plugin_version, &current.contract_version))
        .await
        .map_err(|e| ApiError::internal(format!("cannot list the replicas: {e}")))?;
    Ok(Json(ReplicasJson { items }))
}
