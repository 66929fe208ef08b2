//! One request, from bytes to answer: record, delay, faults, API key, then the route.
//!
//! Nothing a client sends can panic here: bad JSON, bad paths and bad methods all get
//! a 4xx answer with `{"detail": …}`, like the FastAPI service the fake stands in for.

use std::fmt;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Map, Value, json};

use super::faults::Outcome;
use super::runtime_object::{self, is_stopped};
use super::state::{Entry, Shared, lock};

/// Bodies larger than this are refused with 413. The runtime API's bodies are a few
/// kilobytes; the cap only keeps a runaway client from eating the test machine.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Returned by the service to make hyper close the connection without writing any
/// response: that is how [`FaultAction::Drop`](super::FaultAction::Drop) works.
#[derive(Debug)]
pub(crate) struct DropConnection;

impl fmt::Display for DropConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for DropConnection {}

type Answer = Response<Full<Bytes>>;

pub(crate) async fn handle(
    shared: &Shared,
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

    let path = parts.uri.path();
    let plan = lock(&shared.faults).plan(parts.method.as_str(), path);
    let delay = shared.latency().saturating_add(plan.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let batch_nulls = match plan.outcome {
        Outcome::Normal => false,
        Outcome::BatchNullEntries => true,
        Outcome::Respond(code, body) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(raw(status, Bytes::from(body)));
        }
        Outcome::Drop => return Err(DropConnection),
    };

    if !authorized(&parts, &shared.api_key) {
        return Ok(detail(
            StatusCode::UNAUTHORIZED,
            "missing or invalid X-API-Key",
        ));
    }
    Ok(route(shared, &parts, &body, batch_nulls))
}

fn authorized(parts: &Parts, api_key: &str) -> bool {
    parts
        .headers
        .get("x-api-key")
        .is_some_and(|value| value.as_bytes() == api_key.as_bytes())
}

fn route(shared: &Shared, parts: &Parts, body: &[u8], batch_nulls: bool) -> Answer {
    let method = &parts.method;
    let path = parts.uri.path();
    match path {
        "/start" | "/stop" | "/pause" | "/resume" if method != Method::POST => not_allowed(),
        "/list" | "/sessions/batch" if method != Method::GET => not_allowed(),
        "/start" => start(shared, body),
        "/stop" => stop(shared, body),
        "/pause" => pause(shared, body),
        "/resume" => resume(shared, body),
        "/list" => list(shared),
        "/sessions/batch" => batch(shared, parts.uri.query().unwrap_or_default(), batch_nulls),
        _ => match path.strip_prefix("/sessions/") {
            Some(id) if !id.is_empty() && !id.contains('/') => {
                if method != Method::GET {
                    not_allowed()
                } else {
                    session(shared, id)
                }
            }
            _ => detail(StatusCode::NOT_FOUND, "Not Found"),
        },
    }
}

/// `POST /start`: a new runtime for the body's `session_id`.
fn start(shared: &Shared, body: &[u8]) -> Answer {
    let request = match serde_json::from_slice::<Value>(body) {
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
fn stop(shared: &Shared, body: &[u8]) -> Answer {
    let runtime_id = match runtime_id_of(body) {
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
fn pause(shared: &Shared, body: &[u8]) -> Answer {
    let runtime_id = match runtime_id_of(body) {
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
fn resume(shared: &Shared, body: &[u8]) -> Answer {
    let runtime_id = match runtime_id_of(body) {
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

/// `GET /sessions/{session_id}`.
fn session(shared: &Shared, raw_id: &str) -> Answer {
    let store = lock(&shared.store);
    match percent_decode(raw_id).and_then(|id| store.session(&id)) {
        Some(entry) => json_answer(StatusCode::OK, &entry.object),
        None => detail(StatusCode::NOT_FOUND, "Runtime not found"),
    }
}

/// `GET /sessions/batch?ids=a&ids=b`: known runtimes in request order, unknown ids
/// omitted (or `null` under [`FaultAction::BatchNullEntries`](super::FaultAction)).
fn batch(shared: &Shared, query: &str, nulls: bool) -> Answer {
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
fn list(shared: &Shared) -> Answer {
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

/// Decodes `%XX` escapes in a path segment; `None` when they are malformed or not
/// UTF-8 (such an id names no runtime).
fn percent_decode(segment: &str) -> Option<String> {
    if !segment.contains('%') {
        return Some(segment.to_owned());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
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

fn not_allowed() -> Answer {
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
    let mut answer = Response::new(Full::new(body));
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    answer
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding_accepts_escapes_and_refuses_garbage() {
        assert_eq!(percent_decode("abc").as_deref(), Some("abc"));
        assert_eq!(percent_decode("a%20b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(percent_decode("a%2"), None);
        assert_eq!(percent_decode("a%+1b"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
