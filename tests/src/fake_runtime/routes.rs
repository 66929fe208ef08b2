//! One request, from bytes to answer: record, delay, faults, API key, then the route.
//!
//! The steps before the route are one hand-written function ([`handle`]) because
//! they act on every request, whatever its path, and one of them (an injected
//! `Drop`) must be able to close the connection with no answer at all; the routes
//! themselves are an axum [`Router`].
//!
//! Nothing a client sends can panic here: bad JSON, bad paths and bad methods all get
//! a 4xx answer with `{"detail": …}`, like the FastAPI service the fake stands in for.

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Extension, Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use axum::routing::{MethodRouter, get, post};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::http::request::Parts;
use serde_json::{Map, Value, json};
use tower::ServiceExt;

use super::faults::Outcome;
use super::runtime_object::{self, is_stopped};
use super::state::{Entry, Shared, lock};
use crate::serve::DropConnection;

/// Bodies larger than this are refused with 413. The runtime API's bodies are a few
/// kilobytes; the cap only keeps a runaway client from eating the test machine.
const MAX_BODY: usize = 16 * 1024 * 1024;

type Answer = Response<Body>;

/// Whether a `GET /sessions/batch` answer gets `null` entries
/// ([`FaultAction::BatchNullEntries`](super::FaultAction::BatchNullEntries)): the
/// fault is decided before the route, so [`handle`] hands it on in the request.
#[derive(Debug, Clone, Copy)]
struct BatchNulls(bool);

/// The wire API, route by route. Every route answers only its method (405 with a
/// `detail` otherwise) and any other path is 404, as FastAPI does.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/start", post(start).fallback(not_allowed))
        .route("/stop", post(stop).fallback(not_allowed))
        .route("/pause", post(pause).fallback(not_allowed))
        .route("/resume", post(resume).fallback(not_allowed))
        .route("/list", get_only(list))
        .route("/sessions/batch", get_only(batch))
        .route("/sessions/{session_id}", get_only(session))
        .fallback(|| async { detail(StatusCode::NOT_FOUND, "Not Found") })
        // `handle` already read the body under its own cap (`MAX_BODY`).
        .layer(DefaultBodyLimit::disable())
        .with_state(shared)
}

/// A `GET` route that refuses every other method, `HEAD` included (axum would
/// otherwise answer `HEAD` with the `GET` handler; FastAPI answers 405).
fn get_only<H, T>(handler: H) -> MethodRouter<Arc<Shared>>
where
    H: axum::handler::Handler<T, Arc<Shared>>,
    T: 'static,
{
    get(handler).head(not_allowed).fallback(not_allowed)
}

/// Records the request, applies latency and faults, checks the API key, then hands
/// the request to `router`. An `Err` closes the connection without an answer.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    router: Router,
    request: Request<Incoming>,
) -> Result<Answer, DropConnection> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            shared.recorder.record(&parts, &Bytes::new());
            return Ok(if error.downcast_ref::<LengthLimitError>().is_some() {
                detail(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
            } else {
                detail(StatusCode::BAD_REQUEST, "could not read the request body")
            });
        }
    };
    shared.recorder.record(&parts, &body);

    let plan = lock(&shared.faults).plan(parts.method.as_str(), parts.uri.path());
    let delay = shared.latency().saturating_add(plan.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let batch_nulls = match plan.outcome {
        Outcome::Normal => false,
        Outcome::BatchNullEntries => true,
        Outcome::Respond(code, body, headers) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut answer = raw(status, Bytes::from(body));
            for (name, value) in headers {
                if let (Ok(name), Ok(value)) = (
                    HeaderName::try_from(name.as_str()),
                    HeaderValue::try_from(value.as_str()),
                ) {
                    answer.headers_mut().append(name, value);
                }
            }
            return Ok(answer);
        }
        Outcome::Drop => return Err(DropConnection),
    };

    if !authorized(&parts, &shared.api_key) {
        return Ok(detail(
            StatusCode::UNAUTHORIZED,
            "missing or invalid X-API-Key",
        ));
    }
    let mut request = Request::from_parts(parts, Body::from(body));
    request.extensions_mut().insert(BatchNulls(batch_nulls));
    // The router's error type is `Infallible`.
    Ok(router
        .oneshot(request)
        .await
        .unwrap_or_else(|never| match never {}))
}

fn authorized(parts: &Parts, api_key: &str) -> bool {
    parts
        .headers
        .get("x-api-key")
        .is_some_and(|value| value.as_bytes() == api_key.as_bytes())
}

/// `POST /start`: a new runtime for the body's `session_id`.
async fn start(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer {
    let request = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(request)) => request,
        Ok(_) => return unprocessable("the body must be a JSON object"),
        Err(error) => return unprocessable(&format!("the body is not valid JSON: {error}")),
    };
    let Some(session_id) = request
        .get("session_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
    else {
        return unprocessable("session_id is required and must be a non-empty string");
    };

    let mut store = lock(&shared.store);
    if store
        .session(&session_id)
        .is_some_and(|entry| !is_stopped(&entry.object))
    {
        return detail(
            StatusCode::CONFLICT,
            &format!("a runtime for session {session_id} already exists"),
        );
    }
    let runtime_id = runtime_object::new_runtime_id();
    let object = runtime_object::new_runtime(
        &runtime_id,
        &session_id,
        &shared.url_template,
        &shared.start_status,
    );
    let answer = json_answer(StatusCode::OK, &object);
    store.insert(Entry {
        runtime_id,
        session_id,
        object,
        start_request: Some(Value::Object(request)),
    });
    answer
}

/// `POST /stop`: the runtime is forgotten, or kept as "stopped" with `keep_stopped`.
async fn stop(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer {
    let runtime_id = match runtime_id_of(&body) {
        Ok(id) => id,
        Err(message) => return unprocessable(&message),
    };
    let mut store = lock(&shared.store);
    if shared.keep_stopped {
        let Some(entry) = store.runtime_mut(&runtime_id) else {
            return runtime_not_found(&runtime_id);
        };
        runtime_object::set_status(&mut entry.object, "stopped");
    } else if store.remove_runtime(&runtime_id).is_none() {
        return runtime_not_found(&runtime_id);
    }
    json_answer(
        StatusCode::OK,
        &json!({"runtime_id": runtime_id, "status": "stopped"}),
    )
}

/// `POST /pause`: status "paused". A stopped runtime cannot be paused: 404.
async fn pause(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer {
    let runtime_id = match runtime_id_of(&body) {
        Ok(id) => id,
        Err(message) => return unprocessable(&message),
    };
    let mut store = lock(&shared.store);
    let Some(entry) = live_runtime(store.runtime_mut(&runtime_id)) else {
        return runtime_not_found(&runtime_id);
    };
    runtime_object::set_status(&mut entry.object, "paused");
    json_answer(StatusCode::OK, &entry.object)
}

/// `POST /resume`: status "running" and a NEW session API key, as the real service
/// rotates keys on resume. The answer carries the key unless `resume_returns_key` is
/// off; the stored object has it either way.
async fn resume(State(shared): State<Arc<Shared>>, body: Bytes) -> Answer {
    let runtime_id = match runtime_id_of(&body) {
        Ok(id) => id,
        Err(message) => return unprocessable(&message),
    };
    let mut store = lock(&shared.store);
    let Some(entry) = live_runtime(store.runtime_mut(&runtime_id)) else {
        return runtime_not_found(&runtime_id);
    };
    runtime_object::set_status(&mut entry.object, "running");
    entry.object.insert(
        "session_api_key".to_owned(),
        json!(runtime_object::new_session_api_key()),
    );
    if shared.resume_returns_key {
        json_answer(StatusCode::OK, &entry.object)
    } else {
        let mut object = entry.object.clone();
        object.remove("session_api_key");
        json_answer(StatusCode::OK, &object)
    }
}

/// `GET /sessions/{session_id}`. An id whose `%XX` escapes do not decode to UTF-8
/// names no runtime.
async fn session(
    State(shared): State<Arc<Shared>>,
    session_id: Result<Path<String>, PathRejection>,
) -> Answer {
    let store = lock(&shared.store);
    match session_id.ok().and_then(|Path(id)| store.session(&id)) {
        Some(entry) => json_answer(StatusCode::OK, &entry.object),
        None => detail(StatusCode::NOT_FOUND, "Runtime not found"),
    }
}

/// `GET /sessions/batch?ids=a&ids=b`: known runtimes in request order, unknown ids
/// omitted (or `null` under [`FaultAction::BatchNullEntries`](super::FaultAction)).
async fn batch(
    State(shared): State<Arc<Shared>>,
    Extension(BatchNulls(nulls)): Extension<BatchNulls>,
    RawQuery(query): RawQuery,
) -> Answer {
    let query = query.unwrap_or_default();
    let store = lock(&shared.store);
    let mut list = Vec::new();
    if nulls {
        list.push(Value::Null);
    }
    for (key, id) in form_urlencoded::parse(query.as_bytes()) {
        if key != "ids" {
            continue;
        }
        match store.session(&id) {
            Some(entry) => list.push(Value::Object(entry.object.clone())),
            None if nulls => list.push(Value::Null),
            None => {}
        }
    }
    json_answer(StatusCode::OK, &list)
}

/// `GET /list`: every runtime that is not stopped, in creation order.
async fn list(State(shared): State<Arc<Shared>>) -> Answer {
    let store = lock(&shared.store);
    let runtimes: Vec<&Map<String, Value>> = store
        .iter()
        .map(|entry| &entry.object)
        .filter(|object| !is_stopped(object))
        .collect();
    json_answer(
        StatusCode::OK,
        &json!({"total": runtimes.len(), "runtimes": runtimes}),
    )
}

/// The `runtime_id` of a `/stop`, `/pause` or `/resume` body, or why it is unusable.
fn runtime_id_of(body: &[u8]) -> Result<String, String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| format!("the body is not valid JSON: {error}"))?;
    value
        .get("runtime_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "runtime_id is required and must be a string".to_owned())
}

fn live_runtime(entry: Option<&mut Entry>) -> Option<&mut Entry> {
    entry.filter(|entry| !is_stopped(&entry.object))
}

fn runtime_not_found(runtime_id: &str) -> Answer {
    detail(
        StatusCode::NOT_FOUND,
        &format!("runtime {runtime_id} not found"),
    )
}

fn unprocessable(message: &str) -> Answer {
    detail(StatusCode::UNPROCESSABLE_ENTITY, message)
}

async fn not_allowed() -> Answer {
    detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

fn detail(status: StatusCode, message: &str) -> Answer {
    json_answer(status, &json!({ "detail": message }))
}

fn json_answer(status: StatusCode, value: &impl serde::Serialize) -> Answer {
    match serde_json::to_vec(value) {
        Ok(body) => raw(status, Bytes::from(body)),
        // Unreachable for JSON values; still an answer, never a panic.
        Err(_) => raw(
            StatusCode::INTERNAL_SERVER_ERROR,
            Bytes::from_static(br#"{"detail":"could not encode the answer"}"#),
        ),
    }
}

fn raw(status: StatusCode, body: Bytes) -> Answer {
    let mut answer = Response::new(Body::from(body));
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    answer
}
