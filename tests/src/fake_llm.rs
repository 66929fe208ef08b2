//! A fake OpenAI-compatible LLM server that makes a real OpenHands agent finish at
//! once, with no network.
//!
//! The OpenHands SDK (1.58.2, through litellm and the `openai` Python client) talks
//! to an `openai/<model>` LLM with a custom `base_url` by POSTing to
//! `{base_url}/chat/completions` (the default, `api_mode: "auto"` for a model litellm
//! does not know), or to `{base_url}/responses` when the LLM config says
//! `api_mode: "responses"`. Both come as plain JSON requests unless the LLM config
//! says `stream: true`, which streams chat completions (SSE, with
//! `stream_options.include_usage`); the Responses API was not streamed by 1.58.2 even
//! then. Observed per conversation turn: one agent completion (its `tools` list holds
//! `finish` and `think`) and, after the first user message, one title-generation
//! completion on the same LLM without any tools.
//!
//! The fake answers:
//! - a completion whose request offers a tool named `finish` with a call to it,
//!   arguments `{"message": <finish message>}` (the SDK's `FinishTool`: name
//!   `finish`, parameters `message` (required) and `summary` (optional)). The agent
//!   executes it, and the conversation goes to `finished`;
//! - any other completion (the title request) with assistant text, [`DEFAULT_TEXT`]
//!   unless changed, which becomes the conversation's title;
//! - `GET …/models` with a one-model list; anything else with 404.
//!
//! Every answer reports usage of [`PROMPT_TOKENS`] prompt and [`COMPLETION_TOKENS`]
//! completion tokens, and ids that count up (`chatcmpl-fake-1`, `call_fake_1`, …).
//! Requests must carry `Authorization: Bearer <api_key>` (401 otherwise, as a real
//! provider would), so a key the agent server lost shows up as a failure.
//!
//! Like the fake runtime API, it runs on its own thread and tokio runtime on
//! 127.0.0.1, records every request before answering it (and before any delay), and
//! stops when the handle is dropped. Nothing a client sends can panic the server.
//! Requests are matched by hand, not by an axum router: a completion is known by the
//! end of its path (whatever base URL the LLM config has), which routes cannot
//! express, and the key is checked before an unknown path is a 404.
//!
//! ```
//! use sandboxd_tests::fake_llm::FakeLlm;
//!
//! let llm = FakeLlm::start();
//! assert!(llm.base_url().ends_with("/v1"));
//! assert_eq!(llm.llm_config()["model"], "openai/fake-model");
//! assert_eq!(llm.completion_count(), 0);
//! ```

use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::serve::ServerThread;

/// The model the fake serves, as the agent's LLM config names it (litellm provider
/// `openai`, so litellm sends `"model": "fake-model"` on the wire).
pub const FAKE_MODEL: &str = "openai/fake-model";
/// Text of every answer to a request that offers no `finish` tool (the title).
pub const DEFAULT_TEXT: &str = "Fake title";
/// The `message` argument of every `finish` call unless changed.
pub const DEFAULT_FINISH_MESSAGE: &str = "Done: the fake LLM finished the task.";
/// Prompt tokens reported in every answer's usage.
pub const PROMPT_TOKENS: u64 = 10;
/// Completion tokens reported in every answer's usage.
pub const COMPLETION_TOKENS: u64 = 5;
/// Cost per prompt token that [`FakeLlm::llm_config`] declares, so that
/// conversations report a non-zero `accumulated_cost` (litellm knows no price for the
/// fake model): 10 × 0.001 + 5 × 0.002 = 0.02 per completion.
pub const INPUT_COST_PER_TOKEN: f64 = 0.001;
/// Cost per completion token that [`FakeLlm::llm_config`] declares.
pub const OUTPUT_COST_PER_TOKEN: f64 = 0.002;

/// Agent prompts are ~20 kB; the cap only keeps a runaway client from eating memory.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// What the fake did with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmReply {
    /// A completion answered with a call to the `finish` tool.
    FinishToolCall,
    /// A completion answered with assistant text (no `finish` tool was offered).
    Text,
    /// The model list.
    Models,
    /// An error status: wrong key, bad body, injected failure, unknown route.
    Error(u16),
}

/// Which API a completion request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmApi {
    /// `POST …/chat/completions`
    ChatCompletions,
    /// `POST …/responses`
    Responses,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct LlmRequest {
    /// Upper-case method, e.g. "POST".
    pub method: String,
    /// The path without the query, e.g. "/v1/chat/completions".
    pub path: String,
    /// Headers in arrival order, names in lower case (values converted lossily).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Bytes,
    /// The completion API, when the request was a completion.
    pub api: Option<LlmApi>,
    /// Whether the request asked for a stream (`"stream": true`).
    pub stream: bool,
    /// How the fake answered.
    pub reply: LlmReply,
}

impl LlmRequest {
    /// The first value of a header (matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The names of the tools the request offered (chat and Responses shapes).
    pub fn tool_names(&self) -> Vec<String> {
        tool_names(&self.json())
    }
}

/// A running fake LLM. Every method is safe to call while it answers.
pub struct FakeLlm {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    server: Mutex<ServerThread>,
}

impl FakeLlm {
    /// Starts a fake LLM on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// If the port cannot be bound or the thread cannot start.
    pub fn start() -> FakeLlm {
        match FakeLlm::try_start() {
            Ok(llm) => llm,
            Err(error) => panic!("cannot start the fake LLM: {error}"),
        }
    }

    /// Starts a fake LLM, or says why it could not.
    pub fn try_start() -> io::Result<FakeLlm> {
        let listener = StdListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(format!("fake-llm-key-{}", addr.port())));
        let serving = Arc::clone(&shared);
        let server = ServerThread::spawn("fake-llm", listener, 1, move |request| {
            handle(Arc::clone(&serving), request)
        })?;
        Ok(FakeLlm {
            shared,
            addr,
            url: format!("http://{addr}"),
            server: Mutex::new(server),
        })
    }

    /// The server's URL, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What goes into the LLM config's `base_url`: `{url}/v1`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.url)
    }

    /// The key the LLM config must carry (`api_key`), sent as a bearer token.
    pub fn api_key(&self) -> &str {
        &self.shared.api_key
    }

    /// The model name for the LLM config: [`FAKE_MODEL`].
    pub fn model(&self) -> &str {
        FAKE_MODEL
    }

    /// An OpenHands LLM config (the `agent.llm` object of a start-conversation
    /// request) that points at this fake: model, base URL, key, `usage_id` "agent",
    /// no retries (a failure shows at once instead of after minutes of back-off),
    /// and token prices so the conversation's stats carry a cost.
    pub fn llm_config(&self) -> Value {
        json!({
            "model": FAKE_MODEL,
            "base_url": self.base_url(),
            "api_key": self.api_key(),
            "usage_id": "agent",
            "num_retries": 0,
            "input_cost_per_token": INPUT_COST_PER_TOKEN,
            "output_cost_per_token": OUTPUT_COST_PER_TOKEN,
        })
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LlmRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The completion requests so far (chat or Responses), whatever the answer.
    pub fn completions(&self) -> Vec<LlmRequest> {
        lock(&self.shared.requests)
            .iter()
            .filter(|request| request.api.is_some())
            .cloned()
            .collect()
    }

    /// How many requests arrived (any path, any answer).
    pub fn request_count(&self) -> u64 {
        self.shared.total.load(Ordering::Relaxed)
    }

    /// How many completion requests arrived (any answer).
    pub fn completion_count(&self) -> u64 {
        self.shared.completions.load(Ordering::Relaxed)
    }

    /// How many completions were answered with a `finish` call.
    pub fn finish_count(&self) -> usize {
        lock(&self.shared.requests)
            .iter()
            .filter(|request| request.reply == LlmReply::FinishToolCall)
            .count()
    }

    /// Forgets the recorded requests (the counters keep counting).
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// The `message` of later `finish` calls.
    pub fn set_finish_message(&self, message: &str) {
        *lock(&self.shared.finish_message) = message.to_owned();
    }

    /// The text of later answers to requests without a `finish` tool (the title).
    pub fn set_text_reply(&self, text: &str) {
        *lock(&self.shared.text_reply) = text.to_owned();
    }

    /// Holds every later completion this long before answering (e.g. to observe a
    /// conversation while it is `running`). Zero turns it off.
    pub fn set_delay(&self, delay: Duration) {
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        self.shared.delay_nanos.store(nanos, Ordering::Relaxed);
    }

    /// Answers every later completion with this HTTP status and an OpenAI-style
    /// error body (`None` turns it off). With `num_retries: 0` the agent's
    /// conversation goes to `error`.
    pub fn set_failure(&self, status: Option<u16>) {
        *lock(&self.shared.failure) = status;
    }

    /// Stops the server: the port closes and the thread is joined. Idempotent; the
    /// recorded requests stay readable.
    pub fn shutdown(&self) {
        lock(&self.server).stop();
    }
}

// ---- State ------------------------------------------------------------------------

struct Shared {
    api_key: String,
    finish_message: Mutex<String>,
    text_reply: Mutex<String>,
    delay_nanos: AtomicU64,
    failure: Mutex<Option<u16>>,
    requests: Mutex<Vec<LlmRequest>>,
    total: AtomicU64,
    completions: AtomicU64,
    /// Numbers the ids of answers: `chatcmpl-fake-{n}`, `call_fake_{n}`.
    next_id: AtomicU64,
}

impl Shared {
    fn new(api_key: String) -> Shared {
        Shared {
            api_key,
            finish_message: Mutex::new(DEFAULT_FINISH_MESSAGE.to_owned()),
            text_reply: Mutex::new(DEFAULT_TEXT.to_owned()),
            delay_nanos: AtomicU64::new(0),
            failure: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            total: AtomicU64::new(0),
            completions: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
        }
    }
}

/// Locks even a poisoned mutex: the data is a plain value or list, always consistent,
/// and a panicking test must not turn into panics on the server's request path.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---- Request handling -------------------------------------------------------------

type Answer = Response<Full<Bytes>>;

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Answer, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    shared.total.fetch_add(1, Ordering::Relaxed);

    let path = parts.uri.path().to_owned();
    let api = if parts.method != Method::POST {
        None
    } else if path.ends_with("/chat/completions") {
        Some(LlmApi::ChatCompletions)
    } else if path.ends_with("/responses") {
        Some(LlmApi::Responses)
    } else {
        None
    };
    if api.is_some() {
        shared.completions.fetch_add(1, Ordering::Relaxed);
    }
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let stream = parsed
        .as_ref()
        .and_then(|value| value.get("stream"))
        .and_then(Value::as_bool)
        .unwrap_or(false);

    let (reply, answer) = answer(&shared, &parts, api, parsed.as_ref(), stream);
    lock(&shared.requests).push(LlmRequest {
        method: parts.method.as_str().to_owned(),
        path,
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body,
        api,
        stream,
        reply,
    });

    if api.is_some() {
        let delay = Duration::from_nanos(shared.delay_nanos.load(Ordering::Relaxed));
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
    Ok(answer)
}

fn answer(
    shared: &Shared,
    parts: &hyper::http::request::Parts,
    api: Option<LlmApi>,
    body: Option<&Value>,
    stream: bool,
) -> (LlmReply, Answer) {
    if !authorized(parts, &shared.api_key) {
        return error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided (fake LLM).",
            "invalid_api_key",
        );
    }
    let Some(api) = api else {
        if parts.method == Method::GET && parts.uri.path().ends_with("/models") {
            let models = json!({
                "object": "list",
                "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}],
            });
            return (LlmReply::Models, json_answer(StatusCode::OK, &models));
        }
        return error(
            StatusCode::NOT_FOUND,
            "The fake LLM serves POST …/chat/completions and POST …/responses only.",
            "not_found",
        );
    };
    if let Some(status) = *lock(&shared.failure) {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error(status, "Injected failure (fake LLM).", "injected_failure");
    }
    let Some(request) = body.filter(|value| value.is_object()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "The request body must be a JSON object.",
            "invalid_request",
        );
    };

    let n = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("fake-model");
    let finish = tool_names(request).iter().any(|name| name == "finish");
    let content = if finish {
        let arguments = json!({ "message": *lock(&shared.finish_message) }).to_string();
        Content::Finish {
            call_id: format!("call_fake_{n}"),
            arguments,
        }
    } else {
        Content::Text(lock(&shared.text_reply).clone())
    };
    let reply = if finish {
        LlmReply::FinishToolCall
    } else {
        LlmReply::Text
    };
    let answer = match (api, stream) {
        (LlmApi::ChatCompletions, false) => {
            json_answer(StatusCode::OK, &chat_completion(n, model, &content))
        }
        (LlmApi::ChatCompletions, true) => sse(chat_chunks(n, model, &content)),
        (LlmApi::Responses, false) => json_answer(StatusCode::OK, &response(n, model, &content)),
        (LlmApi::Responses, true) => sse(response_events(n, model, &content)),
    };
    (reply, answer)
}

fn authorized(parts: &hyper::http::request::Parts, api_key: &str) -> bool {
    let bearer = parts
        .headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let azure_style = parts
        .headers
        .get("api-key")
        .and_then(|value| value.to_str().ok());
    bearer == Some(api_key) || azure_style == Some(api_key)
}

/// Tool names of a chat (`tools[].function.name`) or Responses (`tools[].name`)
/// request.
fn tool_names(request: &Value) -> Vec<String> {
    let Some(tools) = request.get("tools").and_then(Value::as_array) else {
        return Vec::new();
    };
    tools
        .iter()
        .filter_map(|tool| {
            tool.get("function")
                .and_then(|function| function.get("name"))
                .or_else(|| tool.get("name"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

enum Content {
    Finish { call_id: String, arguments: String },
    Text(String),
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

fn chat_usage() -> Value {
    json!({
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": COMPLETION_TOKENS,
        "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    })
}

fn chat_message(content: &Content) -> (Value, &'static str) {
    match content {
        Content::Finish { call_id, arguments } => (
            json!({
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": call_id,
                    "type": "function",
                    "function": {"name": "finish", "arguments": arguments},
                }],
            }),
            "tool_calls",
        ),
        Content::Text(text) => (json!({"role": "assistant", "content": text}), "stop"),
    }
}

fn chat_completion(n: u64, model: &str, content: &Content) -> Value {
    let (message, finish_reason) = chat_message(content);
    json!({
        "id": format!("chatcmpl-fake-{n}"),
        "object": "chat.completion",
        "created": now(),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
        "usage": chat_usage(),
    })
}

/// A chat completion as a stream: the whole delta in one chunk, then the finish
/// reason with the usage (what `stream_options.include_usage` asks for).
fn chat_chunks(n: u64, model: &str, content: &Content) -> Vec<(Option<&'static str>, Value)> {
    let (mut delta, finish_reason) = chat_message(content);
    if let Some(calls) = delta.get_mut("tool_calls").and_then(Value::as_array_mut) {
        for (index, call) in calls.iter_mut().enumerate() {
            if let Some(call) = call.as_object_mut() {
                call.insert("index".to_owned(), json!(index));
            }
        }
    }
    let id = format!("chatcmpl-fake-{n}");
    let created = now();
    vec![
        (
            None,
            json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": null}],
            }),
        ),
        (
            None,
            json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}],
                "usage": chat_usage(),
            }),
        ),
    ]
}

fn response_item(n: u64, content: &Content) -> Value {
    match content {
        Content::Finish { call_id, arguments } => json!({
            "type": "function_call",
            "id": format!("fc_fake_{n}"),
            "call_id": call_id,
            "name": "finish",
            "arguments": arguments,
            "status": "completed",
        }),
        Content::Text(text) => json!({
            "type": "message",
            "id": format!("msg_fake_{n}"),
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }),
    }
}

fn response(n: u64, model: &str, content: &Content) -> Value {
    json!({
        "id": format!("resp_fake_{n}"),
        "object": "response",
        "created_at": now(),
        "status": "completed",
        "model": model,
        "output": [response_item(n, content)],
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": PROMPT_TOKENS,
            "output_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    })
}

fn response_events(n: u64, model: &str, content: &Content) -> Vec<(Option<&'static str>, Value)> {
    let done = response(n, model, content);
    let mut started = done.clone();
    started["status"] = json!("in_progress");
    started["output"] = json!([]);
    let item = response_item(n, content);
    vec![
        (
            Some("response.created"),
            json!({"type": "response.created", "sequence_number": 0, "response": started}),
        ),
        (
            Some("response.output_item.added"),
            json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": item}),
        ),
        (
            Some("response.output_item.done"),
            json!({"type": "response.output_item.done", "sequence_number": 2, "output_index": 0, "item": item}),
        ),
        (
            Some("response.completed"),
            json!({"type": "response.completed", "sequence_number": 3, "response": done}),
        ),
    ]
}

fn sse(events: Vec<(Option<&'static str>, Value)>) -> Answer {
    let mut text = String::new();
    let chat = events.iter().all(|(name, _)| name.is_none());
    for (name, data) in events {
        if let Some(name) = name {
            text.push_str("event: ");
            text.push_str(name);
            text.push('\n');
        }
        text.push_str("data: ");
        text.push_str(&data.to_string());
        text.push_str("\n\n");
    }
    if chat {
        text.push_str("data: [DONE]\n\n");
    }
    raw(StatusCode::OK, "text/event-stream", Bytes::from(text))
}

fn error(status: StatusCode, message: &str, code: &str) -> (LlmReply, Answer) {
    let body = json!({
        "error": {"message": message, "type": "invalid_request_error", "param": null, "code": code},
    });
    (LlmReply::Error(status.as_u16()), json_answer(status, &body))
}

fn json_answer(status: StatusCode, value: &Value) -> Answer {
    raw(
        status,
        "application/json",
        Bytes::from(value.to_string().into_bytes()),
    )
}

fn raw(status: StatusCode, content_type: &'static str, body: Bytes) -> Answer {
    let mut answer = Response::new(Full::new(body));
    *answer.status_mut() = status;
    answer
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    answer
}
