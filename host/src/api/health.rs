//! What operators and their platforms probe: liveness (`/healthz`), readiness
//! (`/readyz`), metrics (`/metrics`) and the API's own description
//! (`/openapi.json`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::auth::Admin;
use super::error::ErrorBody;

/// The service is up, and the plugin it runs.
#[derive(Serialize, ToSchema)]
pub struct HealthJson {
    /// Always `ok`.
    status: &'static str,
    plugin_version: String,
    contract_version: String,
    /// Lower-case hex SHA-256 of the plugin component.
    plugin_sha256: String,
    /// RFC 3339, when the running plugin was loaded.
    plugin_loaded_at: String,
}

/// Liveness: answers whenever the process serves.
#[utoipa::path(
    get, path = "/healthz", operation_id = "healthz", tag = "operations", security(()),
    responses((status = 200, description = "Alive", body = HealthJson)),
)]
pub async fn healthz(State(app): State<Arc<AppState>>) -> Json<HealthJson> {
    let plugin = app.plugin.current();
    Json(HealthJson {
        status: "ok",
        plugin_version: plugin.plugin_version.to_string(),
        contract_version: plugin.contract_version.clone(),
        plugin_sha256: plugin.sha256.clone(),
        plugin_loaded_at: chrono::DateTime::<chrono::Utc>::from(plugin.loaded_at)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// Each readiness condition: `ok`, or what is wrong.
#[derive(Serialize, ToSchema)]
pub struct Checks {
    plugin: String,
    store: String,
    reconciliation: String,
}

/// Whether this replica should get traffic.
#[derive(Serialize, ToSchema)]
pub struct ReadyJson {
    ready: bool,
    /// When not ready: what is missing.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    checks: Checks,
}

/// Readiness: 200 once the plugin is loaded, the store is open and the first
/// reconciliation with the runtime has finished; 503 naming what is missing
/// otherwise.
#[utoipa::path(
    get, path = "/readyz", operation_id = "readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "Ready", body = ReadyJson),
        (status = 503, description = "Not ready; `detail` names what is missing", body = ReadyJson),
    ),
)]
pub async fn readyz(State(app): State<Arc<AppState>>) -> (StatusCode, Json<ReadyJson>) {
    let ok = || "ok".to_owned();
    // A plugin is current from start-up on: a host only serves once one passed
    // every gate, and a swap replaces it atomically.
    let plugin = app.plugin.current();
    let plugin = format!(
        "ok ({} on contract {})",
        plugin.plugin_version, plugin.contract_version
    );
    let store = app
        .store
        .check()
        .await
        .map_or_else(|e| format!("the store cannot be read: {e:?}"), |()| ok());
    let reconciliation = match app.reconciler.first_pass() {
        Ok(()) => ok(),
        Err(why) => why,
    };
    let missing: Vec<&str> = [(&store, "store"), (&reconciliation, "reconciliation")]
        .into_iter()
        .filter(|(state, _)| state.as_str() != "ok")
        .map(|(state, _)| state.as_str())
        .collect();
    let ready = missing.is_empty();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(ReadyJson {
            ready,
            detail: (!ready).then(|| format!("not ready: {}", missing.join("; "))),
            checks: Checks {
                plugin,
                store,
                reconciliation,
            },
        }),
    )
}

/// Metrics in the Prometheus text format (an admin key in `api-keys` mode).
#[utoipa::path(
    get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String),
        (status = 403, description = "Not an admin key", body = ErrorBody),
    ),
)]
pub async fn metrics(_: Admin) -> Response {
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::metrics::render(),
    )
        .into_response()
}
