//! Sandbox routes: start (also with a chosen id that is another user's), get,
//! batch get, every page of search (also from another user's cursor), pause,
//! resume, delete, and the sandbox specs.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::json;

use super::model::State;
use super::world::{Run, Who};
use super::{MAX_LIVE, USERS};

impl Run {
    /// The `sandbox_id` a start asks for: none mostly; sometimes a new one, one of
    /// another user's (taken, or deleted), or one of the user's own deleted ones.
    pub(super) fn choose_start_id(&mut self, u: usize) -> Option<String> {
        let ids = match self.rng.below(20) {
            0..=10 => return None,
            11..=12 => return Some(self.rng.base62(22)),
            13..=15 => self.sandbox_ids(|s| s.owner != u && s.state != State::Deleted),
            16..=17 => self.sandbox_ids(|s| s.owner != u && s.state == State::Deleted),
            _ => self.sandbox_ids(|s| s.owner == u && s.state == State::Deleted),
        };
        self.rng.pick(&ids).cloned()
    }

    pub(super) async fn op_start(&mut self, u: usize, chosen: Option<String>) {
        let live = self.sandbox_ids(|s| s.owner == u && s.state != State::Deleted);
        if live.len() >= MAX_LIVE && chosen.is_none() {
            // Keep the numbers small: delete one instead.
            let victim = live[self.rng.below(live.len())].clone();
            return self.delete_own(u, &victim).await;
        }
        let path = match &chosen {
            Some(id) => format!("/api/v1/sandboxes?sandbox_id={id}"),
            None => "/api/v1/sandboxes".to_owned(),
        };
        let taken = chosen
            .as_deref()
            .and_then(|id| self.live_sandbox(id))
            .map(|s| (s.id.clone(), s.owner));
        // The runtime may be asked to start only the sandbox the answer names.
        self.allowed.actor = Some(u);
        let answer = self.send(&Who::User(u), Method::POST, &path, None).await;
        match taken {
            Some((id, owner)) => {
                // An id in use (anyone's) is refused; whose it is stays unsaid.
                if answer.status != 409 {
                    self.fail(
                        &answer.call,
                        format!(
                            "a start with the id of a live sandbox of {} answered {}: {}",
                            USERS[owner].0, answer.status, answer.text
                        ),
                    );
                }
                // A refused start pauses nothing (the id is checked before the
                // limit is enforced; a unit test in the plugin holds that); the
                // model is refreshed anyway, and the other user's sandbox checked.
                self.refresh(u).await;
                self.verify_sandbox(&id).await;
            }
            None => {
                if answer.status != 200 {
                    self.fail(
                        &answer.call,
                        format!("expected 200, got {}: {}", answer.status, answer.text),
                    );
                }
                let id = answer.json["id"].as_str().unwrap_or_default().to_owned();
                if chosen.as_ref().is_some_and(|c| *c != id) {
                    self.fail(&answer.call, "the sandbox did not get the id asked for");
                }
                self.allowed.started = vec![id];
                self.add_sandbox(&answer.json, u, &answer.call);
                self.refresh(u).await;
            }
        }
    }

    pub(super) async fn op_get_sandbox(&mut self, u: usize) {
        let id = self.pick_sandbox(u);
        match self.live_sandbox(&id).map(|s| s.owner) {
            Some(owner) if owner == u => {
                let path = format!("/api/v1/sandboxes/{id}");
                let info = self.ok(&Who::User(u), Method::GET, &path, None).await;
                if info["id"] != id.as_str() || info["created_by_user_id"] != USERS[u].0 {
                    self.fail(&path, format!("answered another sandbox: {info}"));
                }
            }
            _ => {
                self.expect_missing(u, Method::GET, "/api/v1/sandboxes/{}", &id)
                    .await;
                self.verify_sandbox(&id).await;
            }
        }
    }

    pub(super) async fn op_batch_get(&mut self, u: usize) {
        let n = 1 + self.rng.below(6);
        let ids: Vec<String> = (0..n).map(|_| self.pick_sandbox(u)).collect();
        let query: Vec<String> = ids.iter().map(|id| format!("id={id}")).collect();
        let path = format!("/api/v1/sandboxes?{}", query.join("&"));
        let list = self.ok(&Who::User(u), Method::GET, &path, None).await;
        let items = list.as_array().cloned().unwrap_or_default();
        if items.len() != ids.len() {
            self.fail(
                &path,
                format!("{} answers for {} ids: {list}", items.len(), n),
            );
        }
        for (id, item) in ids.iter().zip(&items) {
            let own = self.live_sandbox(id).is_some_and(|s| s.owner == u);
            let ok = if own {
                item["id"] == id.as_str() && item["created_by_user_id"] == USERS[u].0
            } else {
                item.is_null()
            };
            if !ok {
                self.fail(&path, format!("for {id} (own: {own}) answered {item}"));
            }
        }
    }

    pub(super) async fn op_search_sandboxes(&mut self, u: usize) {
        let limit = [1, 2, 3, 100][self.rng.below(4)];
        // Sometimes start from another user's cursor: it must reach nothing of theirs.
        let others: Vec<String> = (0..USERS.len())
            .filter(|&o| o != u)
            .filter_map(|o| self.sandbox_cursors[o].clone())
            .collect();
        let first = if self.rng.percent(25) {
            self.rng.pick(&others).cloned()
        } else {
            None
        };
        let from_cursor = first.is_some();
        let path = format!("/api/v1/sandboxes/search?limit={limit}");
        let (items, cursor) = self.all_pages(&Who::User(u), &path, first).await;
        if cursor.is_some() {
            self.sandbox_cursors[u] = cursor;
        }
        if items.iter().any(|i| i["created_by_user_id"] != USERS[u].0) {
            self.fail(&path, format!("lists others' sandboxes: {items:?}"));
        }
        if !from_cursor {
            let listed: BTreeSet<String> = items
                .iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect();
            let live: BTreeSet<String> = self
                .sandbox_ids(|s| s.owner == u && s.state != State::Deleted)
                .into_iter()
                .collect();
            if listed != live || items.len() != live.len() {
                self.fail(&path, format!("lists {listed:?}, the model has {live:?}"));
            }
        }
    }

    pub(super) async fn delete_own(&mut self, u: usize, id: &str) {
        self.allowed.actor = Some(u);
        let path = format!("/api/v1/sandboxes/{id}");
        self.ok(&Who::User(u), Method::DELETE, &path, None).await;
        if let Some(i) = self.live_index(id) {
            self.sandboxes[i].state = State::Deleted;
        }
        self.refresh(u).await;
    }

    /// Pause, resume or delete a sandbox: the user's own works, anything else is
    /// missing and changes nothing.
    pub(super) async fn op_act(&mut self, u: usize, action: &str) {
        let id = self.pick_sandbox(u);
        let own = self.live_sandbox(&id).is_some_and(|s| s.owner == u);
        let (method, template) = match action {
            "pause" => (Method::POST, "/api/v1/sandboxes/{}/pause"),
            "resume" => (Method::POST, "/api/v1/sandboxes/{}/resume"),
            _ => (Method::DELETE, "/api/v1/sandboxes/{}"),
        };
        if !own {
            self.expect_missing(u, method, template, &id).await;
            self.verify_sandbox(&id).await;
            return;
        }
        if action == "delete" {
            return self.delete_own(u, &id).await;
        }
        self.allowed.actor = Some(u);
        let answer = self
            .ok(&Who::User(u), method, &template.replace("{}", &id), None)
            .await;
        if answer != json!({"success": true}) {
            self.fail(template, format!("answered {answer}"));
        }
        self.refresh(u).await;
        let expected = if action == "pause" {
            State::Paused
        } else {
            State::Running
        };
        if self.live_sandbox(&id).map(|s| s.state) != Some(expected) {
            self.fail(
                template,
                format!("sandbox {id} is not {expected:?} after {action}"),
            );
        }
    }

    pub(super) async fn op_specs(&mut self, u: usize) {
        let who = Who::User(u);
        let page = self
            .ok(
                &who,
                Method::GET,
                "/api/v1/sandbox-specs/search?limit=5",
                None,
            )
            .await;
        let spec = page["items"][0]["id"].as_str().unwrap_or("none").to_owned();
        let other = self.pick_sandbox(u);
        let path = format!("/api/v1/sandbox-specs?id={spec}&id={other}");
        self.ok(&who, Method::GET, &path, None).await;
    }
}
