//! The webhooks agent servers post with their sandbox's `X-Session-API-Key`: as
//! the honest agent server of the user's own sandbox (how conversations and events
//! come to exist), and as an attacker (the user's own key aimed at another user's
//! conversation, random keys, the old key of a paused, resumed or deleted sandbox).

use reqwest::Method;
use serde_json::{Value, json};

use super::USERS;
use super::rng::Rng;
use super::secrets::{dashed, undashed};
use super::world::{Run, Who};

impl Run {
    /// As the agent server of `sandbox`: post a `ConversationInfo` (`info`) or a
    /// batch of new events for the owner's conversation.
    pub(super) async fn post_own(
        &mut self,
        u: usize,
        sandbox: &str,
        key: &str,
        conversation: &str,
        info: bool,
    ) {
        let who = Who::Session(Some(key.to_owned()), u);
        let c = self.add_conversation(conversation, u, sandbox);
        if info {
            let title = format!("title{}", self.rng.hex(12));
            self.secrets.add(&title, "conversation title", u);
            let id = self.conversations[c].id.clone();
            let body = json!({"id": id, "title": title, "execution_status": "idle"});
            self.ok(
                &who,
                Method::POST,
                "/api/v1/webhooks/conversations",
                Some(&body),
            )
            .await;
            self.conversations[c].title = Some(title);
        } else {
            let n = 1 + self.rng.below(3);
            let mut events = self.new_events(Some(u), n);
            // Sometimes repeat an event already stored: acknowledged, stored once.
            let old = self.conversations[c].events.clone();
            let repeat = self.rng.percent(20);
            if let Some(e) = self.rng.pick(&old).filter(|_| repeat) {
                events.push(json!({"kind": "MessageEvent", "id": e, "timestamp": "2026-11-26T00:00:00", "source": "agent"}));
            }
            let path = format!("/api/v1/webhooks/events/{conversation}");
            self.ok(&who, Method::POST, &path, Some(&json!(events)))
                .await;
            self.record_events(c, &events);
        }
    }

    pub(super) async fn op_webhook_own(&mut self, u: usize) {
        let Some((sandbox, key)) = self.pick_own_key(u) else {
            return self.op_start(u, None).await;
        };
        let mine = self.conversation_ids(|c| c.owner == u);
        let conversation = if self.rng.percent(70) {
            self.pick_or_random(&mine, Rng::uuid)
        } else {
            self.rng.uuid()
        };
        let conversation = if self.rng.percent(40) {
            undashed(&conversation)
        } else {
            conversation
        };
        let info = self.rng.percent(35);
        self.post_own(u, &sandbox, &key, &conversation, info).await;
        if self.rng.percent(20) {
            self.verify_conversation(&conversation).await;
        }
    }

    /// What an attacker posts for `target`: a ConversationInfo that would rename it,
    /// or events (carrying the attacker's own ids and content).
    pub(super) fn attack_body(&mut self, attacker: Option<usize>, target: &str) -> (String, Value) {
        if self.rng.percent(40) {
            let title = format!("title{}", self.rng.hex(12));
            if let Some(owner) = attacker {
                self.secrets.add(&title, "conversation title", owner);
            }
            let id = if self.rng.percent(50) {
                dashed(&undashed(target))
            } else {
                target.to_owned()
            };
            (
                "/api/v1/webhooks/conversations".to_owned(),
                json!({"id": id, "title": title, "execution_status": "finished"}),
            )
        } else {
            let n = 1 + self.rng.below(2);
            let events = self.new_events(attacker, n);
            (format!("/api/v1/webhooks/events/{target}"), json!(events))
        }
    }

    /// The user's own valid session key, aimed at another user's conversation.
    pub(super) async fn op_webhook_foreign(&mut self, u: usize) {
        let theirs = self.conversation_ids(|c| c.owner != u);
        let (Some((_, key)), Some(target)) =
            (self.pick_own_key(u), self.rng.pick(&theirs).cloned())
        else {
            return self.op_webhook_own(u).await;
        };
        let target = match self.rng.below(3) {
            0 => target,
            1 => undashed(&target),
            _ => undashed(&target).to_ascii_uppercase(),
        };
        let (path, body) = self.attack_body(Some(u), &target);
        let answer = self
            .send(
                &Who::Session(Some(key), u),
                Method::POST,
                &path,
                Some(&body),
            )
            .await;
        if ![401, 403, 404].contains(&answer.status) {
            self.fail(
                &answer.call,
                format!(
                    "a post for another user's conversation answered {}: {}",
                    answer.status, answer.text
                ),
            );
        }
        self.verify_conversation(&target).await;
    }

    /// Keys that authenticate nothing: random, paused, deleted or rotated sandboxes'
    /// keys, other ids and API keys, an empty or missing header.
    pub(super) async fn op_webhook_bad_key(&mut self, u: usize) {
        let old_keys: Vec<String> = self
            .keys_seen
            .iter()
            .map(|(k, _)| k)
            .filter(|k| self.valid_key_owner(k).is_none())
            .cloned()
            .collect();
        let key = match self.rng.below(8) {
            0 => Some(self.rng.hex(32)),
            1..=3 => Some(self.pick_or_random(&old_keys, |r| r.hex(32))),
            4 => {
                let ids = self.sandbox_ids(|_| true);
                Some(self.pick_or_random(&ids, |r| r.base62(22)))
            }
            5 => Some(USERS[self.rng.below(USERS.len())].1.to_owned()),
            6 => Some(String::new()),
            _ => None,
        };
        let ids = match self.rng.below(3) {
            0 => self.conversation_ids(|c| c.owner == u),
            1 => self.conversation_ids(|c| c.owner != u),
            _ => Vec::new(),
        };
        let target = self.pick_or_random(&ids, Rng::uuid);
        let attacker = key
            .as_deref()
            .and_then(|k| self.keys_seen.iter().find(|(x, _)| x == k))
            .map(|(_, owner)| *owner);
        let (path, body) = self.attack_body(attacker, &target);
        let answer = self
            .send(&Who::Session(key, u), Method::POST, &path, Some(&body))
            .await;
        if answer.status != 401 {
            self.fail(
                &answer.call,
                format!(
                    "a post with a key that authenticates nothing answered {}: {}",
                    answer.status, answer.text
                ),
            );
        }
        self.verify_conversation(&target).await;
    }
}
