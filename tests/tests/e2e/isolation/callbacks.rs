//! Event callback routes: create (also for another user's conversation), list,
//! get, delete, deliveries.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::json;

use super::EVENT_KINDS;
use super::model::CallbackModel;
use super::rng::Rng;
use super::world::{Answer, Run, Who};

impl Run {
    /// Create a callback to the receiver; `kinds`: perhaps only for some kinds.
    pub(super) async fn create_callback(
        &mut self,
        u: usize,
        conversation: Option<&str>,
        kinds: bool,
    ) -> Answer {
        let url = format!("{}/u{u}/cb{}", self.receiver.url(), self.rng.hex(12));
        let mut body = json!({"url": url});
        if let Some(c) = conversation {
            body["conversation_id"] = json!(c);
        }
        if kinds && self.rng.percent(20) {
            body["event_kinds"] = json!([EVENT_KINDS[self.rng.below(3)]]);
        }
        let answer = self
            .send(
                &Who::User(u),
                Method::POST,
                "/api/v1/event-callbacks",
                Some(&body),
            )
            .await;
        if answer.status == 200 {
            let id = answer.json["id"].as_str().unwrap_or_default().to_owned();
            let secret = answer.json["secret"].as_str().unwrap_or_default();
            if id.is_empty() || secret.is_empty() {
                self.fail(&answer.call, format!("no id or secret: {}", answer.text));
            }
            self.secrets.add(&id, "callback id", u);
            self.secrets.add(secret, "callback secret", u);
            self.secrets.add(&url, "callback url", u);
            if let Some(c) = conversation {
                self.callback_targets[u].push(c.to_owned());
            }
            self.callbacks.push(CallbackModel {
                id,
                owner: u,
                url,
                live: true,
            });
        }
        answer
    }

    /// A callback for all the user's events, one of their conversations, another
    /// user's conversation (which must answer what a random id answers), or a
    /// random one.
    pub(super) async fn op_create_callback(&mut self, u: usize) {
        let choice = self.rng.below(4);
        let target = match choice {
            0 => None,
            1 => Some(self.conversation_ids(|c| c.owner == u)),
            _ => Some(self.conversation_ids(|c| c.owner != u)),
        };
        let target = target.map(|ids| self.pick_or_random(&ids, Rng::uuid));
        let answer = self.create_callback(u, target.as_deref(), true).await;
        let foreign = target
            .as_deref()
            .and_then(|t| self.conversation(t))
            .is_some_and(|c| c.owner != u);
        if foreign {
            let twin_id = self.rng.uuid();
            let twin = self.create_callback(u, Some(&twin_id), true).await;
            if twin.status != answer.status {
                self.fail(
                    &answer.call,
                    format!(
                        "distinguishable from a missing conversation: {} {} vs {} {}",
                        answer.status, answer.text, twin.status, twin.text
                    ),
                );
            }
            if let Some(t) = &target {
                self.verify_conversation(t).await;
            }
        } else if answer.status != 200 {
            self.fail(
                &answer.call,
                format!("expected 200, got {}: {}", answer.status, answer.text),
            );
        }
    }

    pub(super) async fn op_list_callbacks(&mut self, u: usize) {
        let list = self
            .ok(&Who::User(u), Method::GET, "/api/v1/event-callbacks", None)
            .await;
        let listed: BTreeSet<String> = list
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
        if listed != mine || list.to_string().contains("\"secret\"") {
            self.fail(
                "GET /api/v1/event-callbacks",
                format!("lists {list}, the model has {mine:?}"),
            );
        }
    }

    /// Get, delete or read the deliveries of a callback.
    pub(super) async fn op_callback(&mut self, u: usize, action: &str) {
        let id = self.pick_callback(u);
        let own = self
            .callbacks
            .iter()
            .any(|c| c.id == id && c.live && c.owner == u);
        let limit = [1, 5, 100][self.rng.below(3)];
        let (method, template) = match action {
            "get" => (Method::GET, "/api/v1/event-callbacks/{}".to_owned()),
            "delete" => (Method::DELETE, "/api/v1/event-callbacks/{}".to_owned()),
            _ => (
                Method::GET,
                format!("/api/v1/event-callbacks/{{}}/deliveries?limit={limit}"),
            ),
        };
        if !own {
            self.expect_missing(u, method, &template, &id).await;
            self.verify_callback(&id).await;
            return;
        }
        let path = template.replace("{}", &id);
        let who = Who::User(u);
        if action == "deliveries" {
            // Every page; the leak check covers their conversation and event ids.
            self.all_pages(&who, &path, None).await;
            return;
        }
        let got = self.ok(&who, method, &path, None).await;
        if action == "delete" {
            if let Some(c) = self.callbacks.iter_mut().find(|c| c.id == id) {
                c.live = false;
            }
        } else if got["id"] != id.as_str() || got.get("secret").is_some_and(|s| !s.is_null()) {
            self.fail(&path, format!("answered {got}"));
        }
    }
}
