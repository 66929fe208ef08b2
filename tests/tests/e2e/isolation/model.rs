//! The model: who owns which sandbox, conversation, event and callback, in what
//! state, with which session key; how it is looked up and how each answer
//! updates it.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use super::secrets::{dashed, undashed};
use super::world::{Run, Who};
use super::{EVENT_KINDS, USERS};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Running,
    Paused,
    Deleted,
}

pub(super) struct SandboxModel {
    pub(super) id: String,
    pub(super) owner: usize,
    pub(super) state: State,
    /// The session key sandboxd last showed (valid for webhooks only while running).
    pub(super) key: Option<String>,
}

pub(super) struct ConversationModel {
    /// Dashed.
    pub(super) id: String,
    pub(super) owner: usize,
    pub(super) sandbox_id: String,
    pub(super) title: Option<String>,
    pub(super) events: Vec<String>,
}

pub(super) struct CallbackModel {
    pub(super) id: String,
    pub(super) owner: usize,
    pub(super) url: String,
    pub(super) live: bool,
}

impl Run {
    pub(super) fn live_sandbox(&self, id: &str) -> Option<&SandboxModel> {
        self.sandboxes
            .iter()
            .find(|s| s.id == id && s.state != State::Deleted)
    }

    pub(super) fn live_index(&self, id: &str) -> Option<usize> {
        self.sandboxes
            .iter()
            .position(|s| s.id == id && s.state != State::Deleted)
    }

    pub(super) fn sandbox_ids(&self, filter: impl Fn(&SandboxModel) -> bool) -> Vec<String> {
        self.sandboxes
            .iter()
            .filter(|s| filter(s))
            .map(|s| s.id.clone())
            .collect()
    }

    /// The owner of the sandbox whose webhooks `key` authenticates now.
    pub(super) fn valid_key_owner(&self, key: &str) -> Option<usize> {
        self.sandboxes
            .iter()
            .find(|s| s.state == State::Running && s.key.as_deref() == Some(key))
            .map(|s| s.owner)
    }

    pub(super) fn conversation(&self, id: &str) -> Option<&ConversationModel> {
        self.conversation_index
            .get(&undashed(id))
            .map(|&i| &self.conversations[i])
    }

    pub(super) fn conversation_ids(
        &self,
        filter: impl Fn(&ConversationModel) -> bool,
    ) -> Vec<String> {
        self.conversations
            .iter()
            .filter(|c| filter(c))
            .map(|c| c.id.clone())
            .collect()
    }

    pub(super) fn callback_ids(&self, filter: impl Fn(&CallbackModel) -> bool) -> Vec<String> {
        self.callbacks
            .iter()
            .filter(|c| filter(c))
            .map(|c| c.id.clone())
            .collect()
    }

    pub(super) fn event_ids(&self, filter: impl Fn(&ConversationModel) -> bool) -> Vec<String> {
        self.conversations
            .iter()
            .filter(|c| filter(c))
            .flat_map(|c| c.events.iter().cloned())
            .collect()
    }

    pub(super) fn remember_key(&mut self, key: &str, owner: usize) {
        self.secrets.add(key, "session key", owner);
        if !self.keys_seen.iter().any(|(k, _)| k == key) {
            self.keys_seen.push((key.to_owned(), owner));
        }
    }

    pub(super) fn add_sandbox(&mut self, info: &Value, owner: usize, call: &str) {
        let id = info["id"].as_str().unwrap_or_default().to_owned();
        if id.is_empty() || info["created_by_user_id"] != USERS[owner].0 {
            self.fail(call, format!("a start answered an odd sandbox: {info}"));
        }
        self.secrets.add(&id, "sandbox id", owner);
        let key = info["session_api_key"].as_str().map(str::to_owned);
        if let Some(key) = &key {
            self.remember_key(key, owner);
        }
        match self.rt.runtime_id(&id) {
            Some(runtime_id) => {
                self.secrets.add(&runtime_id, "runtime id", owner);
                self.runtimes.insert(runtime_id, (id.clone(), owner));
            }
            None => self.fail(call, format!("no runtime was started for sandbox {id}")),
        }
        self.sandboxes.push(SandboxModel {
            id,
            owner,
            state: State::Running,
            key,
        });
    }

    pub(super) fn add_conversation(&mut self, id: &str, owner: usize, sandbox_id: &str) -> usize {
        let key = undashed(id);
        if let Some(&i) = self.conversation_index.get(&key) {
            return i;
        }
        self.secrets.add_conversation(id, owner);
        self.conversations.push(ConversationModel {
            id: dashed(&key),
            owner,
            sandbox_id: sandbox_id.to_owned(),
            title: None,
            events: Vec::new(),
        });
        self.conversation_index
            .insert(key, self.conversations.len() - 1);
        self.conversations.len() - 1
    }

    /// New events, with ids and contents that belong to `owner` (if anyone).
    pub(super) fn new_events(&mut self, owner: Option<usize>, n: usize) -> Vec<Value> {
        (0..n)
            .map(|_| {
                self.clock += 1;
                let s = self.clock;
                let id = format!("ev{}", self.rng.hex(16));
                let note = format!("note{}", self.rng.hex(16));
                if let Some(owner) = owner {
                    self.secrets.add(&id, "event id", owner);
                    self.secrets.add(&note, "event content", owner);
                }
                let kind = EVENT_KINDS[self.rng.below(EVENT_KINDS.len())];
                json!({
                    "kind": kind,
                    "id": id,
                    "timestamp": format!("2026-11-26T{:02}:{:02}:{:02}.{:06}", 1 + s / 3600 % 22, s / 60 % 60, s % 60, s % 1_000_000),
                    "source": "agent",
                    "note": note,
                })
            })
            .collect()
    }

    pub(super) fn record_events(&mut self, conversation: usize, events: &[Value]) {
        for event in events {
            let id = event["id"].as_str().unwrap_or_default().to_owned();
            if !self.conversations[conversation].events.contains(&id) {
                self.conversations[conversation].events.push(id.clone());
                let cid = self.conversations[conversation].id.clone();
                for stream in &mut self.streams {
                    if stream.conversation == cid {
                        stream.expected.push(id.clone());
                    }
                }
            }
        }
    }

    /// Every page of a listing (`path` has a query already), the items, and the
    /// last cursor seen.
    pub(super) async fn all_pages(
        &self,
        who: &Who,
        path: &str,
        first_page: Option<String>,
    ) -> (Vec<Value>, Option<String>) {
        let mut items = Vec::new();
        let mut page_id = first_page;
        let mut last_cursor = None;
        for _ in 0..1000 {
            let url = match &page_id {
                Some(p) => format!("{path}&page_id={p}"),
                None => path.to_owned(),
            };
            let answer = self.send(who, Method::GET, &url, None).await;
            if answer.status != 200 {
                self.fail(
                    &answer.call,
                    format!("expected 200, got {}: {}", answer.status, answer.text),
                );
            }
            items.extend(answer.json["items"].as_array().cloned().unwrap_or_default());
            match answer.json["next_page_id"].as_str() {
                Some(next) => {
                    last_cursor = Some(next.to_owned());
                    page_id = Some(next.to_owned());
                }
                None => return (items, last_cursor),
            }
        }
        self.fail(path, "more than 1000 pages");
    }

    /// Read `u`'s sandboxes back and bring the model up to date with what their
    /// own lifecycle calls did (a start or resume pauses the oldest running ones
    /// beyond the limit; a resume rotates the key).
    pub(super) async fn refresh(&mut self, u: usize) {
        let (items, _) = self
            .all_pages(&Who::User(u), "/api/v1/sandboxes/search?limit=100", None)
            .await;
        let call = format!("{} GET /api/v1/sandboxes/search (refresh)", USERS[u].0);
        let live = self.sandbox_ids(|s| s.owner == u && s.state != State::Deleted);
        let listed: BTreeSet<String> = items
            .iter()
            .filter_map(|i| i["id"].as_str().map(str::to_owned))
            .collect();
        if listed != live.iter().cloned().collect() {
            self.fail(
                &call,
                format!("{} lists {listed:?}, the model has {live:?}", USERS[u].0),
            );
        }
        for item in &items {
            let id = item["id"].as_str().unwrap_or_default();
            let Some(i) = self.live_index(id) else {
                continue;
            };
            let state = match item["status"].as_str() {
                Some("RUNNING") => State::Running,
                Some("PAUSED") => State::Paused,
                other => self.fail(&call, format!("sandbox {id} is {other:?}: {item}")),
            };
            let key = item["session_api_key"].as_str().map(str::to_owned);
            if let Some(key) = &key {
                self.remember_key(key, u);
            }
            self.sandboxes[i].state = state;
            self.sandboxes[i].key = key;
        }
    }
}
