//! `/api/v1/sandboxes`: each route parses its input, makes one plugin call and
//! shapes the answer. No rule of the service is decided here.

use hyper::Response;

use super::auth::Caller;
use super::body::Body;
use super::error::ApiError;
use super::params::Query;
use super::{AppState, call, json};

type Answer = Result<Response<Body>, ApiError>;

/// `GET /sandboxes/search?page_id&limit`
pub async fn search(state: &AppState, caller: &Caller, query: &Query) -> Answer {
    let limit = query.limit()?;
    let page_id = query.page_id()?;
    let page = call(state, caller, move |p, mut store| async move {
        p.sandboxd_plugin_sandboxes()
            .call_search(&mut store, page_id.as_deref(), limit)
            .await
    })
    .await?;
    Ok(json::ok(&json::sandbox_page(&page)))
}

/// `GET /sandboxes?id=a&id=b`
pub async fn batch_get(state: &AppState, caller: &Caller, query: &Query) -> Answer {
    let ids = query.ids("id")?;
    let found = call(state, caller, move |p, mut store| async move {
        p.sandboxd_plugin_sandboxes()
            .call_batch_get(&mut store, &ids)
            .await
    })
    .await?;
    let items: Vec<Option<json::SandboxJson<'_>>> = found
        .iter()
        .map(|s| s.as_ref().map(json::SandboxJson::from))
        .collect();
    Ok(json::ok(&items))
}

/// `GET /sandboxes/{id}`
pub async fn get(state: &AppState, caller: &Caller, id: String) -> Answer {
    let info = call(state, caller, move |p, mut store| async move {
        p.sandboxd_plugin_sandboxes()
            .call_get(&mut store, &id)
            .await
    })
    .await?;
    Ok(json::ok(&json::SandboxJson::from(&info)))
}

/// `POST /sandboxes?sandbox_spec_id=&sandbox_id=`
pub async fn start(state: &AppState, caller: &Caller, query: &Query) -> Answer {
    let spec_id = query.optional("sandbox_spec_id")?;
    let sandbox_id = query.optional("sandbox_id")?;
    let info = call(state, caller, move |p, mut store| async move {
        p.sandboxd_plugin_sandboxes()
            .call_start(&mut store, spec_id.as_deref(), sandbox_id.as_deref())
            .await
    })
    .await?;
    Ok(json::ok(&json::SandboxJson::from(&info)))
}

/// The three actions on one sandbox that answer `{"success": true}`.
#[derive(Debug, Clone, Copy)]
pub enum Action {
    Pause,
    Resume,
    Delete,
}

/// `POST /sandboxes/{id}/pause`, `POST /sandboxes/{id}/resume`, `DELETE /sandboxes/{id}`
pub async fn act(state: &AppState, caller: &Caller, id: String, action: Action) -> Answer {
    call(state, caller, move |p, mut store| async move {
        let sandboxes = p.sandboxd_plugin_sandboxes();
        match action {
            Action::Pause => sandboxes.call_pause(&mut store, &id).await,
            Action::Resume => sandboxes.call_resume(&mut store, &id).await,
            Action::Delete => sandboxes.call_delete(&mut store, &id).await,
        }
    })
    .await?;
    Ok(json::success())
}
