//! The random call generator: the operations and their weights, the picks of
//! targets (the user's own objects, other users' real ids, random ids), the
//! bootstrap of each user, and one random step.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::Method;

use super::USERS;
use super::model::State;
use super::rng::Rng;
use super::secrets::undashed;
use super::world::{Allowed, HeldStream, Run, Who};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Op {
    Start,
    GetSandbox,
    BatchGet,
    SearchSandboxes,
    Pause,
    Resume,
    Delete,
    Specs,
    SearchConversations,
    GetConversation,
    SearchEvents,
    Stream,
    CreateCallback,
    ListCallbacks,
    GetCallback,
    DeleteCallback,
    Deliveries,
    WebhookOwn,
    WebhookForeign,
    WebhookBadKey,
    AuthMisuse,
}

pub(super) const OPS: [(Op, usize); 21] = [
    (Op::Start, 6),
    (Op::GetSandbox, 5),
    (Op::BatchGet, 5),
    (Op::SearchSandboxes, 4),
    (Op::Pause, 5),
    (Op::Resume, 5),
    (Op::Delete, 4),
    (Op::Specs, 2),
    (Op::SearchConversations, 6),
    (Op::GetConversation, 6),
    (Op::SearchEvents, 6),
    (Op::Stream, 3),
    (Op::CreateCallback, 4),
    (Op::ListCallbacks, 2),
    (Op::GetCallback, 3),
    (Op::DeleteCallback, 2),
    (Op::Deliveries, 3),
    (Op::WebhookOwn, 12),
    (Op::WebhookForeign, 6),
    (Op::WebhookBadKey, 6),
    (Op::AuthMisuse, 2),
];

impl Run {
    pub(super) fn pick_or_random(
        &mut self,
        ids: &[String],
        random: impl FnOnce(&mut Rng) -> String,
    ) -> String {
        match self.rng.pick(ids) {
            Some(id) => id.clone(),
            None => random(&mut self.rng),
        }
    }

    /// A sandbox id for `u` to aim at: own (live or deleted), another user's
    /// (live or deleted), or random.
    pub(super) fn pick_sandbox(&mut self, u: usize) -> String {
        let ids = match self.rng.below(10) {
            0..=3 => self.sandbox_ids(|s| s.owner == u && s.state != State::Deleted),
            4 => self.sandbox_ids(|s| s.owner == u && s.state == State::Deleted),
            5..=7 => self.sandbox_ids(|s| s.owner != u && s.state != State::Deleted),
            8 => self.sandbox_ids(|s| s.owner != u && s.state == State::Deleted),
            _ => Vec::new(),
        };
        self.pick_or_random(&ids, |r| r.base62(22))
    }

    /// A conversation id for `u` to aim at, in one of its forms.
    pub(super) fn pick_conversation(&mut self, u: usize) -> String {
        let ids = match self.rng.below(10) {
            0..=4 => self.conversation_ids(|c| c.owner == u),
            5..=8 => self.conversation_ids(|c| c.owner != u),
            _ => Vec::new(),
        };
        let id = self.pick_or_random(&ids, Rng::uuid);
        match self.rng.below(10) {
            0..=5 => id,
            6..=8 => undashed(&id),
            _ => undashed(&id).to_ascii_uppercase(),
        }
    }

    pub(super) fn pick_callback(&mut self, u: usize) -> String {
        let ids = match self.rng.below(10) {
            0..=3 => self.callback_ids(|c| c.owner == u && c.live),
            4 => self.callback_ids(|c| c.owner == u && !c.live),
            5..=7 => self.callback_ids(|c| c.owner != u && c.live),
            8 => self.callback_ids(|c| c.owner != u && !c.live),
            _ => Vec::new(),
        };
        self.pick_or_random(&ids, |r| r.base62(22))
    }

    /// A running sandbox of `u` whose key its agent server can post with.
    pub(super) fn pick_own_key(&mut self, u: usize) -> Option<(String, String)> {
        let running: Vec<(String, String)> = self
            .sandboxes
            .iter()
            .filter(|s| s.owner == u && s.state == State::Running)
            .filter_map(|s| Some((s.id.clone(), s.key.clone()?)))
            .collect();
        self.rng.pick(&running).cloned()
    }

    /// A sandbox, a conversation with events and a title, a callback for all the
    /// user's events, and an event stream held open on the conversation.
    pub(super) async fn bootstrap(&mut self, u: usize) {
        self.doing = format!("{} bootstrap", USERS[u].0);
        self.allowed = Allowed {
            actor: Some(u),
            started: Vec::new(),
        };
        self.op_start(u, None).await;
        let (sandbox, key) = self
            .pick_own_key(u)
            .unwrap_or_else(|| self.fail("bootstrap", "no running sandbox after a start"));
        let conversation = self.rng.uuid();
        let answer = self.create_callback(u, None, false).await;
        if answer.status != 200 {
            self.fail(
                &answer.call,
                format!("answered {}: {}", answer.status, answer.text),
            );
        }
        self.post_own(u, &sandbox, &key, &conversation, true).await;
        self.post_own(u, &sandbox, &key, &conversation, false).await;
        self.hold_stream(u, &conversation).await;
        // The callback is delivered to (so the delivery checks are not vacuous).
        let prefix = format!("/u{u}/");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self
            .receiver
            .received()
            .iter()
            .any(|r| r.path.starts_with(&prefix))
        {
            if Instant::now() > deadline {
                self.fail(
                    &prefix,
                    format!("{}'s callback received nothing", USERS[u].0),
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.check_runtime();
    }

    pub(super) async fn hold_stream(&mut self, u: usize, conversation: &str) {
        let path = format!("/api/v1/conversations/{conversation}/events/stream");
        let call = format!("{} GET {path}", USERS[u].0);
        let mut resp = self
            .request(&Who::User(u), &Method::GET, &path)
            .send()
            .await
            .unwrap_or_else(|e| self.fail(&call, format!("no answer: {e}")));
        if resp.status() != 200 {
            self.fail(&call, format!("answered {}", resp.status()));
        }
        let text = Arc::new(Mutex::new(String::new()));
        let sink = text.clone();
        let task = tokio::spawn(async move {
            while let Ok(Some(chunk)) = resp.chunk().await {
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&String::from_utf8_lossy(&chunk));
            }
        });
        self.streams.push(HeldStream {
            user: u,
            conversation: conversation.to_owned(),
            text,
            task,
            expected: Vec::new(),
        });
    }

    pub(super) fn pick_op(&mut self) -> Op {
        let total: usize = OPS.iter().map(|(_, w)| w).sum();
        let mut n = self.rng.below(total);
        for (op, weight) in OPS {
            if n < weight {
                return op;
            }
            n -= weight;
        }
        Op::GetSandbox
    }

    pub(super) async fn random_step(&mut self) {
        let u = self.rng.below(USERS.len());
        let op = self.pick_op();
        *self.counts.entry(op).or_default() += 1;
        self.doing = format!("{} {op:?}", USERS[u].0);
        self.allowed = Allowed::default();
        match op {
            Op::Start => {
                let chosen = self.choose_start_id(u);
                self.op_start(u, chosen).await;
            }
            Op::GetSandbox => self.op_get_sandbox(u).await,
            Op::BatchGet => self.op_batch_get(u).await,
            Op::SearchSandboxes => self.op_search_sandboxes(u).await,
            Op::Pause => self.op_act(u, "pause").await,
            Op::Resume => self.op_act(u, "resume").await,
            Op::Delete => self.op_act(u, "delete").await,
            Op::Specs => self.op_specs(u).await,
            Op::SearchConversations => self.op_search_conversations(u).await,
            Op::GetConversation => self.op_get_conversation(u).await,
            Op::SearchEvents => self.op_search_events(u).await,
            Op::Stream => self.op_stream(u).await,
            Op::CreateCallback => self.op_create_callback(u).await,
            Op::ListCallbacks => self.op_list_callbacks(u).await,
            Op::GetCallback => self.op_callback(u, "get").await,
            Op::DeleteCallback => self.op_callback(u, "delete").await,
            Op::Deliveries => self.op_callback(u, "deliveries").await,
            Op::WebhookOwn => self.op_webhook_own(u).await,
            Op::WebhookForeign => self.op_webhook_foreign(u).await,
            Op::WebhookBadKey => self.op_webhook_bad_key(u).await,
            Op::AuthMisuse => self.op_auth_misuse(u).await,
        }
        self.check_runtime();
    }
}
