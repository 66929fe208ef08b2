//! Conversation and event sync against in-memory agent servers.

use serde_json::{Value, json};

use crate::conversations::EventQuery;
use crate::error::Error;
use crate::ports::{Credential, HttpError};
use crate::share::Share;
use crate::testing::{HOOKS_URL, World};

const CONV_A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const CONV_B: &str = "bbbbbbbb-0000-4000-8000-000000000002";

fn ok<T>(r: Result<T, Error>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("unexpected error: {e:?}"),
    }
}

/// Start a sandbox for `user` and put an agent server at its runtime URL.
fn sandbox_with_agent(w: &World, user: Option<&str>) -> (String, String, String) {
    let info = ok(w.as_user(user).start(None, None));
    let url = w
        .runtime
        .runtime(&info.id)
        .and_then(|r| r["url"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let key = w.runtime.key_of(&info.id).unwrap_or_default();
    w.agents.add_agent(&url, &key);
    (info.id, url, key)
}

fn event(id: &str, ts: &str, kind: &str) -> Value {
    json!({"id": id, "timestamp": ts, "kind": kind, "source": "agent", "payload": {"n": id}})
}

fn event_ids(
    w: &World,
    user: Option<&str>,
    conv: &str,
    q: EventQuery,
) -> (Vec<String>, Option<String>) {
    let page = ok(w.as_user(user).search_events(
        conv,
        &EventQuery {
            limit: if q.limit == 0 { 100 } else { q.limit },
            ..q
        },
    ));
    let ids = page
        .items
        .iter()
        .map(|i| {
            serde_json::from_str::<Value>(i)
                .map(|v| v["id"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_default()
        })
        .collect();
    (ids, page.next_page_id)
}

fn conversation(w: &World, user: Option<&str>, id: &str) -> Value {
    serde_json::from_str(&ok(w.as_user(user).get_conversation(id))).unwrap_or_default()
}

mod callbacks;
mod poll;
mod queries;
mod webhooks;
