//! The real OpenHands agent server (1.58.2, from the venv `agent_server` makes) against
//! the fake LLM: proves the harness works and pins down the wire behaviour sandboxd
//! relies on (contract section 4). Needs Python 3.12 (and PyPI the first time, or a
//! venv made ahead with scripts/agent-server-venv.sh).

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::ExitStatusExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use reqwest::{Method, StatusCode};
use sandboxd_tests::agent_server::{AgentServer, AgentServerOptions, WebhookOptions};
use sandboxd_tests::fake_llm::{self, FakeLlm, LlmApi, LlmReply};
use serde_json::{Value, json};

const RUN_TIMEOUT: Duration = Duration::from_secs(60);

fn is_dashed_uuid(id: &str) -> bool {
    id.len() == 36
        && id.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
            }
        })
}

/// `2026-11-26T08:33:32.363432`: ISO 8601, microseconds, no timezone.
fn is_naive_timestamp(timestamp: &str) -> bool {
    chrono::NaiveDateTime::parse_from_str(timestamp, "%Y-%m-%dT%H:%M:%S%.f").is_ok()
}

#[test]
fn the_fake_llm_answers_with_a_finish_call_or_text() {
    let _turn = crate::serial::shared_blocking();
    let llm = FakeLlm::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let post = |path: &str, body: Value, key: &str| {
            client
                .post(format!("{}{path}", llm.base_url()))
                .bearer_auth(key)
                .json(&body)
                .send()
        };
        let finish_tool = json!([{"type": "function", "function": {"name": "finish", "parameters": {}}}]);
        let answer: Value = post(
            "/chat/completions",
            json!({"model": "fake-model", "messages": [], "tools": finish_tool}),
            llm.api_key(),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        let call = &answer["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "finish");
        let arguments: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(arguments["message"], fake_llm::DEFAULT_FINISH_MESSAGE);
        assert_eq!(answer["choices"][0]["finish_reason"], "tool_calls");

        let title: Value = post(
            "/chat/completions",
            json!({"model": "fake-model", "messages": []}),
            llm.api_key(),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(
            title["choices"][0]["message"]["content"],
            fake_llm::DEFAULT_TEXT
        );

        let stream = post(
            "/chat/completions",
            json!({"model": "fake-model", "messages": [], "stream": true, "tools": finish_tool}),
            llm.api_key(),
        )
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        assert!(stream.contains("\"finish\"") && stream.ends_with("data: [DONE]\n\n"));

        let responses: Value = post(
            "/responses",
            json!({"model": "fake-model", "input": [], "tools": [{"type": "function", "name": "finish"}]}),
            llm.api_key(),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(responses["output"][0]["type"], "function_call");
        assert_eq!(responses["output"][0]["name"], "finish");

        let refused = post("/chat/completions", json!({}), "wrong").await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        let unknown = post("/embeddings", json!({}), llm.api_key()).await.unwrap();
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    });
    assert_eq!(llm.request_count(), 6);
    assert_eq!(llm.completion_count(), 5);
    assert_eq!(llm.finish_count(), 3);
    let replies: Vec<LlmReply> = llm.requests().iter().map(|r| r.reply).collect();
    assert_eq!(
        replies,
        [
            LlmReply::FinishToolCall,
            LlmReply::Text,
            LlmReply::FinishToolCall,
            LlmReply::FinishToolCall,
            LlmReply::Error(401),
            LlmReply::Error(404),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_runs_to_finished_and_lists_its_events() {
    let _turn = crate::serial::shared().await;
    let llm = FakeLlm::start();
    let server = AgentServer::start();

    let body = AgentServer::conversation_request(&llm, &server.workspace_dir(), "Say hello");
    // Hold the LLM's answers a moment, to see the conversation running.
    llm.set_delay(Duration::from_millis(800));
    let created = server.create_conversation(&body).await;
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(is_dashed_uuid(&id), "id {id}");
    // The answer is composed right after the run was scheduled: "idle" in every run
    // observed, "running" if the run task got there first.
    let status = created["execution_status"].as_str().unwrap();
    assert!(["idle", "running"].contains(&status), "{status}");
    assert_eq!(created["agent"]["llm"]["model"], "openai/fake-model");
    server.wait_for_status(&id, &["running"], RUN_TIMEOUT).await;
    llm.set_delay(Duration::ZERO);

    let info = server.wait_until_finished(&id, RUN_TIMEOUT).await;
    assert_eq!(info["id"], id.as_str());
    for field in [
        "title",
        "created_at",
        "updated_at",
        "stats",
        "metrics",
        "tags",
    ] {
        assert!(info.get(field).is_some(), "no {field} in {info}");
    }
    let created_at = info["created_at"].as_str().unwrap();
    assert!(
        created_at.ends_with('Z') && chrono::DateTime::parse_from_rfc3339(created_at).is_ok(),
        "created_at {created_at}"
    );
    // The id without dashes finds it too.
    let hex = id.replace('-', "");
    assert_eq!(server.conversation(&hex).await["id"], id.as_str());
    // An unknown UUID is 404; something that is no UUID, 422.
    let (status, body) = server
        .request(
            Method::GET,
            "/api/conversations/00000000000000000000000000000000",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"detail": "Not Found"}));
    let (status, _) = server
        .request(
            Method::GET,
            "/api/conversations/00000000000000000000000000000000/events/search",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = server
        .request(Method::GET, "/api/conversations/not-a-uuid", None)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The agent asked once and got the finish call.
    let completions = llm.completions();
    let agent_calls: Vec<_> = completions
        .iter()
        .filter(|request| request.reply == LlmReply::FinishToolCall)
        .collect();
    assert_eq!(agent_calls.len(), 1, "{completions:?}");
    let agent_call = agent_calls[0];
    assert_eq!(agent_call.api, Some(LlmApi::ChatCompletions));
    assert_eq!(agent_call.path, "/v1/chat/completions");
    assert!(!agent_call.stream);
    assert_eq!(agent_call.json()["model"], "fake-model");
    assert_eq!(
        agent_call.header("authorization"),
        Some(format!("Bearer {}", llm.api_key()).as_str())
    );
    assert_eq!(agent_call.tool_names(), ["finish", "think"]);

    // Events: oldest first, each with an id, a kind, a naive timestamp and a source.
    let events = server.events(&id).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    for kind in [
        "SystemPromptEvent",
        "MessageEvent",
        "ActionEvent",
        "ObservationEvent",
        "ConversationStateUpdateEvent",
    ] {
        assert!(kinds.contains(&kind), "no {kind} in {kinds:?}");
    }
    let mut ids = HashSet::new();
    for event in &events {
        let event_id = event["id"].as_str().unwrap();
        assert!(is_dashed_uuid(event_id), "event id {event_id}");
        assert!(ids.insert(event_id), "duplicate event id {event_id}");
        let timestamp = event["timestamp"].as_str().unwrap();
        assert!(is_naive_timestamp(timestamp), "timestamp {timestamp}");
        assert!(
            ["agent", "user", "environment"].contains(&event["source"].as_str().unwrap()),
            "{event}"
        );
        // The search endpoint drops null fields, and never lists full-state snapshots.
        assert!(
            event.as_object().unwrap().values().all(|v| !v.is_null()),
            "{event}"
        );
        assert_ne!(event["key"], "full_state");
    }
    let message = events.iter().find(|e| e["kind"] == "MessageEvent").unwrap();
    assert_eq!(message["source"], "user");
    assert_eq!(message["llm_message"]["content"][0]["text"], "Say hello");
    let action = events.iter().find(|e| e["kind"] == "ActionEvent").unwrap();
    assert_eq!(action["tool_name"], "finish");
    assert_eq!(action["action"]["kind"], "FinishAction");
    assert_eq!(
        action["action"]["message"],
        fake_llm::DEFAULT_FINISH_MESSAGE
    );
    let statuses: Vec<&str> = events
        .iter()
        .filter(|e| e["key"] == "execution_status")
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["running", "finished"]);

    // Paging: `next_page_id` is the id of the first event of the next page.
    let first = server.events_page(&id, "limit=2").await;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    assert_eq!(first["next_page_id"], events[2]["id"]);
    let next_page_id = first["next_page_id"].as_str().unwrap();
    let second = server
        .events_page(&id, &format!("limit=2&page_id={next_page_id}"))
        .await;
    assert_eq!(second["items"][0]["id"], events[2]["id"]);
    let newest = server
        .events_page(&id, "limit=2&sort_order=TIMESTAMP_DESC")
        .await;
    assert_eq!(newest["items"][0]["id"], events[events.len() - 1]["id"]);
    assert_eq!(newest["next_page_id"], events[events.len() - 3]["id"]);
    let actions = server.events_page(&id, "kind=ActionEvent").await;
    assert_eq!(actions["items"].as_array().unwrap().len(), 1);
    assert_eq!(actions["next_page_id"], Value::Null);
    let (status, _) = server
        .request(
            Method::GET,
            &format!("/api/conversations/{id}/events/search?limit=101"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // The conversation list.
    let page = server.get_ok("/api/conversations/search?limit=10").await;
    assert_eq!(page["items"][0]["id"], id.as_str());
    assert_eq!(page["next_page_id"], Value::Null);

    // The title comes from the fake LLM (a tool-less completion after the first
    // message), possibly a moment after `finished`.
    let deadline = Instant::now() + RUN_TIMEOUT;
    while server.conversation(&id).await["title"] != fake_llm::DEFAULT_TEXT {
        assert!(Instant::now() < deadline, "no title from the fake LLM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_session_key_gets_401() {
    let _turn = crate::serial::shared().await;
    let server = AgentServer::start_with(AgentServerOptions::default().session_api_key("sk-right"));
    assert_eq!(server.session_api_key(), "sk-right");
    for path in [
        "/api/conversations/search",
        "/api/conversations/00000000000000000000000000000000",
        "/api/conversations/00000000000000000000000000000000/events/search",
    ] {
        for key in [Some("sk-wrong"), None] {
            let (status, body) = server.request_with_key(Method::GET, path, None, key).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} with {key:?}");
            assert_eq!(body, json!({"detail": "Unauthorized"}));
        }
    }
    let (status, _) = server
        .request(Method::GET, "/api/conversations/search", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    for path in ["/alive", "/health"] {
        let (status, _) = server.request_with_key(Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

// ---- Webhooks ---------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Hook {
    path: String,
    session_api_key: Option<String>,
    content_type: Option<String>,
    body: Value,
}

/// A webhook receiver that records every POST and answers 200 `{}`.
struct Receiver {
    url: String,
    hooks: Arc<Mutex<Vec<Hook>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let hooks: Arc<Mutex<Vec<Hook>>> = Arc::default();
        let recorded = Arc::clone(&hooks);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<Incoming>| {
                        let recorded = Arc::clone(&recorded);
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes());
                            let header = |name: &str| {
                                parts
                                    .headers
                                    .get(name)
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned)
                            };
                            recorded.lock().unwrap().push(Hook {
                                path: parts.uri.path().to_owned(),
                                session_api_key: header("x-session-api-key"),
                                content_type: header("content-type"),
                                body: body
                                    .ok()
                                    .and_then(|b| serde_json::from_slice(&b).ok())
                                    .unwrap_or(Value::Null),
                            });
                            Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                                Bytes::from_static(b"{}"),
                            )))
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver { url, hooks }
    }

    fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().unwrap().clone()
    }

    /// Every event pushed so far, in arrival order.
    fn events(&self) -> Vec<Value> {
        self.hooks()
            .into_iter()
            .filter(|hook| hook.path.contains("/events/"))
            .flat_map(|hook| hook.body.as_array().cloned().unwrap_or_default())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_push_conversation_info_and_event_batches() {
    let _turn = crate::serial::shared().await;
    let receiver = Receiver::start().await;
    let base = format!("{}/api/v1/webhooks", receiver.url);
    let llm = FakeLlm::start();
    let server =
        AgentServer::start_with(AgentServerOptions::default().webhook(WebhookOptions::new(&base)));

    let id = server.start_conversation(&llm, "Say hello").await;
    let hex = id.replace('-', "");
    server.wait_until_finished(&id, RUN_TIMEOUT).await;

    // Everything the search lists arrives by webhook too, the last batch after the
    // flush delay (the title's `stats` update comes a moment after `finished`).
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        let searched = server.events(&id).await;
        let pushed: HashSet<String> = receiver
            .events()
            .iter()
            .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        if searched
            .iter()
            .all(|e| pushed.contains(e["id"].as_str().unwrap()))
            && server.conversation(&id).await["title"] == fake_llm::DEFAULT_TEXT
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events missing from the webhook: {:#?}",
            receiver.hooks()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let a late batch arrive, if any.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let searched = server.events(&id).await;
    let hooks = receiver.hooks();

    for hook in &hooks {
        assert_eq!(
            hook.session_api_key.as_deref(),
            Some(server.session_api_key())
        );
        assert_eq!(hook.content_type.as_deref(), Some("application/json"));
        assert!(
            hook.path == "/api/v1/webhooks/conversations"
                || hook.path == format!("/api/v1/webhooks/events/{hex}"),
            "unexpected POST {}",
            hook.path
        );
    }
    // Conversation info: once, at creation, "idle" (or "running" if the run task was
    // quicker); later status changes come as events only.
    let infos: Vec<&Hook> = hooks
        .iter()
        .filter(|hook| hook.path.ends_with("/conversations"))
        .collect();
    assert_eq!(infos.len(), 1, "{infos:#?}");
    assert_eq!(infos[0].body["id"], id.as_str());
    let status = infos[0].body["execution_status"].as_str().unwrap();
    assert!(["idle", "running"].contains(&status), "{status}");
    assert_eq!(infos[0].body["agent"]["llm"]["model"], "openai/fake-model");

    // Events: arrays of at most 5 (the buffer size), in order, with ids unique.
    let batches: Vec<&Vec<Value>> = hooks
        .iter()
        .filter(|hook| hook.path.contains("/events/"))
        .map(|hook| {
            hook.body
                .as_array()
                .expect("an events POST carries an array")
        })
        .collect();
    assert!(batches.iter().all(|batch| (1..=5).contains(&batch.len())));
    let pushed = receiver.events();
    let mut seen = HashSet::new();
    assert!(pushed.iter().all(|e| seen.insert(e["id"].clone())));
    // Full-state snapshots: pushed (at subscription and after the run), never listed.
    let full_states = pushed.iter().filter(|e| e["key"] == "full_state").count();
    assert!(full_states >= 2, "{full_states} full_state events");
    assert!(searched.iter().all(|e| e["key"] != "full_state"));
    let full_state = pushed.iter().find(|e| e["key"] == "full_state").unwrap();
    assert_eq!(full_state["kind"], "ConversationStateUpdateEvent");
    assert_eq!(full_state["value"]["id"], id.as_str());
    // Status changes: running, then finished; stats follow.
    let statuses: Vec<&str> = pushed
        .iter()
        .filter(|e| e["key"] == "execution_status")
        .map(|e| e["value"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["running", "finished"]);
    assert!(pushed.iter().any(|e| e["key"] == "stats"));
    // Webhook events keep null fields the search drops (the system prompt has no
    // parent).
    let system_prompt = pushed
        .iter()
        .find(|e| e["kind"] == "SystemPromptEvent")
        .unwrap();
    assert_eq!(system_prompt["parent_id"], Value::Null);
    assert!(system_prompt.as_object().unwrap().contains_key("parent_id"));
    let listed = searched
        .iter()
        .find(|e| e["kind"] == "SystemPromptEvent")
        .unwrap();
    assert!(!listed.as_object().unwrap().contains_key("parent_id"));
    // Pushed in the order they happened.
    let order: Vec<&Value> = pushed
        .iter()
        .filter(|e| e["key"] != "full_state")
        .map(|e| &e["id"])
        .collect();
    let listed_order: Vec<&Value> = searched.iter().map(|e| &e["id"]).collect();
    assert_eq!(order, listed_order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_webhook_events_wait_for_the_flush_or_a_graceful_stop() {
    let _turn = crate::serial::shared().await;
    let receiver = Receiver::start().await;
    let base = format!("{}/api/v1/webhooks", receiver.url);
    let llm = FakeLlm::start();
    let mut webhook = WebhookOptions::new(&base);
    webhook.event_buffer_size = 100;
    webhook.flush_delay = Duration::from_secs(600);
    let mut server = AgentServer::start_with(AgentServerOptions::default().webhook(webhook));

    let id = server.start_conversation(&llm, "Say hello").await;
    server.wait_until_finished(&id, RUN_TIMEOUT).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The conversation info goes out at once; events wait for a full buffer or the
    // flush delay.
    let hooks = receiver.hooks();
    assert_eq!(hooks.len(), 1, "{hooks:#?}");
    assert!(hooks[0].path.ends_with("/conversations"));
    let listed = server.events(&id).await;

    // SIGTERM: the server shuts down cleanly and posts what it held, in one batch.
    let status = tokio::task::block_in_place(|| server.stop()).unwrap();
    // uvicorn re-raises the SIGTERM it handled once it has shut down.
    assert_eq!(status.signal(), Some(15), "{status}\n{}", server.logs());
    assert!(server.logs().contains("Application shutdown complete"));
    let hooks = receiver.hooks();
    let batches: Vec<&Hook> = hooks
        .iter()
        .filter(|h| h.path.contains("/events/"))
        .collect();
    assert_eq!(batches.len(), 1, "{hooks:#?}");
    let pushed: HashSet<&str> = batches[0]
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert!(
        listed
            .iter()
            .all(|e| pushed.contains(e["id"].as_str().unwrap()))
    );
}

// ---- Wire examples ------------------------------------------------------------------

/// Long strings cut, deep objects summarised: for printing examples.
fn trimmed(value: &Value, depth: usize) -> Value {
    match value {
        Value::String(text) if text.chars().count() > 60 => {
            Value::String(format!("{}…", text.chars().take(60).collect::<String>()))
        }
        Value::Array(items) if depth == 0 && !items.is_empty() => {
            json!([format!("… {} items", items.len())])
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .take(3)
                .map(|v| trimmed(v, depth - 1))
                .collect(),
        ),
        Value::Object(map) if depth == 0 && !map.is_empty() => {
            json!(format!("{{… {} keys}}", map.len()))
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), trimmed(v, depth - 1)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Prints one real example of every wire shape (run with `--ignored --nocapture`
/// after a version bump, and compare with the report in `agent_server.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "prints wire examples; run by hand"]
async fn print_wire_examples() {
    let _turn = crate::serial::shared().await;
    let receiver = Receiver::start().await;
    let base = format!("{}/api/v1/webhooks", receiver.url);
    let llm = FakeLlm::start();
    let server =
        AgentServer::start_with(AgentServerOptions::default().webhook(WebhookOptions::new(&base)));
    let show = |title: &str, value: &Value, depth: usize| {
        println!(
            "===== {title}\n{}",
            serde_json::to_string_pretty(&trimmed(value, depth)).unwrap()
        );
    };

    let body = AgentServer::conversation_request(&llm, &server.workspace_dir(), "Say hello");
    show("POST /api/conversations body", &body, 9);
    llm.set_delay(Duration::from_millis(1500));
    let created = server.create_conversation(&body).await;
    show("POST /api/conversations answer (201)", &created, 2);
    let id = created["id"].as_str().unwrap().to_owned();
    let mut seen = vec![created["execution_status"].clone()];
    let deadline = Instant::now() + RUN_TIMEOUT;
    loop {
        let info = server.conversation(&id).await;
        if seen.last() != Some(&info["execution_status"]) {
            seen.push(info["execution_status"].clone());
        }
        if info["execution_status"] == "finished" || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    llm.set_delay(Duration::ZERO);
    println!("===== execution_status seen by polling: {seen:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let info = server.conversation(&id).await;
    show("GET /api/conversations/{id} (finished)", &info, 3);
    let page = server.events_page(&id, "limit=3").await;
    show("GET …/events/search?limit=3", &page, 4);
    for event in server.events(&id).await {
        show(&format!("event {}", event["kind"]), &event, 4);
    }
    let second = server.start_conversation(&llm, "Again").await;
    server.wait_until_finished(&second, RUN_TIMEOUT).await;
    let conversations = server.get_ok("/api/conversations/search?limit=1").await;
    show("GET /api/conversations/search?limit=1", &conversations, 1);
    let (status, deleted) = server
        .request(
            Method::DELETE,
            &format!("/api/conversations/{second}"),
            None,
        )
        .await;
    println!("===== DELETE /api/conversations/{{id}}: {status} {deleted}");

    llm.set_failure(Some(500));
    let failing = server.start_conversation(&llm, "Fail").await;
    let failed = server
        .wait_for_status(&failing, &["error", "finished", "stuck"], RUN_TIMEOUT)
        .await;
    println!("===== with LLM 500: {}", failed["execution_status"]);
    for event in server.events(&failing).await {
        if event["kind"] != "SystemPromptEvent" {
            show(&format!("failing event {}", event["kind"]), &event, 3);
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for hook in receiver.hooks() {
        println!(
            "===== webhook POST {} key={:?} type={:?}",
            hook.path, hook.session_api_key, hook.content_type
        );
        match &hook.body {
            Value::Array(events) => {
                for event in events {
                    println!(
                        "    {} {} {} key={} value={}",
                        event["kind"],
                        event["id"],
                        event["timestamp"],
                        event["key"],
                        trimmed(&event["value"], 0)
                    );
                }
            }
            info => println!(
                "    ConversationInfo id={} status={} title={} keys={}",
                info["id"],
                info["execution_status"],
                info["title"],
                info.as_object().map_or(0, |m| m.len())
            ),
        }
    }
    let pushed = receiver.events();
    if let Some(full) = pushed.iter().find(|e| e["key"] == "full_state") {
        show("webhook full_state event", full, 2);
    }
    if let Some(event) = pushed.iter().find(|e| e["kind"] == "ActionEvent") {
        show("webhook ActionEvent", event, 2);
    }
    if let Some(hook) = receiver
        .hooks()
        .iter()
        .find(|h| h.path.ends_with("/conversations"))
    {
        show("webhook ConversationInfo", &hook.body, 2);
    }
}
