//! The world and its actors: the fake runtime, sandboxd and the callback
//! receiver a run drives; who makes a call (a user, the admin, an agent server's
//! session key, a bearer token that is not an API key); and how a call is sent,
//! its answer vetted for leaks and 5xx, and a failure reported with its seed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::Value;
use tokio::task::JoinHandle;

use sandboxd_tests::fake_runtime::FakeRuntime;
use sandboxd_tests::receiver::Receiver;
use sandboxd_tests::sandboxd::{Options, Sandboxd};

use super::generator::Op;
use super::model::{CallbackModel, ConversationModel, SandboxModel};
use super::rng::Rng;
use super::secrets::{Secrets, dashed};
use super::{ADMIN_KEY, USERS, config};

/// Who makes a call.
#[derive(Clone, Debug)]
pub(super) enum Who {
    User(usize),
    Admin,
    /// An agent server's `X-Session-API-Key` (none: the header is missing), sent
    /// by a user who is the one reading the answer.
    Session(Option<String>, usize),
    /// `Authorization: Bearer` with something that is not an API key, by a user.
    Bearer(String, usize),
}

pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) text: String,
    pub(super) json: Value,
    pub(super) call: String,
}

impl Answer {
    pub(super) fn detail(&self) -> &str {
        self.json["detail"].as_str().unwrap_or_default()
    }
}

/// An event stream a user holds open for the whole run.
pub(super) struct HeldStream {
    pub(super) user: usize,
    pub(super) conversation: String,
    pub(super) text: Arc<Mutex<String>>,
    pub(super) task: JoinHandle<()>,
    /// Events posted to the conversation after it opened.
    pub(super) expected: Vec<String>,
}

/// What a step may do at the runtime API.
#[derive(Default)]
pub(super) struct Allowed {
    /// The user whose own sandboxes may be paused, resumed or stopped.
    pub(super) actor: Option<usize>,
    /// Sandbox ids a `/start` may be for.
    pub(super) started: Vec<String>,
}

pub(super) struct Run {
    pub(super) seed: u64,
    pub(super) step: usize,
    pub(super) rng: Rng,
    pub(super) rt: FakeRuntime,
    pub(super) sd: Sandboxd,
    pub(super) receiver: Receiver,
    pub(super) http: reqwest::Client,
    pub(super) sandboxes: Vec<SandboxModel>,
    pub(super) conversations: Vec<ConversationModel>,
    /// Undashed id → index in `conversations`.
    pub(super) conversation_index: HashMap<String, usize>,
    pub(super) callbacks: Vec<CallbackModel>,
    pub(super) secrets: Secrets,
    /// Runtime id → (sandbox id, owner).
    pub(super) runtimes: HashMap<String, (String, usize)>,
    /// Every session key seen and its sandbox's owner, in the order seen (not a
    /// hash map: picks from it must not depend on the process's hash seed).
    pub(super) keys_seen: Vec<(String, usize)>,
    /// The last sandbox-search and conversation-search cursors each user got.
    pub(super) sandbox_cursors: Vec<Option<String>>,
    pub(super) conversation_cursors: Vec<Option<String>>,
    pub(super) streams: Vec<HeldStream>,
    /// Conversation ids each user put into their own callbacks (which reading
    /// those callbacks gives back).
    pub(super) callback_targets: Vec<Vec<String>>,
    pub(super) clock: u64,
    pub(super) allowed: Allowed,
    /// The step's user and operation, for failure messages.
    pub(super) doing: String,
    pub(super) counts: HashMap<Op, usize>,
}

impl Run {
    pub(super) async fn start(seed: u64) -> Run {
        let rt = FakeRuntime::start();
        let sd = Sandboxd::start_with(
            Options::for_runtime(&rt)
                .config(&config())
                .env("SANDBOXD_SYNC_MODE", "webhook")
                .env("SANDBOXD_MAX_NUM_SANDBOXES", "3"),
        );
        let mut secrets = Secrets::default();
        for (u, (user, key)) in USERS.iter().enumerate() {
            secrets.add(user, "user id", u);
            secrets.add(key, "API key", u);
        }
        Run {
            seed,
            step: 0,
            rng: Rng(seed),
            rt,
            sd,
            receiver: Receiver::start(),
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_else(|e| panic!("http client: {e}")),
            sandboxes: Vec::new(),
            conversations: Vec::new(),
            conversation_index: HashMap::new(),
            callbacks: Vec::new(),
            secrets,
            runtimes: HashMap::new(),
            keys_seen: Vec::new(),
            sandbox_cursors: vec![None; USERS.len()],
            conversation_cursors: vec![None; USERS.len()],
            streams: Vec::new(),
            callback_targets: vec![Vec::new(); USERS.len()],
            clock: 0,
            allowed: Allowed::default(),
            doing: "setup".to_owned(),
            counts: HashMap::new(),
        }
    }

    // ---- Calls and failures ----------------------------------------------------------

    pub(super) fn fail(&self, call: &str, what: impl std::fmt::Display) -> ! {
        panic!(
            "isolation violated (seed {seed}, step {step}, {doing}): {what}\n  call: {call}\n  replay: ISOLATION_SEED={seed} cargo test -p sandboxd-tests --test e2e isolation:: -- --nocapture",
            seed = self.seed,
            step = self.step,
            doing = self.doing,
        )
    }

    pub(super) fn describe(who: &Who) -> String {
        match who {
            Who::User(u) => USERS[*u].0.to_owned(),
            Who::Admin => "admin".to_owned(),
            Who::Session(Some(key), u) => format!("{} with X-Session-API-Key {key}", USERS[*u].0),
            Who::Session(None, u) => format!("{} without X-Session-API-Key", USERS[*u].0),
            Who::Bearer(token, u) => format!("{} with Bearer {token}", USERS[*u].0),
        }
    }

    /// Who reads the answer, for the leak check (none: the admin, who sees all).
    pub(super) fn viewer(who: &Who) -> Option<usize> {
        match who {
            Who::User(u) | Who::Session(_, u) | Who::Bearer(_, u) => Some(*u),
            Who::Admin => None,
        }
    }

    pub(super) fn request(
        &self,
        who: &Who,
        method: &Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let req = self
            .http
            .request(method.clone(), format!("{}{path}", self.sd.url()));
        match who {
            Who::User(u) => req.bearer_auth(USERS[*u].1),
            Who::Admin => req.bearer_auth(ADMIN_KEY),
            Who::Session(Some(key), _) => req.header("x-session-api-key", key),
            Who::Session(None, _) => req,
            Who::Bearer(token, _) => req.bearer_auth(token),
        }
    }

    /// Check an answer: never a 5xx, and nothing of another user in it.
    pub(super) fn vet(&self, who: &Who, request: &str, status: u16, text: &str, call: &str) {
        if status >= 500 {
            self.fail(call, format!("answered {status}: {text}"));
        }
        if let Some(viewer) = Self::viewer(who)
            && let Some(token) = self.secrets.leak(viewer, request, text)
        {
            let owners: Vec<&str> = (0..USERS.len())
                .filter(|o| token.owners & (1 << o) != 0)
                .map(|o| USERS[o].0)
                .collect();
            self.fail(
                call,
                format!(
                    "the answer ({status}) to {} contains {} '{}' of {owners:?}: {text}",
                    Self::describe(who),
                    token.kind,
                    token.text
                ),
            );
        }
    }

    pub(super) async fn send(
        &self,
        who: &Who,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        let body_text = body.map(Value::to_string).unwrap_or_default();
        let call = format!("{} {method} {path} {body_text}", Self::describe(who));
        let mut req = self.request(who, &method, path);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| self.fail(&call, format!("no answer: {e}")));
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| self.fail(&call, format!("unreadable answer: {e}")));
        let mut request = format!("{path} {body_text}");
        if let Who::User(u) = who
            && path.starts_with("/api/v1/event-callbacks")
            && !path.contains("/deliveries")
        {
            // A callback shows the conversation id its creator gave it.
            request.push_str(&self.callback_targets[*u].join(" "));
        }
        self.vet(who, &request, status, &text, &call);
        Answer {
            status,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
            call,
        }
    }

    pub(super) async fn get(&self, who: &Who, path: &str) -> Answer {
        self.send(who, Method::GET, path, None).await
    }

    /// A call that must succeed; its JSON.
    pub(super) async fn ok(
        &self,
        who: &Who,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Value {
        let answer = self.send(who, method, path, body).await;
        if answer.status != 200 {
            self.fail(
                &answer.call,
                format!("expected 200, got {}: {}", answer.status, answer.text),
            );
        }
        answer.json
    }

    /// A random id shaped like `target`. It always draws the same amount from the
    /// PRNG (ids of other users vary in length), so that a seed replays exactly.
    pub(super) fn random_like(&mut self, target: &str) -> String {
        let hex = self.rng.hex(32);
        let base62 = self.rng.base62(64);
        let is_hex = target.len() == 32 && target.bytes().all(|b| b.is_ascii_hexdigit());
        if target.len() == 36 && target.matches('-').count() == 4 {
            dashed(&hex)
        } else if is_hex && target.bytes().any(|b| b.is_ascii_uppercase()) {
            hex.to_ascii_uppercase()
        } else if is_hex {
            hex
        } else {
            base62[..target.len().clamp(1, 64)].to_owned()
        }
    }

    /// `method template` with `target` (another user's, or no one's) in place of
    /// `{}` must answer 404, exactly like the same call for a random id.
    pub(super) async fn expect_missing(
        &mut self,
        u: usize,
        method: Method,
        template: &str,
        target: &str,
    ) -> Answer {
        let who = Who::User(u);
        let answer = self
            .send(&who, method.clone(), &template.replace("{}", target), None)
            .await;
        let twin_id = self.random_like(target);
        let twin = self
            .send(&who, method, &template.replace("{}", &twin_id), None)
            .await;
        if answer.status != 404 {
            self.fail(
                &answer.call,
                format!(
                    "another user's (or no one's) object answered {} instead of 404: {}",
                    answer.status, answer.text
                ),
            );
        }
        if twin.status != answer.status
            || answer.detail().replace(target, "X") != twin.detail().replace(&twin_id, "X")
        {
            self.fail(
                &answer.call,
                format!(
                    "distinguishable from a missing object: {} {} vs {} {} for random id {twin_id}",
                    answer.status, answer.text, twin.status, twin.text
                ),
            );
        }
        answer
    }
}
