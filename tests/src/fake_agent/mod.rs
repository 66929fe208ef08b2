//! A fake of the agent server that runs inside each sandbox (contract section 4), for
//! sandboxd's conversation and event sync tests and benchmarks.
//!
//! It is a real HTTP/1.1 server on 127.0.0.1 (hyper), not a mock, and ONE fake serves
//! MANY agent servers: each is registered under a path prefix (a sandbox id, say) and
//! lives at `http://127.0.0.1:PORT/{prefix}`, with its own session API key,
//! conversations and events. So a benchmark can simulate a thousand sandboxes on one
//! port; the empty prefix is the root, for a single agent at `http://127.0.0.1:PORT`.
//!
//! Routes of each agent (paths inside its base URL):
//! - `GET /alive`, `GET /health`: unauthenticated, 200.
//! - everything under `/api/` needs `X-Session-API-Key` equal to the agent's key, else
//!   401 `{"detail": "Unauthorized"}` (checked before the route, so an unknown route
//!   with a wrong key is 401 too);
//! - `GET /api/conversations/search?page_id&limit&status&sort_order`,
//!   `GET /api/conversations/{id}`,
//!   `GET /api/conversations/{id}/events/search?page_id&limit&kind&source&sort_order`
//!   `&timestamp__gte&timestamp__lt`.
//!
//! Behaviour copied from the real server (version 1.x), which tests may rely on:
//! - `limit` is 1..=100 (default 100), else 422 with FastAPI's error list; so are bad
//!   `sort_order`, `status` and timestamps, and a conversation id that is not a UUID
//!   (dashed or not, any case). An unknown conversation is 404 `{"detail": "Not Found"}`.
//! - Conversations sort by `created_at` descending by default (`sort_order`
//!   `CREATED_AT`, `CREATED_AT_DESC`, `UPDATED_AT`, `UPDATED_AT_DESC`); their
//!   `next_page_id` is the undashed hex id of the next page's first conversation
//!   (either spelling is accepted back).
//! - Events sort by the UTC instant of `timestamp` (`TIMESTAMP` or `TIMESTAMP_DESC`),
//!   ties in insertion order in both directions; `next_page_id` is the id of the next
//!   page's first event. Insertion order may differ from timestamp order: a test can
//!   add events "in the past", as a real server's clock skew or late writes do.
//! - `timestamp__gte` / `timestamp__lt` compare as UTC; a value without timezone is
//!   UTC. A `+` in a query is a space, so a client must send `%2B00:00` (an unescaped
//!   `+00:00` is a 422). Events whose timestamp does not parse sort first and never
//!   pass a timestamp filter.
//! - `kind` matches the event's `kind` or a dotted name ending in `.{kind}`;
//!   `source` matches `source` exactly.
//! - A `page_id` the search does not list (unknown, or filtered out) starts over from
//!   the first page: a client that invents page ids loops.
//! - Adding events does NOT change the conversation's `updated_at`, nor does a status
//!   change on the real server; [`FakeAgentServer::update_conversation`] bumps it,
//!   [`FakeAgentServer::edit_conversation`] does not.
//!
//! Invariants:
//! - Every request is recorded (when recording is on) before anything else happens to
//!   it, so refused, faulted and dropped requests show up too.
//! - Order of handling: find the agent, record, latency and `Delay` faults, other
//!   faults, the session key check (401), then the route.
//! - Conversations and events are raw JSON maps served exactly as tests left them.
//! - Per-request work is O(path segments) to find the agent, then O(log n + page) for
//!   an event search and O(c log c) in the agent's own conversations for a
//!   conversation search: never proportional to the number of agents.
//! - Dropping the [`FakeAgentServer`] (or [`FakeAgentServer::shutdown`]) closes the
//!   port and joins the server's thread before returning.
//!
//! ```
//! use sandboxd_tests::fake_agent::{FakeAgentServer, Fault};
//! use serde_json::json;
//!
//! let fake = FakeAgentServer::start();
//! let base_url = fake.add_agent("sb-1", "session-key-1");
//! let conversation = fake.add_conversation("sb-1", json!({"execution_status": "running"}));
//! fake.add_event("sb-1", &conversation, json!({"kind": "MessageEvent"}));
//! fake.add_event("sb-1", &conversation, json!({"timestamp": "2020-01-01T00:00:00"}));
//! fake.inject(Fault::status(503, "").agent("sb-1").path("/events/search").once());
//! assert_eq!(base_url, format!("{}/sb-1", fake.url()));
//! assert_eq!(fake.events("sb-1", &conversation).len(), 2);
//! ```

mod conversations;
mod events;
mod faults;
mod ids;
mod options;
mod query;
mod recording;
mod routes;
mod state;
mod time;

#[cfg(test)]
mod tests;

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};

pub use faults::{Fault, FaultAction};
pub use options::FakeAgentServerOptions;
pub use recording::RecordedRequest;

use crate::serve::ServerThread;
use conversations::{Conversation, as_patch, merge};
use ids::{dashed, parse_uuid};
use state::{Agent, AgentSlot, Shared, invalid_prefix, lock, normalize_prefix, read, write};

/// A running fake agent server (many agents, one port). Cheap to share by reference
/// across threads; every method is safe to call while the server is answering.
///
/// Methods that change an agent panic when the agent or conversation does not exist
/// (a mistake in the test); methods that read return `None` or an empty list.
/// Prefixes are normalized: `"/sb-1/"` and `"sb-1"` are the same agent.
pub struct FakeAgentServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    /// Dropping this (with the handle) stops the server and joins its thread.
    server: Mutex<ServerThread>,
}

impl FakeAgentServer {
    /// Starts a fake with the default options on a free port, with no agents.
    ///
    /// # Panics
    /// If the port cannot be bound or the thread cannot start: a test cannot go on
    /// without its peer, and the panic message says why.
    pub fn start() -> FakeAgentServer {
        FakeAgentServer::start_with(FakeAgentServerOptions::default())
    }

    /// Starts a fake with these options.
    ///
    /// # Panics
    /// As [`start`](Self::start); use [`try_start_with`](Self::try_start_with) to get
    /// the error instead.
    pub fn start_with(options: FakeAgentServerOptions) -> FakeAgentServer {
        match FakeAgentServer::try_start_with(options) {
            Ok(fake) => fake,
            Err(error) => panic!("cannot start the fake agent server: {error}"),
        }
    }

    /// Starts a fake with these options, or says why it could not.
    pub fn try_start_with(options: FakeAgentServerOptions) -> io::Result<FakeAgentServer> {
        let listener = TcpListener::bind(options.addr)?;
        let mut addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(&options));
        let serving = Arc::clone(&shared);
        let server = ServerThread::spawn(
            "fake-agent",
            listener,
            options.worker_threads,
            move |request| {
                let shared = Arc::clone(&serving);
                async move { routes::handle(&shared, request).await }
            },
        )?;
        // Listening on 0.0.0.0 still has to give clients an address they can dial.
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        Ok(FakeAgentServer {
            shared,
            addr,
            url: format!("http://{addr}"),
            server: Mutex::new(server),
        })
    }

    /// The server's URL, e.g. `http://127.0.0.1:40123` (no trailing slash); the base
    /// URL of the root agent.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address the fake listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server: the port closes, open connections are cut, and the thread is
    /// joined before this returns. The state stays readable. Idempotent; dropping the
    /// handle does the same.
    pub fn shutdown(&self) {
        lock(&self.server).stop();
    }

    // ---- Agents -------------------------------------------------------------------

    /// Registers an agent server under `prefix` with this session API key; returns
    /// its base URL (`{url}/{prefix}`, or `{url}` for the empty prefix): the runtime
    /// `url` sandboxd should be given.
    ///
    /// # Panics
    /// If an agent already has this prefix, or the prefix is not made of
    /// `[A-Za-z0-9-._~]` segments separated by single slashes.
    pub fn add_agent(&self, prefix: &str, session_key: &str) -> String {
        let prefix = normalize_prefix(prefix);
        if let Some(message) = invalid_prefix(prefix) {
            panic!("fake agent server add_agent: {message}");
        }
        let slot = AgentSlot {
            prefix: prefix.to_owned(),
            state: Mutex::new(Agent {
                session_key: session_key.to_owned(),
                conversations: Default::default(),
            }),
        };
        let added = {
            let mut agents = write(&self.shared.agents);
            let fresh = !agents.contains_key(prefix);
            if fresh {
                agents.insert(prefix.to_owned(), Arc::new(slot));
            }
            fresh
        };
        if !added {
            panic!("fake agent server add_agent: an agent already has prefix {prefix:?}");
        }
        self.base_url(prefix)
    }

    /// The base URL an agent under `prefix` has (whether or not it exists).
    pub fn base_url(&self, prefix: &str) -> String {
        match normalize_prefix(prefix) {
            "" => self.url.clone(),
            prefix => format!("{}/{prefix}", self.url),
        }
    }

    /// Unregisters an agent and forgets its conversations; its routes answer 404 from
    /// now on (a request being answered finishes normally). Returns whether it
    /// existed.
    pub fn remove_agent(&self, prefix: &str) -> bool {
        write(&self.shared.agents)
            .remove(normalize_prefix(prefix))
            .is_some()
    }

    /// Changes an agent's session API key (as a sandbox resume rotates it).
    ///
    /// # Panics
    /// If no agent has this prefix.
    pub fn set_key(&self, prefix: &str, session_key: &str) {
        self.with_agent(prefix, "set_key", |agent| {
            agent.session_key = session_key.to_owned();
            Ok(())
        });
    }

    /// An agent's current session API key.
    pub fn session_key(&self, prefix: &str) -> Option<String> {
        self.read_agent(prefix, |agent| agent.session_key.clone())
    }

    /// The prefixes of all agents, sorted.
    pub fn agents(&self) -> Vec<String> {
        let mut prefixes: Vec<String> = read(&self.shared.agents).keys().cloned().collect();
        prefixes.sort();
        prefixes
    }

    // ---- Conversations ------------------------------------------------------------

    /// Creates a conversation: the default ConversationInfo (status `idle`, a title,
    /// `created_at` = `updated_at` = now, `agent.llm.model`, `stats`, `metrics`,
    /// `tags` and a few fields sandboxd does not read) with `overrides` deep-merged
    /// into it (objects merge key by key; any other value, `null` included,
    /// replaces). Returns the id, dashed. An `id` override that is a UUID (either
    /// spelling) is used as the id; any other `id` override is served as is, under a
    /// random id.
    ///
    /// # Panics
    /// If no agent has this prefix, `overrides` is neither an object nor `null`, or
    /// the agent already has a conversation with the overridden id.
    pub fn add_conversation(&self, prefix: &str, overrides: Value) -> String {
        self.with_agent(prefix, "add_conversation", |agent| {
            agent.conversations.add(overrides).map(dashed)
        })
    }

    /// Deep-merges `patch` into a conversation (as
    /// [`add_conversation`](Self::add_conversation) does) and sets `updated_at` to
    /// now, unless the patch sets `updated_at` itself.
    ///
    /// # Panics
    /// If the agent or the conversation does not exist, or `patch` is neither an
    /// object nor `null`.
    pub fn update_conversation(&self, prefix: &str, conversation_id: &str, patch: Value) {
        self.with_conversation(
            prefix,
            conversation_id,
            "update_conversation",
            |conversation| {
                let patch = as_patch(patch)?;
                merge(&mut conversation.info, &patch);
                if !patch.contains_key("updated_at") {
                    conversation
                        .info
                        .insert("updated_at".to_owned(), Value::String(time::utc_now()));
                }
                Ok(())
            },
        );
    }

    /// Gives `f` the raw ConversationInfo to change in any way (remove fields, break
    /// types); nothing else changes, `updated_at` included. Returns what `f` returns.
    ///
    /// # Panics
    /// If the agent or the conversation does not exist.
    pub fn edit_conversation<T>(
        &self,
        prefix: &str,
        conversation_id: &str,
        f: impl FnOnce(&mut Map<String, Value>) -> T,
    ) -> T {
        self.with_conversation(
            prefix,
            conversation_id,
            "edit_conversation",
            |conversation| Ok(f(&mut conversation.info)),
        )
    }

    /// A conversation's ConversationInfo as `GET /api/conversations/{id}` serves it.
    pub fn conversation(&self, prefix: &str, conversation_id: &str) -> Option<Value> {
        let id = parse_uuid(conversation_id)?;
        self.read_agent(prefix, |agent| {
            agent
                .conversations
                .get(id)
                .map(|conversation| Value::Object(conversation.info.clone()))
        })
        .flatten()
    }

    /// An agent's conversations in creation order (empty for an unknown agent).
    pub fn conversations(&self, prefix: &str) -> Vec<Value> {
        self.read_agent(prefix, |agent| {
            agent
                .conversations
                .in_creation_order()
                .into_iter()
                .map(|conversation| Value::Object(conversation.info.clone()))
                .collect()
        })
        .unwrap_or_default()
    }

    /// Deletes a conversation and its events; returns whether it existed.
    pub fn remove_conversation(&self, prefix: &str, conversation_id: &str) -> bool {
        let (Some(id), Some(slot)) = (parse_uuid(conversation_id), self.slot(prefix)) else {
            return false;
        };
        lock(&slot.state).conversations.remove(id)
    }

    // ---- Events -------------------------------------------------------------------

    /// Appends an event to a conversation; returns its id. Missing `id` (random UUID),
    /// `timestamp` (now, naive UTC with microseconds, like the real server), `kind`
    /// (`MessageEvent`) and `source` (`agent`) are filled in; every other field, and
    /// any of these the test gave (any value, any timestamp format), is kept as is.
    /// The event goes last in insertion order whatever its timestamp.
    ///
    /// # Panics
    /// If the agent or the conversation does not exist, the event is not an object
    /// (or `null`), its `id` is not a string, or the conversation already has an
    /// event with that id.
    pub fn add_event(&self, prefix: &str, conversation_id: &str, event: Value) -> String {
        self.add_events(prefix, conversation_id, [event])
            .pop()
            .unwrap_or_default()
    }

    /// Appends events in order (one lock for the lot: cheap for big set-ups); returns
    /// their ids. As [`add_event`](Self::add_event), which also says when it panics;
    /// events before a refused one stay stored.
    pub fn add_events(
        &self,
        prefix: &str,
        conversation_id: &str,
        events: impl IntoIterator<Item = Value>,
    ) -> Vec<String> {
        self.with_conversation(prefix, conversation_id, "add_events", |conversation| {
            events
                .into_iter()
                .map(|event| conversation.events.insert(events::complete(event)?))
                .collect()
        })
    }

    /// A conversation's events in insertion order, as stored (empty for an unknown
    /// agent or conversation).
    pub fn events(&self, prefix: &str, conversation_id: &str) -> Vec<Value> {
        let Some(id) = parse_uuid(conversation_id) else {
            return Vec::new();
        };
        self.read_agent(prefix, |agent| {
            agent.conversations.get(id).map(|conversation| {
                conversation
                    .events
                    .iter()
                    .map(|event| Value::Object(event.value.clone()))
                    .collect()
            })
        })
        .flatten()
        .unwrap_or_default()
    }

    // ---- Recorded requests --------------------------------------------------------

    /// Every recorded request so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.recorder.snapshot()
    }

    /// How many recorded requests reached the agent under `prefix` with a path (inside
    /// the agent) containing `path_contains`, e.g. `count("sb-1", "/events/search")`.
    pub fn count(&self, prefix: &str, path_contains: &str) -> usize {
        let prefix = normalize_prefix(prefix);
        self.shared.recorder.count(|request| {
            request.agent.as_deref() == Some(prefix) && request.agent_path.contains(path_contains)
        })
    }

    /// How many recorded requests, to any agent or none, had a path (inside the
    /// agent) containing `path_contains`.
    pub fn count_any(&self, path_contains: &str) -> usize {
        self.shared
            .recorder
            .count(|request| request.agent_path.contains(path_contains))
    }

    /// Forgets the recorded requests (the total keeps counting).
    pub fn clear_requests(&self) {
        self.shared.recorder.clear();
    }

    /// Turns recording on or off; off, a request costs one atomic increment. The log
    /// grows without bound while on, so long benchmarks should turn it off.
    pub fn set_recording(&self, enabled: bool) {
        self.shared.recorder.set_enabled(enabled);
    }

    /// How many requests arrived since start, recorded or not.
    pub fn total_requests(&self) -> u64 {
        self.shared.recorder.total()
    }

    // ---- Faults and latency -------------------------------------------------------

    /// Adds a fault (see [`Fault`] for matching and ordering).
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).push(fault);
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Sets the delay added before every answer from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.set_latency(latency);
    }

    // ---- Helpers ------------------------------------------------------------------

    fn slot(&self, prefix: &str) -> Option<Arc<AgentSlot>> {
        read(&self.shared.agents)
            .get(normalize_prefix(prefix))
            .cloned()
    }

    fn read_agent<T>(&self, prefix: &str, f: impl FnOnce(&Agent) -> T) -> Option<T> {
        let slot = self.slot(prefix)?;
        let agent = lock(&slot.state);
        Some(f(&agent))
    }

    /// Runs `f` on the agent; panics (with every lock released) when the agent does
    /// not exist or `f` says the test asked for something impossible.
    fn with_agent<T>(
        &self,
        prefix: &str,
        what: &str,
        f: impl FnOnce(&mut Agent) -> Result<T, String>,
    ) -> T {
        let outcome = match self.slot(prefix) {
            Some(slot) => f(&mut lock(&slot.state)),
            None => Err(format!(
                "no agent under prefix {:?}",
                normalize_prefix(prefix)
            )),
        };
        match outcome {
            Ok(value) => value,
            Err(message) => panic!("fake agent server {what}: {message}"),
        }
    }

    fn with_conversation<T>(
        &self,
        prefix: &str,
        conversation_id: &str,
        what: &str,
        f: impl FnOnce(&mut Conversation) -> Result<T, String>,
    ) -> T {
        self.with_agent(prefix, what, |agent| {
            let id = parse_uuid(conversation_id)
                .ok_or_else(|| format!("{conversation_id:?} is not a conversation id"))?;
            let conversation = agent
                .conversations
                .get_mut(id)
                .ok_or_else(|| format!("no conversation {conversation_id}"))?;
            let outcome = f(conversation);
            // Whatever `f` changed, the search keys follow.
            conversation.refresh();
            outcome
        })
    }
}

impl std::fmt::Debug for FakeAgentServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAgentServer")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}
