//! Conversation and event routes: search (also by another user's sandbox), get
//! (dashed, undashed and upper-case ids), event search, and short reads of an
//! event stream.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Instant;

use reqwest::Method;

use super::secrets::{dashed, undashed};
use super::world::{Run, Who};
use super::{EVENT_KINDS, STREAM_READ, USERS};

impl Run {
    pub(super) async fn op_search_conversations(&mut self, u: usize) {
        let limit = [1, 1, 2, 3, 100][self.rng.below(5)];
        // Often a sandbox (anyone's, live or deleted) that has conversations.
        let with_conversations: Vec<String> = self
            .conversations
            .iter()
            .map(|c| c.sandbox_id.clone())
            .collect();
        let sandbox = match self.rng.below(8) {
            0..=1 => None,
            2..=4 => Some(self.pick_or_random(&with_conversations, |r| r.base62(22))),
            _ => Some(self.pick_sandbox(u)),
        };
        let mut path = format!("/api/v1/conversations/search?limit={limit}");
        if let Some(s) = &sandbox {
            let _ = write!(path, "&sandbox_id={s}");
        }
        let others: Vec<String> = (0..USERS.len())
            .filter(|&o| o != u)
            .filter_map(|o| self.conversation_cursors[o].clone())
            .collect();
        let first = if self.rng.percent(20) {
            self.rng.pick(&others).cloned()
        } else {
            None
        };
        let from_cursor = first.is_some();
        let (items, cursor) = self.all_pages(&Who::User(u), &path, first).await;
        if cursor.is_some() && sandbox.is_none() {
            self.conversation_cursors[u] = cursor.clone();
        }
        if items.iter().any(|i| i["created_by_user_id"] != USERS[u].0) {
            self.fail(&path, format!("lists others' conversations: {items:?}"));
        }
        if from_cursor {
            return;
        }
        // A sandbox that never was the user's lists what a random id lists: one
        // empty page, without a next page.
        if let Some(s) = &sandbox
            && !self.sandboxes.iter().any(|x| x.id == *s && x.owner == u)
            && (!items.is_empty() || cursor.is_some())
        {
            self.fail(
                &path,
                format!(
                    "another user's (or no one's) sandbox lists {} conversations and a next page {cursor:?}, unlike a missing one",
                    items.len()
                ),
            );
        }
        // A sandbox the user does not own (now) lists what a random id lists: nothing.
        let expected: BTreeSet<String> = match &sandbox {
            None => self.conversation_ids(|c| c.owner == u),
            Some(s) if self.live_sandbox(s).is_some_and(|x| x.owner != u) => Vec::new(),
            Some(s) => self.conversation_ids(|c| c.owner == u && c.sandbox_id == *s),
        }
        .into_iter()
        .collect();
        let listed: BTreeSet<String> = items
            .iter()
            .filter_map(|i| i["id"].as_str().map(str::to_owned))
            .collect();
        if listed != expected || items.len() != expected.len() {
            self.fail(
                &path,
                format!("lists {listed:?}, the model has {expected:?}"),
            );
        }
    }

    pub(super) async fn op_get_conversation(&mut self, u: usize) {
        let id = self.pick_conversation(u);
        match self.conversation(&id).map(|c| c.owner) {
            Some(owner) if owner == u => {
                let path = format!("/api/v1/conversations/{id}");
                let got = self.ok(&Who::User(u), Method::GET, &path, None).await;
                if got["id"] != dashed(&undashed(&id)) {
                    self.fail(&path, format!("answered another conversation: {got}"));
                }
            }
            _ => {
                self.expect_missing(u, Method::GET, "/api/v1/conversations/{}", &id)
                    .await;
                self.verify_conversation(&id).await;
            }
        }
    }

    pub(super) async fn op_search_events(&mut self, u: usize) {
        let id = self.pick_conversation(u);
        let limit = [1, 2, 5, 100][self.rng.below(4)];
        let mut query = format!("limit={limit}");
        if self.rng.percent(30) {
            query.push_str("&sort_order=TIMESTAMP_DESC");
        }
        if self.rng.percent(20) {
            let _ = write!(query, "&kind={}", EVENT_KINDS[self.rng.below(3)]);
        }
        if self.rng.percent(25) {
            // Start at another user's (or any) event id: it must reach nothing.
            let others = self.event_ids(|_| true);
            if let Some(e) = self.rng.pick(&others) {
                let _ = write!(query, "&page_id={e}");
            }
        }
        let template = format!("/api/v1/conversations/{{}}/events/search?{query}");
        match self.conversation(&id).map(|c| (c.owner, c.events.clone())) {
            Some((owner, events)) if owner == u => {
                let path = template.replace("{}", &id);
                let page = self.ok(&Who::User(u), Method::GET, &path, None).await;
                let items = page["items"].as_array().cloned().unwrap_or_default();
                if let Some(e) = items
                    .iter()
                    .find(|e| !events.iter().any(|x| e["id"] == x.as_str()))
                {
                    self.fail(&path, format!("an event not of this conversation: {e}"));
                }
            }
            _ => {
                self.expect_missing(u, Method::GET, &template, &id).await;
                self.verify_conversation(&id).await;
            }
        }
    }

    pub(super) async fn op_stream(&mut self, u: usize) {
        let id = self.pick_conversation(u);
        let own = self.conversation(&id).is_some_and(|c| c.owner == u);
        if !own {
            self.expect_missing(
                u,
                Method::GET,
                "/api/v1/conversations/{}/events/stream",
                &id,
            )
            .await;
            return;
        }
        let path = format!("/api/v1/conversations/{id}/events/stream");
        let who = Who::User(u);
        let call = format!("{} GET {path}", USERS[u].0);
        let mut req = self.request(&who, &Method::GET, &path);
        // Resuming from another user's event id must not reach their events.
        let others = self.event_ids(|c| c.owner != u);
        let mut request = path.clone();
        if self.rng.percent(30)
            && let Some(e) = self.rng.pick(&others)
        {
            req = req.header("last-event-id", e.as_str());
            let _ = write!(request, " Last-Event-ID: {e}");
        }
        let mut resp = req
            .send()
            .await
            .unwrap_or_else(|e| self.fail(&call, format!("no answer: {e}")));
        let status = resp.status().as_u16();
        let mut text = String::new();
        let until = Instant::now() + STREAM_READ;
        while let Ok(Ok(Some(chunk))) = tokio::time::timeout(
            until.saturating_duration_since(Instant::now()),
            resp.chunk(),
        )
        .await
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
        self.vet(&who, &request, status, &text, &call);
        if status != 200 {
            self.fail(&call, format!("answered {status}: {text}"));
        }
    }
}
