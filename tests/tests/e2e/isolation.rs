//! Property test: isolation between users, through the real binary.
//!
//! Three users (API keys) make a few hundred random calls, from a seeded PRNG,
//! through every route of the API: sandboxes (start, also with a chosen id that is
//! another user's; get; batch get; every page of search, also from another user's
//! cursor; pause; resume; delete), sandbox specs, conversations (search, also by
//! another user's sandbox; get, with dashed, undashed and upper-case ids), events
//! (search, stream), event callbacks (create, also for another user's
//! conversation; list; get; delete; deliveries), and the webhooks agent servers
//! post with their sandbox's `X-Session-API-Key`: as the honest agent server of
//! the user's own sandbox (which is how conversations and events come to exist),
//! and as an attacker (the user's own key aimed at another user's conversation;
//! random keys; the old key of a paused, resumed or deleted sandbox; a session key
//! or an id used as an API key). Targets are the user's own objects, other users'
//! real ids, and random ids. An admin key is used only to check.
//!
//! A model records who owns what. After every call and step it asserts:
//!
//! 1. No answer to a user (or to a webhook caller) contains an identifier or secret
//!    of another user that the request did not itself carry: sandbox ids, runtime
//!    ids, session keys (current and old), conversation ids (both forms), event ids
//!    and contents, callback ids, secrets and URLs, user ids and API keys. Page
//!    cursors (`c` + hex) are decoded before looking, and the event streams held
//!    open by each user and the deliveries each user's callbacks receive are
//!    checked the same way.
//! 2. A call aimed at another user's object answers exactly like one aimed at a
//!    random id that exists nowhere (404 with the same detail; a conversation
//!    search by another user's sandbox is one empty page with no next page; a
//!    callback for another user's conversation is created exactly as for a random
//!    one and never receives anything; a webhook is refused with 401/403/404),
//!    never 200 with their data; and no call ever gets a 5xx.
//! 3. Nothing of another user changes: the fake runtime receives no `/start`,
//!    `/pause`, `/resume` or `/stop` except for the acting user's own sandboxes in
//!    that user's own lifecycle calls; every runtime's status and session key match
//!    the model after every step; the targeted object is read back by its owner
//!    after every foreign call; and every 50 steps (and at the end) each user's
//!    whole view (sandboxes, conversations with their titles and events,
//!    callbacks) is compared with the model, and the admin's view with the union.
//!
//! The seed comes from `ISOLATION_SEED` (decimal or `0x` hex) or the clock and is
//! printed first; `ISOLATION_STEPS` changes the number of steps (default 600). A
//! failure names the seed, the step and the call.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use sandboxd_tests::fake_runtime::FakeRuntime;
use sandboxd_tests::receiver::Receiver;
use sandboxd_tests::sandboxd::{Options, Sandboxd};

/// The users: id and API key.
const USERS: [(&str, &str); 3] = [
    ("user_ann_5e1f", "ann-key-0123456789abcdef"),
    ("user_bo_7c2d", "bo-key-0123456789abcdef"),
    ("user_cy_9a4b", "cy-key-0123456789abcdef"),
];
const ADMIN_KEY: &str = "admin-key-0123456789abcdef";
const DEFAULT_STEPS: usize = 600;
/// Steps between full comparisons of every view with the model.
const CHECK_EVERY: usize = 50;
/// Live sandboxes per user the generator allows (sandboxd pauses beyond 3 running).
const MAX_LIVE: usize = 5;
/// How long a short read of an event stream lasts.
const STREAM_READ: Duration = Duration::from_millis(100);
const EVENT_KINDS: [&str; 3] = ["MessageEvent", "ActionEvent", "ObservationEvent"];

fn config() -> String {
    let mut toml = String::from("[auth]\nmode = \"api-keys\"\n");
    for (user, key) in USERS {
        let _ = write!(
            toml,
            "[[auth.keys]]\nkey = \"{key}\"\nuser_id = \"{user}\"\n"
        );
    }
    let _ = write!(toml, "[[auth.keys]]\nkey = \"{ADMIN_KEY}\"\nadmin = true\n");
    toml
}

fn seed() -> u64 {
    match std::env::var("ISOLATION_SEED") {
        Ok(text) => {
            let text = text.trim();
            let parsed = match text.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => text.parse(),
            };
            parsed.unwrap_or_else(|e| panic!("ISOLATION_SEED={text:?} is not a number: {e}"))
        }
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed),
    }
}

fn steps() -> usize {
    std::env::var("ISOLATION_STEPS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_STEPS)
}

// ---- A small seeded PRNG ---------------------------------------------------------

/// splitmix64: tiny, fast, and good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }

    fn chars(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[self.below(alphabet.len())]))
            .collect()
    }

    fn hex(&mut self, len: usize) -> String {
        self.chars(b"0123456789abcdef", len)
    }

    /// Shaped like sandbox and callback ids (base62).
    fn base62(&mut self, len: usize) -> String {
        self.chars(
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            len,
        )
    }

    /// A dashed UUID, the form agent servers use for conversation ids.
    fn uuid(&mut self) -> String {
        dashed(&self.hex(32))
    }
}

// ---- Ids and secrets ---------------------------------------------------------------

fn dashed(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn undashed(id: &str) -> String {
    id.replace('-', "").to_ascii_lowercase()
}

/// The form used to tell whether a request carried a token: case and dashes do
/// not matter (a conversation id is the same in both forms).
fn canonical(text: &str) -> String {
    text.to_ascii_lowercase().replace('-', "")
}

/// `text` followed by the decoded bytes of every page cursor in it (`c` + an even
/// number of hex digits), so that ids hidden in cursors are seen too.
fn with_decoded_cursors(text: &str) -> String {
    let mut out = text.to_owned();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'c' && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && bytes[end].is_ascii_hexdigit() {
                end += 1;
            }
            let len = (end - start) & !1;
            if len >= 18 {
                let decoded: Vec<u8> = (start..start + len)
                    .step_by(2)
                    .filter_map(|j| u8::from_str_radix(&text[j..j + 2], 16).ok())
                    .collect();
                out.push('\n');
                out.push_str(&String::from_utf8_lossy(&decoded));
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// One identifier or secret, and the users it belongs to (a bit each).
struct Token {
    text: String,
    canonical: String,
    kind: &'static str,
    owners: u8,
}

#[derive(Default)]
struct Secrets {
    tokens: Vec<Token>,
    index: HashMap<String, usize>,
}

impl Secrets {
    fn add(&mut self, text: &str, kind: &'static str, owner: usize) {
        if text.is_empty() {
            return;
        }
        match self.index.get(text) {
            Some(&i) => self.tokens[i].owners |= 1 << owner,
            None => {
                self.index.insert(text.to_owned(), self.tokens.len());
                self.tokens.push(Token {
                    text: text.to_owned(),
                    canonical: canonical(text),
                    kind,
                    owners: 1 << owner,
                });
            }
        }
    }

    fn add_conversation(&mut self, id: &str, owner: usize) {
        self.add(&dashed(&undashed(id)), "conversation id", owner);
        self.add(&undashed(id), "conversation id (undashed)", owner);
    }

    /// The first token in `answer` that `viewer` may not see and `request` did not
    /// carry.
    fn leak(&self, viewer: usize, request: &str, answer: &str) -> Option<&Token> {
        let scanned = with_decoded_cursors(answer);
        let request = canonical(&with_decoded_cursors(request));
        self.tokens.iter().find(|t| {
            t.owners & (1 << viewer) == 0
                && scanned.contains(&t.text)
                && !request.contains(&t.canonical)
        })
    }
}

// ---- The model -----------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Running,
    Paused,
    Deleted,
}

struct SandboxModel {
    id: String,
    owner: usize,
    state: State,
    /// The session key sandboxd last showed (valid for webhooks only while running).
    key: Option<String>,
}

struct ConversationModel {
    /// Dashed.
    id: String,
    owner: usize,
    sandbox_id: String,
    title: Option<String>,
    events: Vec<String>,
}

struct CallbackModel {
    id: String,
    owner: usize,
    url: String,
    live: bool,
}

/// Who makes a call.
#[derive(Clone, Debug)]
enum Who {
    User(usize),
    Admin,
    /// An agent server's `X-Session-API-Key` (none: the header is missing), sent
    /// by a user who is the one reading the answer.
    Session(Option<String>, usize),
    /// `Authorization: Bearer` with something that is not an API key, by a user.
    Bearer(String, usize),
}

struct Answer {
    status: u16,
    text: String,
    json: Value,
    call: String,
}

impl Answer {
    fn detail(&self) -> &str {
        self.json["detail"].as_str().unwrap_or_default()
    }
}

/// An event stream a user holds open for the whole run.
struct HeldStream {
    user: usize,
    conversation: String,
    text: Arc<Mutex<String>>,
    task: JoinHandle<()>,
    /// Events posted to the conversation after it opened.
    expected: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
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

const OPS: [(Op, usize); 21] = [
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

/// What a step may do at the runtime API.
#[derive(Default)]
struct Allowed {
    /// The user whose own sandboxes may be paused, resumed or stopped.
    actor: Option<usize>,
    /// Sandbox ids a `/start` may be for.
    started: Vec<String>,
}

struct Run {
    seed: u64,
    step: usize,
    rng: Rng,
    rt: FakeRuntime,
    sd: Sandboxd,
    receiver: Receiver,
    http: reqwest::Client,
    sandboxes: Vec<SandboxModel>,
    conversations: Vec<ConversationModel>,
    /// Undashed id → index in `conversations`.
    conversation_index: HashMap<String, usize>,
    callbacks: Vec<CallbackModel>,
    secrets: Secrets,
    /// Runtime id → (sandbox id, owner).
    runtimes: HashMap<String, (String, usize)>,
    /// Every session key seen and its sandbox's owner, in the order seen (not a
    /// hash map: picks from it must not depend on the process's hash seed).
    keys_seen: Vec<(String, usize)>,
    /// The last sandbox-search and conversation-search cursors each user got.
    sandbox_cursors: Vec<Option<String>>,
    conversation_cursors: Vec<Option<String>>,
    streams: Vec<HeldStream>,
    /// Conversation ids each user put into their own callbacks (which reading
    /// those callbacks gives back).
    callback_targets: Vec<Vec<String>>,
    clock: u64,
    allowed: Allowed,
    /// The step's user and operation, for failure messages.
    doing: String,
    counts: HashMap<Op, usize>,
}

#[tokio::test]
async fn users_never_see_or_touch_each_others_objects() {
    let _turn = crate::serial::shared().await;
    let seed = seed();
    let steps = steps();
    println!(
        "isolation: seed {seed} ({steps} steps); replay with ISOLATION_SEED={seed} cargo test -p sandboxd-tests --test e2e isolation:: -- --nocapture"
    );
    let started = Instant::now();
    let mut run = Run::start(seed).await;
    for u in 0..USERS.len() {
        run.bootstrap(u).await;
    }
    run.full_check().await;
    for step in 1..=steps {
        run.step = step;
        run.random_step().await;
        if step % CHECK_EVERY == 0 {
            run.full_check().await;
        }
    }
    run.step = steps + 1;
    run.full_check().await;
    run.check_streams_and_deliveries().await;
    let mut counts: Vec<_> = run.counts.iter().collect();
    counts.sort();
    println!(
        "isolation: seed {seed}: {steps} steps in {:.1?}; {} sandboxes, {} conversations, {} events, {} callbacks; ops {counts:?}",
        started.elapsed(),
        run.sandboxes.len(),
        run.conversations.len(),
        run.conversations
            .iter()
            .map(|c| c.events.len())
            .sum::<usize>(),
        run.callbacks.len(),
    );
    for stream in &run.streams {
        stream.task.abort();
    }
}

impl Run {
    async fn start(seed: u64) -> Run {
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

    fn fail(&self, call: &str, what: impl std::fmt::Display) -> ! {
        panic!(
            "isolation violated (seed {seed}, step {step}, {doing}): {what}\n  call: {call}\n  replay: ISOLATION_SEED={seed} cargo test -p sandboxd-tests --test e2e isolation:: -- --nocapture",
            seed = self.seed,
            step = self.step,
            doing = self.doing,
        )
    }

    fn describe(who: &Who) -> String {
        match who {
            Who::User(u) => USERS[*u].0.to_owned(),
            Who::Admin => "admin".to_owned(),
            Who::Session(Some(key), u) => format!("{} with X-Session-API-Key {key}", USERS[*u].0),
            Who::Session(None, u) => format!("{} without X-Session-API-Key", USERS[*u].0),
            Who::Bearer(token, u) => format!("{} with Bearer {token}", USERS[*u].0),
        }
    }

    /// Who reads the answer, for the leak check (none: the admin, who sees all).
    fn viewer(who: &Who) -> Option<usize> {
        match who {
            Who::User(u) | Who::Session(_, u) | Who::Bearer(_, u) => Some(*u),
            Who::Admin => None,
        }
    }

    fn request(&self, who: &Who, method: &Method, path: &str) -> reqwest::RequestBuilder {
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
    fn vet(&self, who: &Who, request: &str, status: u16, text: &str, call: &str) {
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

    async fn send(&self, who: &Who, method: Method, path: &str, body: Option<&Value>) -> Answer {
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

    async fn get(&self, who: &Who, path: &str) -> Answer {
        self.send(who, Method::GET, path, None).await
    }

    /// A call that must succeed; its JSON.
    async fn ok(&self, who: &Who, method: Method, path: &str, body: Option<&Value>) -> Value {
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
    fn random_like(&mut self, target: &str) -> String {
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
    async fn expect_missing(
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

    // ---- Model lookups -----------------------------------------------------------------

    fn live_sandbox(&self, id: &str) -> Option<&SandboxModel> {
        self.sandboxes
            .iter()
            .find(|s| s.id == id && s.state != State::Deleted)
    }

    fn live_index(&self, id: &str) -> Option<usize> {
        self.sandboxes
            .iter()
            .position(|s| s.id == id && s.state != State::Deleted)
    }

    fn sandbox_ids(&self, filter: impl Fn(&SandboxModel) -> bool) -> Vec<String> {
        self.sandboxes
            .iter()
            .filter(|s| filter(s))
            .map(|s| s.id.clone())
            .collect()
    }

    /// The owner of the sandbox whose webhooks `key` authenticates now.
    fn valid_key_owner(&self, key: &str) -> Option<usize> {
        self.sandboxes
            .iter()
            .find(|s| s.state == State::Running && s.key.as_deref() == Some(key))
            .map(|s| s.owner)
    }

    fn conversation(&self, id: &str) -> Option<&ConversationModel> {
        self.conversation_index
            .get(&undashed(id))
            .map(|&i| &self.conversations[i])
    }

    fn conversation_ids(&self, filter: impl Fn(&ConversationModel) -> bool) -> Vec<String> {
        self.conversations
            .iter()
            .filter(|c| filter(c))
            .map(|c| c.id.clone())
            .collect()
    }

    fn callback_ids(&self, filter: impl Fn(&CallbackModel) -> bool) -> Vec<String> {
        self.callbacks
            .iter()
            .filter(|c| filter(c))
            .map(|c| c.id.clone())
            .collect()
    }

    fn event_ids(&self, filter: impl Fn(&ConversationModel) -> bool) -> Vec<String> {
        self.conversations
            .iter()
            .filter(|c| filter(c))
            .flat_map(|c| c.events.iter().cloned())
            .collect()
    }

    fn pick_or_random(
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
    fn pick_sandbox(&mut self, u: usize) -> String {
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
    fn pick_conversation(&mut self, u: usize) -> String {
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

    fn pick_callback(&mut self, u: usize) -> String {
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
    fn pick_own_key(&mut self, u: usize) -> Option<(String, String)> {
        let running: Vec<(String, String)> = self
            .sandboxes
            .iter()
            .filter(|s| s.owner == u && s.state == State::Running)
            .filter_map(|s| Some((s.id.clone(), s.key.clone()?)))
            .collect();
        self.rng.pick(&running).cloned()
    }

    // ---- Model updates -----------------------------------------------------------------

    fn remember_key(&mut self, key: &str, owner: usize) {
        self.secrets.add(key, "session key", owner);
        if !self.keys_seen.iter().any(|(k, _)| k == key) {
            self.keys_seen.push((key.to_owned(), owner));
        }
    }

    fn add_sandbox(&mut self, info: &Value, owner: usize, call: &str) {
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

    fn add_conversation(&mut self, id: &str, owner: usize, sandbox_id: &str) -> usize {
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
    fn new_events(&mut self, owner: Option<usize>, n: usize) -> Vec<Value> {
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

    fn record_events(&mut self, conversation: usize, events: &[Value]) {
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
    async fn all_pages(
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
    async fn refresh(&mut self, u: usize) {
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

    // ---- Invariants ----------------------------------------------------------------------

    /// The runtime API saw only what the step may do, and every runtime is as the
    /// model says.
    fn check_runtime(&self) {
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
    async fn verify_sandbox(&self, id: &str) {
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
    async fn verify_conversation(&self, id: &str) {
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

    async fn verify_callback(&self, id: &str) {
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
    async fn full_check(&mut self) {
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

    fn check_held_streams(&self) {
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
    async fn check_streams_and_deliveries(&self) {
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

    // ---- Steps -----------------------------------------------------------------------------

    /// A sandbox, a conversation with events and a title, a callback for all the
    /// user's events, and an event stream held open on the conversation.
    async fn bootstrap(&mut self, u: usize) {
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

    async fn hold_stream(&mut self, u: usize, conversation: &str) {
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

    fn pick_op(&mut self) -> Op {
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

    async fn random_step(&mut self) {
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

    /// The `sandbox_id` a start asks for: none mostly; sometimes a new one, one of
    /// another user's (taken, or deleted), or one of the user's own deleted ones.
    fn choose_start_id(&mut self, u: usize) -> Option<String> {
        let ids = match self.rng.below(20) {
            0..=10 => return None,
            11..=12 => return Some(self.rng.base62(22)),
            13..=15 => self.sandbox_ids(|s| s.owner != u && s.state != State::Deleted),
            16..=17 => self.sandbox_ids(|s| s.owner != u && s.state == State::Deleted),
            _ => self.sandbox_ids(|s| s.owner == u && s.state == State::Deleted),
        };
        self.rng.pick(&ids).cloned()
    }

    async fn op_start(&mut self, u: usize, chosen: Option<String>) {
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

    async fn op_get_sandbox(&mut self, u: usize) {
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

    async fn op_batch_get(&mut self, u: usize) {
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

    async fn op_search_sandboxes(&mut self, u: usize) {
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

    async fn delete_own(&mut self, u: usize, id: &str) {
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
    async fn op_act(&mut self, u: usize, action: &str) {
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

    async fn op_specs(&mut self, u: usize) {
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

    async fn op_search_conversations(&mut self, u: usize) {
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

    async fn op_get_conversation(&mut self, u: usize) {
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

    async fn op_search_events(&mut self, u: usize) {
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

    async fn op_stream(&mut self, u: usize) {
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

    /// Create a callback to the receiver; `kinds`: perhaps only for some kinds.
    async fn create_callback(
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
    async fn op_create_callback(&mut self, u: usize) {
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

    async fn op_list_callbacks(&mut self, u: usize) {
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
    async fn op_callback(&mut self, u: usize, action: &str) {
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

    /// As the agent server of `sandbox`: post a `ConversationInfo` (`info`) or a
    /// batch of new events for the owner's conversation.
    async fn post_own(
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

    async fn op_webhook_own(&mut self, u: usize) {
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
    fn attack_body(&mut self, attacker: Option<usize>, target: &str) -> (String, Value) {
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
    async fn op_webhook_foreign(&mut self, u: usize) {
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
    async fn op_webhook_bad_key(&mut self, u: usize) {
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

    /// Session keys and ids are not API keys; users are not admins.
    async fn op_auth_misuse(&mut self, u: usize) {
        let keys: Vec<String> = self.keys_seen.iter().map(|(k, _)| k.clone()).collect();
        let token = match self.rng.below(3) {
            0 => self.pick_or_random(&keys, |r| r.hex(32)),
            1 => {
                let ids = self.sandbox_ids(|_| true);
                self.pick_or_random(&ids, |r| r.base62(22))
            }
            _ => self.rng.hex(24),
        };
        let path = [
            "/api/v1/sandboxes/search",
            "/api/v1/conversations/search",
            "/api/v1/event-callbacks",
        ][self.rng.below(3)];
        for who in [Who::Bearer(token.clone(), u), Who::Session(Some(token), u)] {
            let answer = self.get(&who, path).await;
            if answer.status != 401 {
                self.fail(
                    &answer.call,
                    format!("answered {} instead of 401: {}", answer.status, answer.text),
                );
            }
        }
        let answer = self.get(&Who::User(u), "/admin/plugin").await;
        if answer.status != 403 {
            self.fail(
                &answer.call,
                format!(
                    "a user reached an admin route: {} {}",
                    answer.status, answer.text
                ),
            );
        }
    }
}
