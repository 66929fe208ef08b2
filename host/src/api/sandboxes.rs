//! `/api/v1/sandboxes`: each route parses its input, makes one plugin call and
//! shapes the answer. No rule of the service is decided here.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::extract::Id;
use super::json::{HistoryPageJson, SUCCESS, SandboxJson, SandboxPageJson, Success};
use super::params::{IdsParams, PageParams, Params, StartParams};

type Answer<T> = Result<Json<T>, ApiError>;

/// Sandboxes newest first.
#[utoipa::path(
    get, path = "/api/v1/sandboxes/search", operation_id = "search_sandboxes", tag = "sandboxes",
    params(PageParams),
    responses(
        (status = 200, description = "A page of the caller's sandboxes", body = SandboxPageJson),
        (status = 422, description = "A parameter is out of range", body = ErrorBody),
    ),
)]
pub async fn search(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Params(page): Params<PageParams>,
) -> Answer<SandboxPageJson> {
    let page = app
        .plugin
        .sandboxes(&caller)
        .search(page.page_id.as_deref(), page.limit)
        .await?;
    Ok(Json(SandboxPageJson {
        items: page.items.into_iter().map(SandboxJson::from).collect(),
        next_page_id: page.next_page_id,
    }))
}

/// Sandboxes by id, in the order asked; null for ids the caller has none of.
#[utoipa::path(
    get, path = "/api/v1/sandboxes", operation_id = "batch_get_sandboxes", tag = "sandboxes",
    params(IdsParams),
    responses(
        (status = 200, description = "One entry per id asked", body = Vec<Option<SandboxJson>>),
        (status = 400, description = "More than 100 ids", body = ErrorBody),
        (status = 422, description = "No id given, or one too long", body = ErrorBody),
    ),
)]
pub async fn batch_get(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Params(ids): Params<IdsParams>,
) -> Answer<Vec<Option<SandboxJson>>> {
    let found = app.plugin.sandboxes(&caller).batch_get(&ids.id).await?;
    Ok(Json(
        found
            .into_iter()
            .map(|s| s.map(SandboxJson::from))
            .collect(),
    ))
}

/// Start a sandbox.
#[utoipa::path(
    post, path = "/api/v1/sandboxes", operation_id = "start_sandbox", tag = "sandboxes",
    params(StartParams),
    responses(
        (status = 200, description = "The started sandbox", body = SandboxJson),
        (status = 400, description = "Unknown spec, or an invalid sandbox id", body = ErrorBody),
        (status = 409, description = "The sandbox id is taken", body = ErrorBody),
        (status = 422, description = "A parameter is too long", body = ErrorBody),
        (status = 502, description = "The runtime API failed; the detail names the cause", body = ErrorBody),
    ),
)]
pub async fn start(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Params(start): Params<StartParams>,
) -> Answer<SandboxJson> {
    let info = app
        .plugin
        .sandboxes(&caller)
        .start(
            start.sandbox_spec_id.as_deref(),
            start.sandbox_id.as_deref(),
        )
        .await;
    app.changes.sandboxes_changed();
    Ok(Json(info?.into()))
}

/// One sandbox, with its live status.
#[utoipa::path(
    get, path = "/api/v1/sandboxes/{id}", operation_id = "get_sandbox", tag = "sandboxes",
    params(("id" = String, Path, description = "The sandbox id")),
    responses(
        (status = 200, description = "The sandbox", body = SandboxJson),
        (status = 404, description = "No such sandbox (or another user's)", body = ErrorBody),
    ),
)]
pub async fn get(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> Answer<SandboxJson> {
    let info = app.plugin.sandboxes(&caller).get(&id).await?;
    Ok(Json(info.into()))
}

/// Revoke the sandbox's session key, stop its runtime, then forget the
/// sandbox (its history stays for `history_retention`). If the runtime cannot
/// be stopped, the sandbox is kept (its key revoked) and the answer says why:
/// 503 with `Retry-After` when trying again may work.
#[utoipa::path(
    delete, path = "/api/v1/sandboxes/{id}", operation_id = "delete_sandbox", tag = "sandboxes",
    params(("id" = String, Path, description = "The sandbox id")),
    responses(
        (status = 200, description = "Deleted", body = Success),
        (status = 404, description = "No such sandbox (or another user's)", body = ErrorBody),
        (status = 502, description = "The runtime could not stop it; the sandbox is kept", body = ErrorBody),
        (status = 503, description = "The runtime could not stop it yet (a timeout, a 5xx); the sandbox is kept with its key revoked; retry after `Retry-After` seconds", body = ErrorBody,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying"))),
    ),
)]
pub async fn delete(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> Answer<Success> {
    let deleted = app.plugin.sandboxes(&caller).delete(&id).await;
    app.changes.sandboxes_changed();
    deleted?;
    Ok(Json(SUCCESS))
}

/// Pause a sandbox. Its session key stops working for everything but the
/// agent server's final webhooks, and for those after `teardown_grace`.
#[utoipa::path(
    post, path = "/api/v1/sandboxes/{id}/pause", operation_id = "pause_sandbox", tag = "sandboxes",
    params(("id" = String, Path, description = "The sandbox id")),
    responses(
        (status = 200, description = "Paused", body = Success),
        (status = 404, description = "No such sandbox (or another user's), or no runtime", body = ErrorBody),
        (status = 502, description = "The runtime API failed", body = ErrorBody),
    ),
)]
pub async fn pause(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> Answer<Success> {
    let paused = app.plugin.sandboxes(&caller).pause(&id).await;
    app.changes.sandboxes_changed();
    paused?;
    Ok(Json(SUCCESS))
}

/// Resume a paused sandbox (within the per-user limit of running ones).
#[utoipa::path(
    post, path = "/api/v1/sandboxes/{id}/resume", operation_id = "resume_sandbox", tag = "sandboxes",
    params(("id" = String, Path, description = "The sandbox id")),
    responses(
        (status = 200, description = "Resumed", body = Success),
        (status = 404, description = "No such sandbox (or another user's), or no runtime", body = ErrorBody),
        (status = 502, description = "The runtime API failed", body = ErrorBody),
    ),
)]
pub async fn resume(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
) -> Answer<Success> {
    let resumed = app.plugin.sandboxes(&caller).resume(&id).await;
    app.changes.sandboxes_changed();
    resumed?;
    Ok(Json(SUCCESS))
}

/// The sandbox's status changes, newest first, each with its time and cause;
/// kept for `history_retention` after the sandbox is deleted.
#[utoipa::path(
    get, path = "/api/v1/sandboxes/{id}/history", operation_id = "sandbox_history", tag = "sandboxes",
    params(("id" = String, Path, description = "The sandbox id"), PageParams),
    responses(
        (status = 200, description = "A page of the sandbox's history", body = HistoryPageJson),
        (status = 404, description = "No such sandbox or history (or another user's)", body = ErrorBody),
        (status = 422, description = "A parameter is out of range", body = ErrorBody),
    ),
)]
pub async fn history(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Id(id): Id,
    Params(page): Params<PageParams>,
) -> Answer<HistoryPageJson> {
    let page = app
        .plugin
        .lifecycle(&caller)
        .history(&id, page.page_id.as_deref(), page.limit)
        .await?;
    Ok(Json(page.into()))
}
