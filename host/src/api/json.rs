//! The app-facing JSON shapes (`SandboxInfo`, `SandboxPage`, `SandboxSpecInfo`),
//! field for field and in the upstream service's order.

use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};

use super::body::Body;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use crate::bindings::types::{
    ExposedUrl, SandboxInfo, SandboxPage, SandboxSpec, SandboxStatus, SpecPage,
};

#[derive(Serialize)]
pub struct SandboxJson<'a> {
    id: &'a str,
    created_by_user_id: Option<&'a str>,
    sandbox_spec_id: &'a str,
    status: &'static str,
    session_api_key: Option<&'a str>,
    exposed_urls: Option<Vec<ExposedUrlJson<'a>>>,
    created_at: &'a str,
    status_detail: Option<&'a str>,
}

#[derive(Serialize)]
struct ExposedUrlJson<'a> {
    name: &'a str,
    url: &'a str,
    port: u16,
}

pub fn status_name(status: SandboxStatus) -> &'static str {
    match status {
        SandboxStatus::Starting => "STARTING",
        SandboxStatus::Running => "RUNNING",
        SandboxStatus::Paused => "PAUSED",
        SandboxStatus::Error => "ERROR",
        SandboxStatus::Missing => "MISSING",
    }
}

impl<'a> From<&'a SandboxInfo> for SandboxJson<'a> {
    fn from(s: &'a SandboxInfo) -> Self {
        SandboxJson {
            id: &s.id,
            created_by_user_id: s.created_by_user_id.as_deref(),
            sandbox_spec_id: &s.sandbox_spec_id,
            status: status_name(s.status),
            session_api_key: s.session_api_key.as_deref(),
            exposed_urls: s
                .exposed_urls
                .as_ref()
                .map(|urls| urls.iter().map(url_json).collect()),
            created_at: &s.created_at,
            status_detail: s.status_detail.as_deref(),
        }
    }
}

fn url_json(u: &ExposedUrl) -> ExposedUrlJson<'_> {
    ExposedUrlJson {
        name: &u.name,
        url: &u.url,
        port: u.port,
    }
}

#[derive(Serialize)]
pub struct PageJson<T> {
    items: Vec<T>,
    next_page_id: Option<String>,
}

pub fn sandbox_page(page: &SandboxPage) -> PageJson<SandboxJson<'_>> {
    PageJson {
        items: page.items.iter().map(SandboxJson::from).collect(),
        next_page_id: page.next_page_id.clone(),
    }
}

#[derive(Serialize)]
pub struct SpecJson<'a> {
    id: &'a str,
    command: Option<&'a [String]>,
    created_at: &'a str,
    #[serde(serialize_with = "env_map")]
    initial_env: &'a [(String, String)],
    working_dir: &'a str,
}

fn env_map<S: Serializer>(env: &&[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(env.len()))?;
    for (k, v) in *env {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

impl<'a> From<&'a SandboxSpec> for SpecJson<'a> {
    fn from(s: &'a SandboxSpec) -> Self {
        SpecJson {
            id: &s.id,
            command: s.command.as_deref(),
            created_at: &s.created_at,
            initial_env: &s.initial_env,
            working_dir: &s.working_dir,
        }
    }
}

pub fn spec_page(page: &SpecPage) -> PageJson<SpecJson<'_>> {
    PageJson {
        items: page.items.iter().map(SpecJson::from).collect(),
        next_page_id: page.next_page_id.clone(),
    }
}

/// A 200 with `value` as JSON.
pub fn ok<T: Serialize>(value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = Response::new(super::body::full(body));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
        }
        Err(e) => super::error::ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not encode the answer: {e}"),
        )
        .into_response(),
    }
}

/// `{"success": true}`.
pub fn success() -> Response<Body> {
    ok(&serde_json::json!({ "success": true }))
}
