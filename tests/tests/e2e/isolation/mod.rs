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
//!
//! The test is split by concern: [`world`] (the peers, the actors, sending and
//! vetting a call), [`rng`], [`secrets`] (the leak scanner), [`model`],
//! [`generator`] (the random steps), [`checks`] (the oracle), and one file per
//! route family ([`sandboxes`], [`conversations`], [`callbacks`], [`webhooks`],
//! [`auth`]).

mod auth;
mod callbacks;
mod checks;
mod conversations;
mod generator;
mod model;
mod rng;
mod sandboxes;
mod secrets;
mod webhooks;
mod world;

use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use world::Run;

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
    // The model says a paused sandbox's key authenticates nothing: no
    // teardown grace (its own tests are in `policies`).
    toml.push_str("[lifecycle]\nteardown_grace = 0\n");
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

#[tokio::test]
async fn users_never_see_or_touch_each_others_objects() {
    let _turn = crate::serial::shared();
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
