//! The oracle: after every step the runtime API saw only what the step may do,
//! the targeted object reads back unchanged for its owner, and every so often each
//! user's whole view (and the admin's) equals the model; at the end the held event
//! streams and the callback deliveries are checked for leaks and completeness.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use super::USERS;
use super::model::State;
use super::world::{Run, Who};

impl Run {
    /// The runtime API saw only what the step may do, and every runtime is as the
    /// model says.
    pub(super) fn check_runtime(&self) {
        let requests = self.rt.requests();
        self.rt.clear_requests();
        for r in requests.iter().filter(|r| r.method != "GET") {
            let body = r.json().unwrap_or(Value::Null);
            let what = format!("runtime API {} {} {body}", r.method, r.path);
            match r.path.as_str() {
                "/start" => {
                    let session = body["session_id"].as_str().unwrap_or_default();
                    if !self.allowed.started.iter().any(|s| s == session) {
                        self.fail(&what, "a start the step did not ask for");
                    }
                }
                "/pause" | "/resume" | "/stop" => {
                    let runtime_id = body["runtime_id"].as_str().unwrap_or_default();
                    let owner = self.runtimes.get(runtime_id).map(|(_, o)| *o);
                    if owner.is_none() || owner != self.allowed.actor {
                        self.fail(
                            &what,
                            format!(
                                "changed a runtime of {:?} during a step that may change only those of {:?}",
                                owner.map(|o| USERS[o].0),
                                self.allowed.actor.map(|o| USERS[o].0)
                            ),
                        );
                    }
                }
                _ => self.fail(&what, "an unexpected request"),
            }
        }
        for s in &self.sandboxes {
            let runtime = self.rt.runtime(&s.id);
            let what = format!("runtime of sandbox {} of {}", s.id, USERS[s.owner].0);
            match (s.state, &runtime) {
                (State::Deleted, None) => {}
                (State::Deleted, Some(_)) if self.live_sandbox(&s.id).is_some() => {}
                (State::Deleted, Some(r)) => self.fail(&what, format!("still exists: {r}")),
                (_, None) => self.fail(&what, "is gone"),
                (state, Some(r)) => {
                    let expected = if state == State::Running {
                        "running"
                    } else {
                        "paused"
                    };
                    if r["status"] != expected || r["session_api_key"].as_str() != s.key.as_deref()
                    {
                        self.fail(
                            &what,
                            format!(
                                "expected {expected} with key {:?}, the runtime has {r}",
                                s.key
                            ),
                        );
                    }
                }
            }
        }
    }

    /// A sandbox is as its owner last left it (read back by the owner), or gone.
    pub(super) async fn verify_sandbox(&self, id: &str) {
        let path = format!("/api/v1/sandboxes/{id}");
        match self.live_sandbox(id) {
            Some(s) => {
                let info = self.ok(&Who::User(s.owner), Method::GET, &path, None).await;
                let expected = if s.state == State::Running {
                    "RUNNING"
                } else {
                    "PAUSED"
                };
                if info["status"] != expected
                    || info["session_api_key"].as_str() != s.key.as_deref()
                {
                    self.fail(
                        &path,
                        format!(
                            "{}'s sandbox changed: expected {expected} with key {:?}, got {info}",
                            USERS[s.owner].0, s.key
                        ),
                    );
                }
            }
            None => {
                let answer = self.get(&Who::Admin, &path).await;
                if answer.status != 404 {
                    self.fail(&answer.call, format!("a sandbox appeared: {}", answer.text));
                }
            }
        }
    }

    /// A conversation is as the model says (title, sandbox, every event), read
    /// back by its owner; one the model does not know does not exist.
    pub(super) async fn verify_conversation(&self, id: &str) {
        let Some(c) = self.conversation(id) else {
            let path = format!("/api/v1/conversations/{id}");
            let answer = self.get(&Who::Admin, &path).await;
            if answer.status != 404 {
                self.fail(
                    &answer.call,
                    format!("a conversation appeared: {}", answer.text),
                );
            }
            return;
        };
        let who = Who::User(c.owner);
        let path = format!("/api/v1/conversations/{}", c.id);
        let got = self.ok(&who, Method::GET, &path, None).await;
        let title_ok = match &c.title {
            Some(t) => got["title"] == *t,
            None => got["title"].is_null(),
        };
        if !title_ok
            || got["sandbox_id"] != c.sandbox_id
            || got["created_by_user_id"] != USERS[c.owner].0
            || got["event_count"] != c.events.len()
        {
            self.fail(
                &path,
                format!(
                    "conversation changed: model title {:?}, sandbox {}, {} events; got {got}",
                    c.title,
                    c.sandbox_id,
                    c.events.len()
                ),
            );
        }
        let (events, _) = self
            .all_pages(&who, &format!("{path}/events/search?limit=100"), None)
            .await;
        let got: BTreeSet<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
        let expected: BTreeSet<&str> = c.events.iter().map(String::as_str).collect();
        if got != expected || events.len() != c.events.len() {
            self.fail(
                &path,
                format!("events changed: expected {expected:?}, got {got:?}"),
            );
        }
    }

    pub(super) async fn verify_callback(&self, id: &str) {
        let path = format!("/api/v1/event-callbacks/{id}");
        match self.callbacks.iter().find(|c| c.id == id && c.live) {
            Some(c) => {
                let got = self.ok(&Who::User(c.owner), Method::GET, &path, None).await;
                if got["url"] != c.url || got["created_by_user_id"] != USERS[c.owner].0 {
                    self.fail(&path, format!("callback changed: {got}"));
                }
            }
            None => {
                let answer = self.get(&Who::Admin, &path).await;
                if answer.status != 404 {
                    self.fail(&answer.call, format!("a callback exists: {}", answer.text));
                }
            }
        }
    }

    /// Every user's whole view against the model, and the admin's.
    pub(super) async fn full_check(&mut self) {
        self.doing = "full check".to_owned();
        for (u, (user, _)) in USERS.iter().enumerate() {
            let who = Who::User(u);
            self.refresh(u).await;
            let (items, _) = self
                .all_pages(&who, "/api/v1/conversations/search?limit=100", None)
                .await;
            let listed: BTreeSet<String> = items
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect();
            let mine: BTreeSet<String> = self
                .conversation_ids(|c| c.owner == u)
                .into_iter()
                .collect();
            if listed != mine || items.len() != mine.len() {
                self.fail(
                    &format!("{} GET /api/v1/conversations/search", user),
                    format!("lists {listed:?}, the model has {mine:?}"),
                );
            }
            let callbacks = self
                .ok(&who, Method::GET, "/api/v1/event-callbacks", None)
                .await;
            let listed: BTreeSet<String> = callbacks
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|c| c["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let mine: BTreeSet<String> = self
                .callback_ids(|c| c.owner == u && c.live)
                .into_iter()
                .collect();
            if listed != mine {
                self.fail(
                    &format!("{} GET /api/v1/event-callbacks", user),
                    format!("lists {listed:?}, the model has {mine:?}"),
                );
            }
        }
        for id in self.conversation_ids(|_| true) {
            self.verify_conversation(&id).await;
        }
        for id in self.callback_ids(|_| true) {
            self.verify_callback(&id).await;
        }
        let (items, _) = self
            .all_pages(&Who::Admin, "/api/v1/sandboxes/search?limit=100", None)
            .await;
        let listed: BTreeSet<String> = items
            .iter()
            .filter_map(|i| i["id"].as_str().map(str::to_owned))
            .collect();
        let live: BTreeSet<String> = self
            .sandbox_ids(|s| s.state != State::Deleted)
            .into_iter()
            .collect();
        if listed != live {
            self.fail(
                "admin GET /api/v1/sandboxes/search",
                format!("lists {listed:?}, the model has {live:?}"),
            );
        }
        self.check_held_streams();
        self.check_runtime();
    }

    pub(super) fn check_held_streams(&self) {
        for stream in &self.streams {
            let text = stream
                .text
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            let path = format!(
                "/api/v1/conversations/{}/events/stream",
                stream.conversation
            );
            self.vet(
                &Who::User(stream.user),
                &path,
                200,
                &text,
                &format!("{} GET {path} (held open)", USERS[stream.user].0),
            );
        }
    }

    /// The held streams carried the events posted after they opened, and what each
    /// user's callbacks received holds nothing of other users.
    pub(super) async fn check_streams_and_deliveries(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for stream in &self.streams {
            loop {
                let text = stream
                    .text
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                let missing: Vec<&String> = stream
                    .expected
                    .iter()
                    .filter(|e| !text.contains(&format!("id: {e}\n")))
                    .collect();
                if missing.is_empty() {
                    break;
                }
                if Instant::now() > deadline {
                    self.fail(
                        &format!(
                            "{} event stream of {}",
                            USERS[stream.user].0, stream.conversation
                        ),
                        format!("the held stream lacks {missing:?}"),
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        self.check_held_streams();
        // Let deliveries of the last events arrive.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let received = self.receiver.received();
        for (u, (user, _)) in USERS.iter().enumerate() {
            let prefix = format!("/u{u}/");
            for r in received.iter().filter(|r| r.path.starts_with(&prefix)) {
                let mut text = String::from_utf8_lossy(&r.body).into_owned();
                for (k, v) in &r.headers {
                    let _ = write!(text, "\n{k}: {v}");
                }
                self.vet(
                    &Who::User(u),
                    &r.path,
                    200,
                    &text,
                    &format!("delivery to {user} {}", r.path),
                );
            }
        }
    }
}
