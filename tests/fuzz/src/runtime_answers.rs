//! Runtime API answers: the input is a body the runtime API answers with, to
//! `GET /sessions/{id}`, `GET /sessions/batch`, `GET /list` and `POST /resume`,
//! read by the plugin's real client (`plugin/src/runtime/`), and then by the
//! service that turns runtimes into sandboxes.
//!
//! Asserts:
//! - the tolerant reader agrees field by field with a plain `serde_json::Value`
//!   reading, and any JSON body is read (the contract: tolerate);
//! - a body that cannot be read is an "unreadable body" error naming the call,
//!   and a failure status becomes a short, printable excerpt;
//! - statuses and URLs keep their rules: URLs only when running, exactly four
//!   with a runtime URL, the session key percent-encoded;
//! - the service's get, batch get and search never fail on an answer: a bad one
//!   makes the sandbox `MISSING`.

use std::collections::HashMap;

use crate::world::{NOW_US, RUNTIME_URL, World, ok, percent_decode, runtime_of_value};
use sandboxd_plugin::model::Status;
use sandboxd_plugin::ports::Response;
use sandboxd_plugin::runtime::client::{Action, Cause};
use sandboxd_plugin::runtime::{Runtime, RuntimeApi};
use sandboxd_plugin::{status, urls};
use serde_json::Value;

/// One input, checked.
pub fn run(data: &[u8]) {
    let value: Option<Value> = serde_json::from_slice(data).ok();
    let world = World::new(|_| ok(data));
    let api = RuntimeApi::new(&world.http, &world.env, RUNTIME_URL);

    // GET /sessions/{id}: one runtime object.
    let one = api.get("sb-1");
    match &one {
        Ok(rt) => rt.iter().for_each(check_runtime),
        Err(e) => {
            assert!(matches!(e.cause, Cause::Malformed(_)), "{e}");
            assert!(
                e.to_string()
                    .starts_with("runtime API GET /sessions/sb-1 answered an unreadable body"),
                "{e}"
            );
        }
    }
    if let Some(v) = &value {
        let rt = one
            .as_ref()
            .unwrap_or_else(|e| panic!("a JSON body must be tolerated: {e}"));
        assert_eq!(rt, &runtime_of_value(v));
    }

    // GET /sessions/batch: a list (or null) of runtime objects, keyed by session id.
    let batch = api.batch(&["sb-1", "sb-2"]);
    if let Ok(found) = &batch {
        for (id, rt) in found {
            assert_eq!(rt.session_id.as_deref(), Some(id.as_str()));
            check_runtime(rt);
        }
    }
    match &value {
        Some(v @ (Value::Null | Value::Array(_))) => {
            let found = batch
                .as_ref()
                .unwrap_or_else(|e| panic!("a JSON list must be tolerated: {e}"));
            let mut want = HashMap::new();
            for rt in v
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(runtime_of_value)
            {
                if let Some(id) = rt.session_id.clone() {
                    want.insert(id, rt);
                }
            }
            assert_eq!(found, &want);
        }
        Some(_) => assert!(batch.is_err(), "a body that is no list read as one"),
        None => {}
    }

    // GET /list: {"runtimes": [...]}.
    let list = api.list();
    if let Ok(runtimes) = &list {
        runtimes.iter().for_each(check_runtime);
        if let Some(Value::Object(o)) = &value {
            let want: Vec<Runtime> = match o.get("runtimes") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(items)) => items.iter().filter_map(runtime_of_value).collect(),
                Some(other) => panic!("runtimes read from {other}"),
            };
            assert_eq!(runtimes, &want);
        }
    }

    // POST /resume: an empty 200 is done; one that describes the runtime (or
    // any JSON) is done with what it describes; anything else is no proof.
    match api.resume("rt-1") {
        Ok(Action::Done(rt)) => match &value {
            Some(v) => assert_eq!(rt, runtime_of_value(v)),
            None => {
                assert!(
                    data.iter().all(u8::is_ascii_whitespace),
                    "done on a non-JSON answer"
                );
                assert_eq!(rt, None);
            }
        },
        Ok(Action::NotFound) => panic!("a 200 to /resume read as not found"),
        Err(e) => {
            assert!(
                value.is_none() && matches!(e.cause, Cause::Malformed(_)),
                "{e}"
            );
        }
    }

    // The same body with a failure status: an error with a printable excerpt.
    let failing = World::new(|_| Ok(Response::new(500, data.to_vec())));
    let api = RuntimeApi::new(&failing.http, &failing.env, RUNTIME_URL);
    match api.get("sb-1") {
        Err(e) => match &e.cause {
            Cause::Status { status: 500, body } => {
                assert!(body.chars().count() <= 201, "excerpt too long");
                assert!(!body.chars().any(char::is_control), "control in {body:?}");
            }
            other => panic!("a 500 read as {other:?}"),
        },
        Ok(rt) => panic!("a 500 read as {rt:?}"),
    }

    // The service: a sandbox whose runtime answered this body.
    world.put_sandbox("sb-1", Some("alice"), "key-1", NOW_US - 2_000_000);
    world.put_sandbox("sb-2", Some("alice"), "key-2", NOW_US - 1_000_000);
    let alice = world.service(Some("alice"));
    let info = alice
        .get("sb-1")
        .unwrap_or_else(|e| panic!("get failed on a runtime answer: {e}"));
    let runtime = one.ok().flatten();
    assert_eq!(info.status, status::from_runtime(runtime.as_ref()));
    assert_eq!(
        info.exposed_urls,
        urls::exposed_urls(info.status, runtime.as_ref())
    );
    let infos = alice
        .batch_get(&["sb-1".into(), "sb-2".into(), "nope".into()])
        .unwrap_or_else(|e| panic!("batch get failed on a runtime answer: {e}"));
    assert_eq!(infos.len(), 3);
    assert!(infos[0].is_some() && infos[1].is_some() && infos[2].is_none());
    let page = alice
        .search(None, 100)
        .unwrap_or_else(|e| panic!("search failed on a runtime answer: {e}"));
    let ids: Vec<&str> = page.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["sb-2", "sb-1"]);
    assert_eq!(page.next_page_id, None);
    if let Ok(found) = &batch {
        for item in &page.items {
            assert_eq!(item.status, status::from_runtime(found.get(&item.id)));
        }
    }
}

/// The rules of status and exposed URLs, for one runtime.
fn check_runtime(rt: &Runtime) {
    let status = status::from_runtime(Some(rt));
    let urls = urls::exposed_urls(status, Some(rt));
    assert_eq!(urls.is_some(), status == Status::Running, "{rt:?}");
    if let Some(urls) = &urls {
        match rt.url.as_deref().filter(|u| !u.is_empty()) {
            None => assert!(urls.is_empty()),
            Some(url) => {
                let shape: Vec<(&str, u16)> = urls.iter().map(|u| (u.name, u.port)).collect();
                assert_eq!(
                    shape,
                    [
                        ("AGENT_SERVER", 60000),
                        ("VSCODE", 60001),
                        ("WORKER_1", 12000),
                        ("WORKER_2", 12001)
                    ]
                );
                assert_eq!(urls[0].url, url);
                for u in &urls[1..] {
                    assert!(u.url.contains("://"), "{}", u.url);
                }
                let key = rt.session_api_key.as_deref().unwrap_or("");
                let encoded = urls::percent_encode(key);
                assert!(
                    encoded
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~%".contains(&b)),
                    "{encoded}"
                );
                assert_eq!(percent_decode(&encoded), key.as_bytes());
                assert!(
                    urls[1]
                        .url
                        .ends_with(&format!("?tkn={encoded}&folder=%2Fworkspace%2Fproject")),
                    "{}",
                    urls[1].url
                );
            }
        }
    }
    if status::unknown_status_detail(Some(rt)).is_some() {
        assert_eq!(status, Status::Missing);
    }
}
