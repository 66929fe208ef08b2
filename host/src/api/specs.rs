//! `/api/v1/sandbox-specs`.

use hyper::Response;

use super::auth::Caller;
use super::body::Body;
use super::error::ApiError;
use super::params::Query;
use super::{AppState, call, json};

type Answer = Result<Response<Body>, ApiError>;

/// `GET /sandbox-specs/search?page_id&limit`
pub async fn search(state: &AppState, caller: &Caller, query: &Query) -> Answer {
    let limit = query.limit()?;
    let page_id = query.page_id()?;
    let page = call(state, caller, move |p, mut store| async move {
        p.sandboxd_plugin_specs()
            .call_search(&mut store, page_id.as_deref(), limit)
            .await
    })
    .await?;
    Ok(json::ok(&json::spec_page(&page)))
}

/// `GET /sandbox-specs?id=a&id=b`
pub async fn batch_get(state: &AppState, caller: &Caller, query: &Query) -> Answer {
    let ids = query.ids("id")?;
    let found = call(state, caller, move |p, mut store| async move {
        p.sandboxd_plugin_specs()
            .call_batch_get(&mut store, &ids)
            .await
    })
    .await?;
    let items: Vec<Option<json::SpecJson<'_>>> = found
        .iter()
        .map(|s| s.as_ref().map(json::SpecJson::from))
        .collect();
    Ok(json::ok(&items))
}
