//! One request, from bytes to answer: find the agent, record, delay, faults, session
//! key, then the route.
//!
//! Nothing a client sends can panic here: bad paths, ids, parameters and methods all
//! get a 4xx answer with `{"detail": …}`, like the FastAPI server the fake stands in
//! for (422s carry FastAPI's list of errors).
//!
//! The routes are matched by hand, not by an axum router as in the fake runtime API:
//! one port serves many agents under prefixes registered while it runs, so the agent
//! must be found before any route can be, and inside it the session key is checked
//! before an unknown route is a 404. A router would only see the path after that
//! work, rewritten for it, and the match below is already one screen.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::conversations::{
    Conversation, ConversationQuery, Conversations, EXECUTION_STATUSES, SORT_ORDERS,
};
use super::events::EventQuery;
use super::faults::Outcome;
use super::ids::parse_uuid;
use super::query::{Errors, Query};
use super::state::{Agent, AgentSlot, Shared, lock};
use crate::serve::DropConnection;

/// Bodies larger than this are refused with 413. The agent routes the fake serves
/// take no body; the cap only keeps a runaway client from eating the test machine.
const MAX_BODY: usize = 1024 * 1024;

/// The header every `/api/*` request must carry.
const SESSION_KEY_HEADER: &str = "x-session-api-key";

type Answer = Response<Full<Bytes>>;

pub(crate) async fn handle(
    shared: &Shared,
    request: Request<Incoming>,
) -> Result<Answer, DropConnection> {
    let (parts, body) = request.into_parts();
    let resolved = shared.resolve(parts.uri.path());
    let prefix = resolved.agent.as_ref().map(|agent| agent.prefix.as_str());
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            shared
                .recorder
                .record(&parts, &Bytes::new(), prefix, resolved.agent_path);
            return Ok(if error.downcast_ref::<LengthLimitError>().is_some() {
                detail(StatusCode::PAYLOAD_TOO_LARGE, "request body too large")
            } else {
                detail(StatusCode::BAD_REQUEST, "could not read the request body")
            });
        }
    };
    shared
        .recorder
        .record(&parts, &body, prefix, resolved.agent_path);

    let plan = lock(&shared.faults).plan(prefix, resolved.agent_path);
    let delay = shared.latency().saturating_add(plan.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match plan.outcome {
        Outcome::Normal => {}
        Outcome::Respond(code, body) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Ok(raw(status, Bytes::from(body)));
        }
        Outcome::Drop => return Err(DropConnection),
    }

    Ok(match &resolved.agent {
        Some(agent) => route(agent, &parts, resolved.agent_path),
        None => not_found(),
    })
}

/// The routes of one agent server; `path` is the path inside the agent.
fn route(slot: &AgentSlot, parts: &Parts, path: &str) -> Answer {
    match path {
        "/alive" => get_only(parts, || {
            json_answer(StatusCode::OK, &json!({"status": "ok"}))
        }),
        "/health" => get_only(parts, || json_answer(StatusCode::OK, &json!("OK"))),
        _ => match path.strip_prefix("/api") {
            Some(api_path) if api_path.is_empty() || api_path.starts_with('/') => {
                let agent = lock(&slot.state);
                if !authorized(parts, &agent.session_key) {
                    return detail(StatusCode::UNAUTHORIZED, "Unauthorized");
                }
                api(&agent, parts, api_path)
            }
            _ => not_found(),
        },
    }
}

/// The authenticated routes; `path` is the path after `/api`.
fn api(agent: &Agent, parts: &Parts, path: &str) -> Answer {
    let Some(rest) = path.strip_prefix("/conversations/") else {
        return not_found();
    };
    let query = || Query::parse(parts.uri.query());
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["search"] => get_only(parts, || {
            search_conversations(&agent.conversations, &query())
        }),
        [id] => get_only(parts, || {
            with_conversation(&agent.conversations, id, |conversation| {
                json_answer(StatusCode::OK, &conversation.info)
            })
        }),
        [id, "events", "search"] => get_only(parts, || {
            let query = query();
            with_conversation(&agent.conversations, id, |conversation| {
                search_events(conversation, &query)
            })
        }),
        _ => not_found(),
    }
}

/// `GET /api/conversations/search?page_id&limit&status&sort_order`.
fn search_conversations(conversations: &Conversations, query: &Query<'_>) -> Answer {
    let mut errors = Errors::default();
    let limit = query.limit(&mut errors);
    let status = query.optional_choice("status", &EXECUTION_STATUSES, &mut errors);
    let sort_order = query.choice("sort_order", &SORT_ORDERS, &mut errors);
    if let Err(body) = errors.into_result() {
        return json_answer(StatusCode::UNPROCESSABLE_ENTITY, &body);
    }
    let (items, next_page_id) = conversations.search(&ConversationQuery {
        page_id: query.get("page_id"),
        limit,
        status,
        sort_order,
    });
    let items: Vec<&serde_json::Map<String, Value>> = items
        .iter()
        .map(|conversation| &conversation.info)
        .collect();
    json_answer(
        StatusCode::OK,
        &json!({"items": items, "next_page_id": next_page_id}),
    )
}

/// `GET /api/conversations/{id}/events/search?page_id&limit&kind&source&sort_order&
/// timestamp__gte&timestamp__lt`.
fn search_events(conversation: &Conversation, query: &Query<'_>) -> Answer {
    let mut errors = Errors::default();
    let limit = query.limit(&mut errors);
    let sort_order = query.choice("sort_order", &["TIMESTAMP", "TIMESTAMP_DESC"], &mut errors);
    let gte = query.timestamp("timestamp__gte", &mut errors);
    let lt = query.timestamp("timestamp__lt", &mut errors);
    if let Err(body) = errors.into_result() {
        return json_answer(StatusCode::UNPROCESSABLE_ENTITY, &body);
    }
    let page = conversation.events.search(&EventQuery {
        page_id: query.get("page_id"),
        limit,
        kind: query.get("kind"),
        source: query.get("source"),
        descending: sort_order == "TIMESTAMP_DESC",
        gte,
        lt,
    });
    // The events are stored serialized: the page is assembled from their bytes.
    let size: usize = page.items.iter().map(|event| event.json.len() + 1).sum();
    let mut body = Vec::with_capacity(size + 96);
    body.extend_from_slice(br#"{"items":["#);
    for (index, event) in page.items.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&event.json);
    }
    body.extend_from_slice(br#"],"next_page_id":"#);
    match serde_json::to_vec(&page.next_page_id) {
        Ok(next) => body.extend_from_slice(&next),
        Err(_) => body.extend_from_slice(b"null"),
    }
    body.push(b'}');
    raw(StatusCode::OK, Bytes::from(body))
}

/// Runs `f` on the conversation the path segment names: 422 when it is not a UUID
/// (FastAPI's `UUID` parameter), 404 when there is no such conversation.
fn with_conversation(
    conversations: &Conversations,
    raw_id: &str,
    f: impl FnOnce(&Conversation) -> Answer,
) -> Answer {
    let Some(id) = parse_uuid(raw_id) else {
        let mut errors = Errors::default();
        errors.push(
            ["path", "conversation_id"],
            "uuid_parsing",
            "Input should be a valid UUID",
            raw_id,
        );
        let body = errors.into_result().err().unwrap_or(Value::Null);
        return json_answer(StatusCode::UNPROCESSABLE_ENTITY, &body);
    };
    match conversations.get(id) {
        Some(conversation) => f(conversation),
        None => not_found(),
    }
}

fn authorized(parts: &Parts, session_key: &str) -> bool {
    parts
        .headers
        .get(SESSION_KEY_HEADER)
        .is_some_and(|value| value.as_bytes() == session_key.as_bytes())
}

fn get_only(parts: &Parts, answer: impl FnOnce() -> Answer) -> Answer {
    if parts.method == Method::GET {
        answer()
    } else {
        detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
    }
}

fn not_found() -> Answer {
    detail(StatusCode::NOT_FOUND, "Not Found")
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
