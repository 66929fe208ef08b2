//! The real OpenHands agent server (`openhands-agent-server` 1.58.2, Python) as a
//! child process for sandboxd's end-to-end tests, fully offline, and what it does on
//! the wire.
//!
//! # The harness
//!
//! - **Venv**: [`venv_python`] finds or makes `SANDBOXD_AGENT_VENV`, else
//!   `<cargo target dir>/agent-server-venv`, under a file lock (`<venv>.lock`), with
//!   Python 3.12 from `PYTHON312`, `python3.12` on `PATH`, or
//!   `$(pyenv root)/versions/3.12*/bin/python3.12`, then
//!   `pip install openhands-agent-server==1.58.2` (~1 minute, ~750 MB, needs PyPI
//!   once; `scripts/agent-server-venv.sh` does the same ahead of time, e.g. for CI).
//! - **Server**: [`AgentServer::start_with`] runs
//!   `python -m openhands.agent_server --host 127.0.0.1 --port <free port>` in its own
//!   process group, with a cleared environment: `OH_SESSION_API_KEYS_0`, a temporary
//!   `HOME`, `TMPDIR`, `OH_CONVERSATIONS_PATH`, `OH_WORKSPACE_PATH`,
//!   `OH_BASH_EVENTS_DIR`, `OH_CONVERSATION_WORKTREE_ROOT`, `TMUX_TMPDIR`; VS Code and
//!   tool preloading off; `TZ=UTC`; offline settings (`LITELLM_LOCAL_MODEL_COST_MAP`,
//!   otherwise litellm fetches its price map from GitHub and retries for seconds;
//!   telemetry exporter `none`, `DO_NOT_TRACK`, `HF_HUB_OFFLINE`); and the webhook
//!   settings of [`WebhookOptions`]. It waits for `GET /alive` (~3-5 s: Python
//!   imports). Dropping the handle SIGKILLs the group; [`AgentServer::stop`] sends
//!   SIGTERM first, which lets the server flush webhook batches it still holds.
//! - **LLM**: conversations talk to [`FakeLlm`], which
//!   answers every agent step with a call to the `finish` tool, so a conversation
//!   runs to `finished` in ~50 ms after two completions (the agent's step and the
//!   title), with no network.
//!
//! # Wire behaviour of 1.58.2 (observed with this harness)
//!
//! Everything below was seen on the wire (tests/tests/e2e/real_agent_server.rs checks the
//! stable parts; its ignored test `print_wire_examples` prints all shapes again).
//! Examples are trimmed (`…`).
//!
//! ## Authentication
//!
//! Every `/api/*` route needs `X-Session-API-Key: <key>` (any key of
//! `OH_SESSION_API_KEYS_*`). Missing or wrong → `401 {"detail":"Unauthorized"}`,
//! checked before anything else (also for unknown conversations). `GET /alive`
//! (`{"status":"ok"}`) and `GET /health` need no key.
//!
//! ## Creating and running a conversation
//!
//! One request creates the conversation, stores the first user message and starts
//! the agent loop (`initial_message.run: true`; with `false` the run needs
//! `POST /api/conversations/{id}/run`). [`AgentServer::start_conversation`] sends:
//!
//! ```json
//! POST /api/conversations
//! {
//!   "agent": {
//!     "kind": "Agent",
//!     "llm": {"model": "openai/fake-model", "base_url": "http://127.0.0.1:32931/v1",
//!             "api_key": "fake-llm-key-32931", "usage_id": "agent", "num_retries": 0,
//!             "input_cost_per_token": 0.001, "output_cost_per_token": 0.002},
//!     "tools": []
//!   },
//!   "workspace": {"working_dir": "/tmp/agent-server-60j2qB/workspace/project"},
//!   "initial_message": {"role": "user", "content": [{"type": "text", "text": "Say hello"}],
//!                       "run": true}
//! }
//! ```
//!
//! `"tools": []` still gives the agent the built-in `finish` and `think` tools
//! (`include_default_tools: ["FinishTool", "ThinkTool"]`). The answer is `201 Created`
//! (`200` when `conversation_id` names an existing conversation) with a
//! ConversationInfo, composed right after the run was scheduled: `execution_status`
//! `"idle"` in every run observed (a race: it could be `"running"`), `title: null`,
//! `runtime_info: null`.
//!
//! ## ConversationInfo
//!
//! `GET /api/conversations/{id}`: `{id}` is the UUID with or without dashes; an
//! unknown UUID → `404 {"detail":"Not Found"}`, a non-UUID → `422` (FastAPI
//! validation list). 35 fields, nulls included:
//!
//! ```json
//! {
//!   "id": "f287f565-6b5a-4a2b-90c4-af2c73424864",
//!   "execution_status": "finished",
//!   "title": "Fake title",
//!   "created_at": "2026-11-26T08:40:01.688323Z",
//!   "updated_at": "2026-11-26T08:40:03.589692Z",
//!   "metrics": null,
//!   "stats": {"usage_to_metrics": {"agent": {
//!     "model_name": "openai/fake-model", "accumulated_cost": 0.04, "max_budget_per_task": null,
//!     "accumulated_token_usage": {"model": "openai/fake-model", "prompt_tokens": 20,
//!       "completion_tokens": 10, "cache_read_tokens": 0, "cache_write_tokens": 0,
//!       "reasoning_tokens": 0, "context_window": 0, "per_turn_token": 15, "response_id": ""},
//!     "costs": […], "response_latencies": […], "token_usages": […]}}},
//!   "tags": {},
//!   "agent": {"kind": "Agent", "llm": {"model": "openai/fake-model", "api_key": null,
//!             "base_url": "http://127.0.0.1:32931/v1", "usage_id": "agent", … 56 keys},
//!             "tools": [], "include_default_tools": ["FinishTool", "ThinkTool"], …},
//!   "workspace": {"kind": "LocalWorkspace", "working_dir": "/tmp/…/workspace/project"},
//!   "persistence_dir": "/tmp/…/workspace/conversations/f287f5656b5a4a2b90c4af2c73424864",
//!   "last_user_message_id": "1c3c09f4-eed0-40c1-a1a3-423b43933f48",
//!   "leaf_event_id": "c08dcaca-94e8-4e40-8b7e-8c86272ce5eb",
//!   "runtime_info": {"runtime_status": "available", "can_resume": true, "runtime_error": null},
//!   "max_iterations": 500, "stuck_detection": true, "confirmation_policy": {"kind": "NeverConfirm"},
//!   "security_analyzer": null, "secret_registry": {"secret_sources": {}}, "agent_state": {},
//!   "activated_knowledge_skills": [], "invoked_skills": [], "blocked_actions": {},
//!   "blocked_messages": {}, "hook_config": null, "forked_from_conversation_id": null,
//!   "forked_from_event_id": null, "parent_conversation_id": null, "sub_conversation_ids": [],
//!   "current_model_id": null, "available_models": [], "supports_runtime_model_switch": false,
//!   "launched_agent_profile": null, "client_tools": [], "tool_module_qualnames": {}
//! }
//! ```
//!
//! - `id`: dashed lower-case UUID. `created_at`/`updated_at`: ISO 8601 UTC with
//!   microseconds and `Z`.
//! - `metrics` stayed `null`; cost and tokens are in
//!   `stats.usage_to_metrics.<usage_id>` (the title completion counts too: two
//!   completions of 10 + 5 tokens → 20/10 tokens, cost 0.04).
//! - `title`: `null` until a title completion (the agent's LLM, no tools, right after
//!   the first message, concurrently with the run) answers; if it answers without
//!   text, the first message (truncated) becomes the title.
//! - `agent.llm.api_key` is redacted to `null`.
//!
//! `execution_status` over a run, seen by polling (LLM delayed 1.5 s): `idle` (the
//! create answer) → `running` → `finished`. With an LLM answering 500: `running` →
//! `error`, plus `ConversationErrorEvent`s (`code` `"LLMBadRequestError"`,
//! `classification`, `detail`) for the failed title and the failed step. `deleting`
//! appears only in the webhook sent by `DELETE /api/conversations/{id}` (answer
//! `{"success":true}`).
//!
//! `GET /api/conversations/search?page_id&limit(1..100, default 100)&status&sort_order`
//! (`CREATED_AT_DESC` default, `CREATED_AT`, `UPDATED_AT`, `UPDATED_AT_DESC`) →
//! `{"items": [ConversationInfo], "next_page_id": "f287f5656b5a4a2b90c4af2c73424864"}`:
//! here `next_page_id` is the first conversation of the next page, as 32 hex digits
//! WITHOUT dashes (unlike the items' dashed ids); `null` on the last page.
//!
//! ## Events
//!
//! `GET /api/conversations/{id}/events/search` (unknown conversation → 404):
//! - `limit` 1..100, default 100 (101 → 422); `page_id`; `kind` (e.g. `ActionEvent`);
//!   `source` (`agent`|`user`|`environment`); `body` (case-insensitive text match on
//!   `MessageEvent`s only); `sort_order` `TIMESTAMP` (default) | `TIMESTAMP_DESC`;
//!   `timestamp__gte`, `timestamp__lt` (datetimes; one with a timezone is converted
//!   to the server's local time, then compared as naive ISO strings).
//! - Answer `{"items": [Event], "next_page_id": "<event id>" | null}`.
//!   `next_page_id` is the id of the first event of the NEXT page (the page that
//!   `page_id=<it>` returns starts with that event, inclusive); `null` on the last
//!   page. An unknown `page_id` silently starts from the beginning.
//! - Order: the log's append order (oldest first), or exactly reversed for
//!   `TIMESTAMP_DESC`: nothing is sorted by timestamp.
//! - Items are dumped with `exclude_none`: null fields are absent (no `parent_id`
//!   on the root `SystemPromptEvent`, no `critic_result`, …).
//! - `full_state` snapshots are never listed (they are not in the log).
//!
//! Every event has `kind`, `id` (dashed lower-case UUID4), `timestamp`, `source`,
//! and `parent_id` (the previous event in the conversation tree) except the root.
//! `timestamp` is `datetime.now().isoformat()`: naive server-local time (UTC here,
//! `TZ=UTC`), microseconds, NO timezone, e.g. `"2026-11-26T08:40:01.712816"` (and
//! without the fraction when the microseconds are 0).
//!
//! A finished single-turn run lists 9 events:
//!
//! | # | kind | source | notes |
//! |---|---|---|---|
//! | 1 | `SystemPromptEvent` | agent | `system_prompt`, `tools`; root, no `parent_id` |
//! | 2 | `MessageEvent` | user | `llm_message.content[0].text` = the message |
//! | 3 | `ConversationStateUpdateEvent` | environment | `key: "last_user_message_id"` |
//! | 4 | `ConversationStateUpdateEvent` | environment | `key: "execution_status"`, `value: "running"` |
//! | 5 | `ActionEvent` | agent | `tool_name: "finish"`, `action.kind: "FinishAction"` |
//! | 6 | `ObservationEvent` | environment | `observation.kind: "FinishObservation"` |
//! | 7 | `ConversationStateUpdateEvent` | environment | `key: "execution_status"`, `value: "finished"` |
//! | 8, 9 | `ConversationStateUpdateEvent` | environment | `key: "stats"`, one per completion |
//!
//! The two `stats` updates (one per completion: the agent's step and the title) have
//! no fixed place: seen before `running`, between `running` and the `ActionEvent`,
//! and after `finished`. Examples:
//!
//! ```json
//! {"id": "e698e716-d829-459c-a672-91841271b1fc", "timestamp": "2026-11-26T08:40:01.786663",
//!  "source": "environment", "parent_id": "1c3c09f4-eed0-40c1-a1a3-423b43933f48",
//!  "key": "execution_status", "value": "running", "kind": "ConversationStateUpdateEvent"}
//! {"id": "42fef691-ab8d-4422-a3dc-ee16091938fd", "timestamp": "2026-11-26T08:40:03.563967",
//!  "source": "environment", "parent_id": "1c3c09f4-…", "key": "stats",
//!  "value": {"usage_to_metrics": {"agent": {"model_name": "openai/fake-model",
//!    "accumulated_cost": 0.02, "max_budget_per_task": null,
//!    "accumulated_token_usage": {"prompt_tokens": 10, "completion_tokens": 5, …}}}},
//!  "kind": "ConversationStateUpdateEvent"}
//! {"id": "1c3c09f4-eed0-40c1-a1a3-423b43933f48", "timestamp": "2026-11-26T08:40:01.718997",
//!  "source": "user", "parent_id": "39ab51bb-5460-4bae-aeb3-cfeaf9cbf1ef",
//!  "llm_message": {"role": "user", "content": [{"cache_prompt": false, "type": "text",
//!    "text": "Say hello"}], "thinking_blocks": []},
//!  "activated_skills": [], "extended_content": [], "kind": "MessageEvent"}
//! {"id": "7fcdb13f-3c43-4b93-80f6-e50120cab0ce", "timestamp": "2026-11-26T08:40:03.573053",
//!  "source": "agent", "parent_id": "1c3c09f4-…", "thought": [], "thinking_blocks": [],
//!  "action": {"message": "Done: the fake LLM finished the task.", "kind": "FinishAction"},
//!  "tool_name": "finish", "tool_call_id": "call_fake_2",
//!  "tool_call": {"id": "call_fake_2", "name": "finish",
//!    "arguments": "{\"message\": \"Done: the fake LLM finished the task.\"}", "origin": "completion"},
//!  "llm_response_id": "chatcmpl-fake-2", "security_risk": "UNKNOWN",
//!  "summary": "finish: {\"message\": …}", "kind": "ActionEvent"}
//! {"id": "c08dcaca-94e8-4e40-8b7e-8c86272ce5eb", "timestamp": "2026-11-26T08:40:03.577058",
//!  "source": "environment", "parent_id": "7fcdb13f-…", "tool_name": "finish",
//!  "tool_call_id": "call_fake_2", "action_id": "7fcdb13f-…",
//!  "observation": {"content": [{"cache_prompt": false, "type": "text", "text": "Done: …"}],
//!    "is_error": false, "kind": "FinishObservation"},
//!  "extended_content": [], "kind": "ObservationEvent"}
//! ```
//!
//! A page (`?limit=3`): `{"items": [SystemPromptEvent, MessageEvent,
//! last_user_message_id update], "next_page_id": "e698e716-…"}` (the `running` update,
//! event 4).
//!
//! ## Webhooks
//!
//! Configured by `OH_WEBHOOKS_0_BASE_URL` and `OH_WEBHOOKS_0_EVENT_BUFFER_SIZE`
//! (default 5), `_FLUSH_DELAY` (default 30 s, a float), `_NUM_RETRIES` (default 3),
//! `_RETRY_DELAY` (default 5 s, an int), `_MAX_QUEUE_SIZE` (1000 events),
//! `_MAX_BATCH_BYTES` (5 MB), `_MAX_QUEUE_BYTES` (50 MB); the spec also has extra
//! `headers`. Every POST carries `X-Session-API-Key: <the server's
//! first session key>`, `Content-Type: application/json`,
//! `User-Agent: python-httpx/0.28.1`; a non-2xx answer counts as a failure.
//!
//! `POST {base}/conversations`, body: a ConversationInfo (all 35 fields, nulls
//! included, `runtime_info: null`, `agent.llm.api_key: null`). Sent immediately (no
//! batching) when a conversation is started (status `"idle"` observed, as in the
//! create answer; `title` may already be set), paused, interrupted, updated (`PATCH`
//! title/tags), and deleted (`execution_status: "deleting"`). NOT when the status
//! changes during a run: `running`, `finished`, `error` reach the webhook only as
//! events. After the retries fail it is dropped. Its order relative to the event
//! batches is not guaranteed: for a second conversation on the same server the first
//! events batch arrived BEFORE the conversation info.
//!
//! `POST {base}/events/{conversation id as 32 hex digits, no dashes}`, body: a JSON
//! array of events, oldest first, in the log's order. Differences from
//! `/events/search`: null-valued fields are included (`"parent_id": null`,
//! `"critic_result": null`, `"reasoning_content": null`,
//! `"tool_call": {…, "responses_item_id": null}`, …), and the batches also carry
//! `ConversationStateUpdateEvent`s with `key: "full_state"` (never listed) when the
//! webhook subscribes (conversation start: `value.execution_status` `"idle"`) and
//! after each run (`"finished"`/`"error"`).
//! `full_state.value` is the conversation state (`id`, `agent`, `workspace`,
//! `persistence_dir`, `max_iterations`, `stuck_detection`, `execution_status`,
//! `confirmation_policy`, `activated_knowledge_skills`, `activated_path_rules`,
//! `invoked_skills`, `blocked_actions`, `blocked_messages`, `secret_registry`,
//! `stats`, `agent_state`, `tags`, `head_is_empty`, later `last_user_message_id`,
//! `leaf_event_id`): no `title`, no `created_at`/`updated_at`.
//!
//! Batching: an event is queued; when the queue holds `EVENT_BUFFER_SIZE` events it
//! is posted at once; otherwise a timer started by the first queued event (not reset
//! by later ones) posts whatever is queued after `FLUSH_DELAY`. A batch that still
//! fails after the retries goes back to the front of the queue and is tried again
//! at the next flush (oldest events dropped past the queue bounds). SIGTERM
//! (graceful shutdown) and deleting the conversation flush what is queued.
//!
//! One run, buffer 5, flush delay 0.3 s (`[kind key=value]`):
//!
//! ```text
//! POST /api/v1/webhooks/conversations            ConversationInfo, execution_status "idle"
//! POST /api/v1/webhooks/events/f287f5656b5a4a2b90c4af2c73424864   (buffer full)
//!   [CSUE full_state={… "execution_status": "idle"}, SystemPromptEvent, MessageEvent,
//!    CSUE last_user_message_id, CSUE execution_status="running"]
//! POST …/events/f287f565…   (buffer full)
//!   [CSUE stats, CSUE stats, ActionEvent, ObservationEvent, CSUE execution_status="finished"]
//! POST …/events/f287f565…   (0.3 s later: flush delay)
//!   [CSUE full_state={… "execution_status": "finished"}]
//! ```
//!
//! A webhook event (as pushed; the same event from the search lacks the nulls):
//!
//! ```json
//! {"id": "c7ddaea2-0c9a-47b5-bcb2-3463716c4eb4", "timestamp": "2026-11-26T08:40:01.708228",
//!  "source": "environment", "parent_id": null, "key": "full_state",
//!  "value": {"id": "f287f565-6b5a-4a2b-90c4-af2c73424864", "execution_status": "idle",
//!            "agent": {…}, "stats": {"usage_to_metrics": {}}, "tags": {}, …},
//!  "kind": "ConversationStateUpdateEvent"}
//! ```

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::fake_llm::FakeLlm;
use crate::venv::{Venv, find_python312};

/// The pinned agent server release.
pub const AGENT_SERVER_VERSION: &str = "1.58.2";
/// The pip requirement the venv is built from.
pub const AGENT_SERVER_REQUIREMENT: &str = "openhands-agent-server==1.58.2";
/// Written into the venv once the install succeeded; its absence means "(re)install".
const VENV_MARKER: &str = ".sandboxd-openhands-agent-server-1.58.2";
/// How long the server may take from spawn to answering `GET /alive` (it imports
/// litellm and friends: ~3 s on an idle machine, much more on a busy CI runner).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long `stop` waits for a clean exit after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

// ---- The venv -----------------------------------------------------------------------

/// The venv of the agent server: `SANDBOXD_AGENT_VENV`, else
/// `<target dir>/agent-server-venv`, made with Python 3.12.
pub const VENV: Venv = Venv {
    dir_name: "agent-server-venv",
    dir_override: "SANDBOXD_AGENT_VENV",
    requirement: AGENT_SERVER_REQUIREMENT,
    marker: VENV_MARKER,
    base_python: find_python312,
    help: "The real OpenHands agent server needs Python 3.12 (e.g. `pyenv install 3.12`, or \
           PYTHON312=/path/to/python3.12) and PyPI the first time (~750 MB, about a minute); \
           scripts/agent-server-venv.sh makes the venv ahead of time, or point \
           SANDBOXD_AGENT_VENV at a venv that has openhands-agent-server==1.58.2.",
};

/// Where the venv lives.
pub fn venv_dir() -> PathBuf {
    VENV.dir()
}

/// The venv's Python, after making sure the agent server is installed in it
/// (see [`crate::venv`]).
///
/// # Panics
/// With instructions if Python 3.12 cannot be found or the install fails.
pub fn venv_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| VENV.bin().join("python")).clone()
}

/// The README's `[[specs]]` entry for the real agent server on the local
/// runtime, with `python` the venv's, and `extra` more keys of the entry
/// (`warm = 1`).
pub fn local_spec_toml(python: &str, extra: &str) -> String {
    format!(
        r#"[[specs]]
id = "openhands-agent-server"
command = ["{python}", "-m", "openhands.agent_server", "--host", "127.0.0.1", "--port", "{{port}}"]
initial_env = {{ TZ = "UTC", OH_CONVERSATIONS_PATH = "{{workspace}}/conversations", OH_WORKSPACE_PATH = "{{workspace}}/project", OH_BASH_EVENTS_DIR = "{{workspace}}/bash_events", OH_ENABLE_VSCODE = "false", OH_PRELOAD_TOOLS = "false", LITELLM_LOCAL_MODEL_COST_MAP = "True", DO_NOT_TRACK = "1", OH_TELEMETRY_EXPORTER = "none" }}
{extra}
"#
    )
}

// ---- Options ------------------------------------------------------------------------

/// How to start one agent server.
#[derive(Debug, Clone, Default)]
pub struct AgentServerOptions {
    /// The session API key (`OH_SESSION_API_KEYS_0`); a random one when `None`.
    pub session_api_key: Option<String>,
    /// Push events and conversation info to a webhook receiver.
    pub webhook: Option<WebhookOptions>,
    /// More environment for the server (applied last, so it can override anything).
    pub env: Vec<(String, String)>,
}

impl AgentServerOptions {
    pub fn session_api_key(mut self, key: &str) -> AgentServerOptions {
        self.session_api_key = Some(key.to_owned());
        self
    }

    pub fn webhook(mut self, webhook: WebhookOptions) -> AgentServerOptions {
        self.webhook = Some(webhook);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> AgentServerOptions {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }
}

/// The webhook settings (`OH_WEBHOOKS_0_*`). Upstream defaults: buffer 5 events,
/// flush delay 30 s, 3 retries 5 s apart; [`WebhookOptions::new`] keeps the buffer
/// and retries but flushes after 0.3 s and retries after 1 s, so tests stay fast.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// `OH_WEBHOOKS_0_BASE_URL`: events go to `{base_url}/events/{id_hex}`,
    /// conversation info to `{base_url}/conversations`.
    pub base_url: String,
    /// `OH_WEBHOOKS_0_EVENT_BUFFER_SIZE` (≥ 1): events per batch.
    pub event_buffer_size: u32,
    /// `OH_WEBHOOKS_0_FLUSH_DELAY` (> 0): a partial batch goes out this long after
    /// its first event was queued.
    pub flush_delay: Duration,
    /// `OH_WEBHOOKS_0_NUM_RETRIES`: retries after a failed POST.
    pub num_retries: u32,
    /// `OH_WEBHOOKS_0_RETRY_DELAY`: whole seconds between retries (an int upstream).
    pub retry_delay_secs: u32,
}

impl WebhookOptions {
    pub fn new(base_url: &str) -> WebhookOptions {
        WebhookOptions {
            base_url: base_url.trim_end_matches('/').to_owned(),
            event_buffer_size: 5,
            flush_delay: Duration::from_millis(300),
            num_retries: 3,
            retry_delay_secs: 1,
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("OH_WEBHOOKS_0_BASE_URL".to_owned(), self.base_url.clone()),
            (
                "OH_WEBHOOKS_0_EVENT_BUFFER_SIZE".to_owned(),
                self.event_buffer_size.max(1).to_string(),
            ),
            (
                "OH_WEBHOOKS_0_FLUSH_DELAY".to_owned(),
                format!("{:.3}", self.flush_delay.as_secs_f64().max(0.001)),
            ),
            (
                "OH_WEBHOOKS_0_NUM_RETRIES".to_owned(),
                self.num_retries.to_string(),
            ),
            (
                "OH_WEBHOOKS_0_RETRY_DELAY".to_owned(),
                self.retry_delay_secs.to_string(),
            ),
        ]
    }
}

// ---- The server ---------------------------------------------------------------------

/// A running agent server (a child process in its own process group). Dropping it
/// SIGKILLs the whole group and removes its directory.
pub struct AgentServer {
    child: Child,
    /// The exit status once the server was reaped. Until then its pid (= the
    /// group id) cannot be reused, so signalling the group is safe; after, never.
    exit: Option<std::process::ExitStatus>,
    url: String,
    session_api_key: String,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

impl AgentServer {
    /// Starts a server with default options (no webhook).
    ///
    /// # Panics
    /// If the venv cannot be made or the server does not come up; the message holds
    /// the end of the server's log.
    pub fn start() -> AgentServer {
        AgentServer::start_with(AgentServerOptions::default())
    }

    /// Starts a server with these options (blocks until `GET /alive` answers).
    pub fn start_with(options: AgentServerOptions) -> AgentServer {
        match AgentServer::try_start(options) {
            Ok(server) => server,
            Err(error) => panic!("the OpenHands agent server did not start: {error}"),
        }
    }

    /// Starts a server, or says why it could not (the venv is still made or panics).
    pub fn try_start(options: AgentServerOptions) -> Result<AgentServer, String> {
        let python = venv_python();
        let session_api_key = options.session_api_key.clone().unwrap_or_else(random_key);
        // A port another process grabs between our probe and the server's bind makes
        // the server exit at once; try a few ports before giving up.
        let mut last_error = String::new();
        for _ in 0..3 {
            match AgentServer::spawn(&python, &session_api_key, &options) {
                Ok(server) => return Ok(server),
                Err((error, port_taken)) => {
                    last_error = error;
                    if !port_taken {
                        break;
                    }
                }
            }
        }
        Err(last_error)
    }

    /// One attempt; `Err((message, the port was taken))`.
    fn spawn(
        python: &Path,
        session_api_key: &str,
        options: &AgentServerOptions,
    ) -> Result<AgentServer, (String, bool)> {
        let fail = |message: String| (message, false);
        let dir = tempfile::Builder::new()
            .prefix("agent-server-")
            .tempdir()
            .map_err(|e| fail(format!("tempdir: {e}")))?;
        let root = dir.path();
        for sub in [
            "home",
            "tmp",
            "tmux",
            "worktrees",
            "workspace/conversations",
            "workspace/project",
            "workspace/bash_events",
        ] {
            fs::create_dir_all(root.join(sub)).map_err(|e| fail(format!("mkdir {sub}: {e}")))?;
        }
        let port = free_port().map_err(|e| fail(format!("no free port: {e}")))?;
        let log_path = root.join("agent-server.log");
        let log = File::create(&log_path).map_err(|e| fail(format!("log file: {e}")))?;
        let log_err = log
            .try_clone()
            .map_err(|e| fail(format!("log file: {e}")))?;

        let mut command = Command::new(python);
        command
            .args(["-m", "openhands.agent_server", "--host", "127.0.0.1"])
            .arg("--port")
            .arg(port.to_string())
            .current_dir(root)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", root.join("home"))
            .env("TMPDIR", root.join("tmp"))
            .env("TMUX_TMPDIR", root.join("tmux"))
            .env("LANG", "C.UTF-8")
            // Event timestamps are naive local time: make "local" UTC, as in a sandbox.
            .env("TZ", "UTC")
            .env("PYTHONUNBUFFERED", "1")
            // Rich logs wrap at 80 columns without a terminal.
            .env("COLUMNS", "200")
            .env("OPENHANDS_SUPPRESS_BANNER", "1")
            // Offline: litellm would fetch its model price map from GitHub (retrying
            // for seconds); use the copy it ships with.
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_TELEMETRY", "False")
            .env("HF_HUB_OFFLINE", "1")
            .env("DO_NOT_TRACK", "1")
            .env("OTEL_SDK_DISABLED", "true")
            .env("OH_TELEMETRY_EXPORTER", "none")
            .env("OH_SESSION_API_KEYS_0", session_api_key)
            .env(
                "OPENHANDS_AGENT_SERVER_CONFIG_PATH",
                root.join("no-config.json"),
            )
            .env(
                "OH_CONVERSATIONS_PATH",
                root.join("workspace/conversations"),
            )
            .env("OH_WORKSPACE_PATH", root.join("workspace/project"))
            .env("OH_BASH_EVENTS_DIR", root.join("workspace/bash_events"))
            .env("OH_CONVERSATION_WORKTREE_ROOT", root.join("worktrees"))
            .env("OH_ENABLE_VSCODE", "false")
            .env("OH_PRELOAD_TOOLS", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            // Its own process group, so Drop can kill whatever it spawned too.
            .process_group(0);
        if let Some(webhook) = &options.webhook {
            command.envs(webhook.env());
        }
        command.envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let child = command
            .spawn()
            .map_err(|e| fail(format!("cannot run {}: {e}", python.display())))?;

        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| fail(format!("http client: {e}")))?;
        let mut server = AgentServer {
            child,
            exit: None,
            url: format!("http://127.0.0.1:{port}"),
            session_api_key: session_api_key.to_owned(),
            client,
            dir,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if alive(port) {
                return Ok(server);
            }
            if server.leader_exited() {
                server.kill();
                let status = server
                    .exit
                    .map_or_else(|| "unknown status".to_owned(), |s| s.to_string());
                let log = server.logs();
                let port_taken = log.contains("address already in use");
                return Err((
                    format!(
                        "it exited ({status}) before answering /alive:\n{}",
                        tail(&log)
                    ),
                    port_taken,
                ));
            }
            if Instant::now() > deadline {
                server.kill();
                return Err(fail(format!(
                    "no answer on /alive after {START_TIMEOUT:?}:\n{}",
                    tail(&server.logs())
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key every `/api/*` call carries in `X-Session-API-Key` (and that the
    /// server sends on its webhook POSTs).
    pub fn session_api_key(&self) -> &str {
        &self.session_api_key
    }

    /// The server's pid (= its process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The default working directory for conversations (exists; empty at start).
    pub fn workspace_dir(&self) -> PathBuf {
        self.dir.path().join("workspace/project")
    }

    /// Where the server persists conversations (`<id hex>/` per conversation).
    pub fn conversations_dir(&self) -> PathBuf {
        self.dir.path().join("workspace/conversations")
    }

    /// Everything the server printed so far (stdout and stderr).
    pub fn logs(&self) -> String {
        fs::read_to_string(self.dir.path().join("agent-server.log")).unwrap_or_default()
    }

    // ---- HTTP ---------------------------------------------------------------------

    /// Any request with the session key; the status and the body as JSON
    /// (`Value::Null` when it is not JSON).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        self.request_with_key(method, path, body, Some(&self.session_api_key))
            .await
    }

    /// Any request with this key (or none).
    pub async fn request_with_key(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, format!("{}{path}", self.url));
        if let Some(key) = key {
            request = request.header("X-Session-API-Key", key);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("agent server {path}: {e}"));
        let status = response.status();
        let bytes = response.bytes().await.unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// `GET path` with the session key; panics unless 200.
    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.request(Method::GET, path, None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    // ---- Conversations ------------------------------------------------------------

    /// The `POST /api/conversations` body [`start_conversation`](Self::start_conversation)
    /// sends: an `Agent` whose LLM is `llm`, no tools besides the built-in `finish`
    /// and `think`, a local workspace, and the message with `run: true` (so the server
    /// starts the agent loop right after creating the conversation).
    pub fn conversation_request(llm: &FakeLlm, working_dir: &Path, message: &str) -> Value {
        json!({
            "agent": {
                "kind": "Agent",
                "llm": llm.llm_config(),
                "tools": [],
            },
            "workspace": {"working_dir": working_dir.display().to_string()},
            "initial_message": {
                "role": "user",
                "content": [{"type": "text", "text": message}],
                "run": true,
            },
        })
    }

    /// `POST /api/conversations` with this body; the ConversationInfo it answers.
    ///
    /// # Panics
    /// Unless the server answers 201 (or 200 for an existing id).
    pub async fn create_conversation(&self, body: &Value) -> Value {
        let (status, info) = self
            .request(Method::POST, "/api/conversations", Some(body))
            .await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "POST /api/conversations answered {status}: {info}\n{}",
            tail(&self.logs())
        );
        info
    }

    /// Creates a conversation whose agent talks to `llm`, sends `message` as the
    /// first user message and starts the run, in one request (see
    /// [`conversation_request`](Self::conversation_request)). Returns the id as the
    /// server gives it (a dashed UUID).
    pub async fn start_conversation(&self, llm: &FakeLlm, message: &str) -> String {
        let body = AgentServer::conversation_request(llm, &self.workspace_dir(), message);
        let info = self.create_conversation(&body).await;
        info["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {info}"))
            .to_owned()
    }

    /// `GET /api/conversations/{id}`: the ConversationInfo.
    pub async fn conversation(&self, id: &str) -> Value {
        self.get_ok(&format!("/api/conversations/{id}")).await
    }

    /// Polls the conversation (every 100 ms) until its `execution_status` is one of
    /// `statuses`; returns that ConversationInfo.
    ///
    /// # Panics
    /// After `timeout`, with the last status and the server's log.
    pub async fn wait_for_status(&self, id: &str, statuses: &[&str], timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let info = self.conversation(id).await;
            let status = info["execution_status"].as_str().unwrap_or_default();
            if statuses.contains(&status) {
                return info;
            }
            assert!(
                Instant::now() < deadline,
                "conversation {id} still {status:?} after {timeout:?} (waiting for \
                 {statuses:?})\n{}",
                tail(&self.logs())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the conversation is `finished`; returns its ConversationInfo.
    ///
    /// # Panics
    /// If it ends in `error` or `stuck` instead, or after `timeout`.
    pub async fn wait_until_finished(&self, id: &str, timeout: Duration) -> Value {
        let info = self
            .wait_for_status(id, &["finished", "error", "stuck"], timeout)
            .await;
        assert_eq!(
            info["execution_status"],
            "finished",
            "conversation {id} did not finish\n{}",
            tail(&self.logs())
        );
        info
    }

    /// One page of `GET /api/conversations/{id}/events/search?{query}` (the query
    /// without `?`, e.g. `limit=2&sort_order=TIMESTAMP_DESC`).
    pub async fn events_page(&self, id: &str, query: &str) -> Value {
        let mut path = format!("/api/conversations/{id}/events/search");
        if !query.is_empty() {
            path.push('?');
            path.push_str(query);
        }
        self.get_ok(&path).await
    }

    /// All events of the conversation, oldest first: every page of
    /// `/events/search?limit=100`, following `next_page_id`.
    pub async fn events(&self, id: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut page_id: Option<String> = None;
        for _ in 0..10_000 {
            let query = match &page_id {
                Some(page_id) => format!("limit=100&page_id={page_id}"),
                None => "limit=100".to_owned(),
            };
            let page = self.events_page(id, &query).await;
            if let Some(items) = page["items"].as_array() {
                events.extend(items.iter().cloned());
            }
            match page["next_page_id"].as_str() {
                Some(next) if page_id.as_deref() != Some(next) => page_id = Some(next.to_owned()),
                _ => return events,
            }
        }
        events
    }

    // ---- Stopping -------------------------------------------------------------------

    /// SIGTERM to the process group, then waits for a clean exit (uvicorn shuts
    /// down, webhook subscribers flush what they hold); SIGKILL after 15 s. Returns
    /// how it ended: a clean shutdown ends "by signal 15" (uvicorn re-raises the
    /// SIGTERM it handled), a forced one by signal 9.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        if self.exit.is_none() {
            signal_group(&self.child, libc::SIGTERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline && !self.leader_exited() {
                std::thread::sleep(Duration::from_millis(50));
            }
            // Whatever it left behind (or the server itself, after the timeout).
            self.kill();
        }
        self.exit
    }

    /// Whether the server process has exited. On Linux without reaping it (it stays
    /// a zombie until `wait`, so its group id stays ours): `/proc/<pid>/stat` state
    /// `Z` or `X`. Elsewhere it reaps (and the group can no longer be signalled).
    fn leader_exited(&mut self) -> bool {
        if self.exit.is_some() {
            return true;
        }
        if !Path::new("/proc/self/stat").exists() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(status);
                return true;
            }
            return false;
        }
        match fs::read_to_string(format!("/proc/{}/stat", self.child.id())) {
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_some_and(|state| state == "Z" || state == "X"),
            Err(_) => true,
        }
    }

    /// SIGKILL to the whole process group, then reaps the server. Idempotent.
    pub fn kill(&mut self) {
        if self.exit.is_some() {
            return;
        }
        signal_group(&self.child, libc::SIGKILL);
        self.exit = self.child.wait().ok();
    }
}

impl Drop for AgentServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `signal` to the child's process group (its pid: it was spawned with
/// `process_group(0)`). Harmless when the group is gone.
fn signal_group(child: &Child, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    if pgid > 1 {
        // SAFETY: kill(2) takes plain integers and touches no memory of ours; a
        // negative pid addresses exactly the group this handle created.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// `GET /alive` answered 200 (a blocking one-shot HTTP/1.0 request, so starting a
/// server needs no async runtime).
fn alive(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /alive HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200")
}

fn random_key() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default();
        bytes = nanos.to_le_bytes();
    }
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sk-agent-{hex}")
}

/// The last 80 lines of a log, for panic messages.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let start = lines.len().saturating_sub(80);
    format!(
        "--- agent server log (tail) ---\n{}",
        lines[start..].join("\n")
    )
}
