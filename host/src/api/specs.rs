//! `/api/v1/sandbox-specs`: the templates sandboxes start from.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::auth::Caller;
use super::error::{ApiError, ErrorBody};
use super::json::{SpecJson, SpecPageJson};
use super::params::{IdsParams, PageParams, Params};

/// Specs in configured order, the default first.
#[utoipa::path(
    get, path = "/api/v1/sandbox-specs/search", operation_id = "search_sandbox_specs", tag = "sandbox-specs",
    params(PageParams),
    responses(
        (status = 200, description = "A page of specs", body = SpecPageJson),
        (status = 422, description = "A parameter is out of range", body = ErrorBody),
    ),
)]
pub async fn search(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Params(page): Params<PageParams>,
) -> Result<Json<SpecPageJson>, ApiError> {
    let page = app
        .plugin
        .specs(&caller)
        .search(page.page_id.as_deref(), page.limit)
        .await?;
    Ok(Json(SpecPageJson {
        items: page.items.into_iter().map(SpecJson::from).collect(),
        next_page_id: page.next_page_id,
    }))
}

/// Specs by id, in the order asked; null for unknown ids.
#[utoipa::path(
    get, path = "/api/v1/sandbox-specs", operation_id = "batch_get_sandbox_specs", tag = "sandbox-specs",
    params(IdsParams),
    responses(
        (status = 200, description = "One entry per id asked", body = Vec<Option<SpecJson>>),
        (status = 400, description = "More than 100 ids", body = ErrorBody),
        (status = 422, description = "No id given, or one too long", body = ErrorBody),
    ),
)]
pub async fn batch_get(
    State(app): State<Arc<AppState>>,
    caller: Caller,
    Params(ids): Params<IdsParams>,
) -> Result<Json<Vec<Option<SpecJson>>>, ApiError> {
    let found = app.plugin.specs(&caller).batch_get(&ids.id).await?;
    Ok(Json(
        found.into_iter().map(|s| s.map(SpecJson::from)).collect(),
    ))
}
