//! The service's behaviour against in-memory fakes of its imports.

use serde_json::json;

use crate::error::Error;
use crate::model::Status;
use crate::ports::HttpError;
use crate::schema::{self, Phase, SandboxRecord};
use crate::session_key;
use crate::testing::{Fault, World};

fn record(w: &World, id: &str) -> Option<SandboxRecord> {
    w.store
        .raw_get(schema::SANDBOXES, id.as_bytes())
        .and_then(|b| SandboxRecord::decode(&b).ok())
}

fn start(w: &World, user: Option<&str>) -> String {
    match w.as_user(user).start(None, None) {
        Ok(info) => info.id,
        Err(e) => panic!("start failed: {e}"),
    }
}

fn ok<T>(r: Result<T, Error>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("unexpected error: {e:?}"),
    }
}

// ---- start ----

#[test]
fn start_returns_a_running_sandbox_and_remembers_only_the_key_hash() {
    let w = World::new();
    let info = ok(w.alice().start(None, None));
    assert!(
        !info.id.is_empty()
            && info.id.len() <= 22
            && info.id.chars().all(|c| c.is_ascii_alphanumeric())
    );
    assert_eq!(info.status, Status::Running);
    assert_eq!(info.created_by_user_id.as_deref(), Some("alice"));
    assert_eq!(info.sandbox_spec_id, "image:default");
    assert!(info.created_at.ends_with('Z'));
    let key = info.session_api_key.clone().unwrap_or_default();
    assert!(key.starts_with("key-"));
    assert_eq!(info.exposed_urls.as_ref().map(Vec::len), Some(4));

    let stored = record(&w, &info.id).unwrap_or_else(|| panic!("no record"));
    assert_eq!(stored.phase, Phase::Started);
    assert_eq!(stored.session_api_key_hash, Some(session_key::hash(&key)));
    let dump = w.store.dump();
    assert!(
        !dump.windows(key.len()).any(|win| win == key.as_bytes()),
        "the key itself is stored"
    );
    assert!(!w.env.all_log_text().contains(&key), "the key is logged");
}

#[test]
fn start_sends_the_contract_body() {
    let w = World::new();
    let id = start(&w, None);
    let body = w
        .runtime
        .start_bodies
        .borrow()
        .get(&id)
        .cloned()
        .unwrap_or_default();
    assert_eq!(body["image"], "image:default");
    assert_eq!(body["working_dir"], "/workspace");
    assert_eq!(body["session_id"], json!(id));
    assert_eq!(body["resource_factor"], 1);
    assert_eq!(body["run_as_user"], 10001);
    assert_eq!(
        body["environment"],
        json!({"LOG_JSON": "true", "WORKER_1": "12000", "WORKER_2": "12001"})
    );
    assert!(body.get("runtime_class").is_none());
}

#[test]
fn start_uses_the_named_spec_and_refuses_an_unknown_one() {
    let w = World::new();
    let info = ok(w.alice().start(Some("image:other"), None));
    assert_eq!(info.sandbox_spec_id, "image:other");
    w.runtime.clear_requests();
    let err = w.alice().start(Some("image:nope"), None).err();
    assert!(
        matches!(&err, Some(Error::InvalidInput(m)) if m.contains("image:nope")),
        "{err:?}"
    );
    assert_eq!(w.runtime.count(""), 0, "no runtime call for a bad spec");
}

#[test]
fn caller_supplied_ids_are_used_and_duplicates_conflict() {
    let w = World::new();
    let info = ok(w.alice().start(None, Some("my-sandbox_1")));
    assert_eq!(info.id, "my-sandbox_1");
    w.runtime.clear_requests();
    let err = w.bob().start(None, Some("my-sandbox_1")).err();
    assert!(matches!(err, Some(Error::Conflict(_))), "{err:?}");
    assert_eq!(w.runtime.count("POST /start"), 0);
    assert_eq!(
        record(&w, "my-sandbox_1").and_then(|r| r.created_by_user_id),
        Some("alice".into())
    );
}

#[test]
fn malformed_supplied_ids_are_invalid_input() {
    let w = World::new();
    for bad in ["", "a/b", "a b", "..", &"x".repeat(129), "é"] {
        let err = w.alice().start(None, Some(bad)).err();
        assert!(
            matches!(err, Some(Error::InvalidInput(_))),
            "{bad:?}: {err:?}"
        );
    }
    assert_eq!(w.store.len(schema::SANDBOXES), 0);
}

#[test]
fn a_refused_start_leaves_no_record() {
    let w = World::new();
    w.runtime.fault(
        "POST /start",
        Fault::Status(500, "{\"detail\":\"cluster full\"}"),
    );
    let err = w.alice().start(None, Some("sb")).err();
    match err {
        Some(Error::Upstream(m)) => {
            assert!(m.contains("HTTP 500") && m.contains("cluster full"), "{m}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w.store.len(schema::SANDBOXES), 0);
    assert_eq!(w.store.len(schema::BY_OWNER), 0);
    assert_eq!(w.store.len(schema::BY_CREATED), 0);
}

#[test]
fn a_runtime_api_that_is_down_fails_the_start_cleanly() {
    let w = World::new();
    w.runtime.down.set(true);
    let err = w.alice().start(None, None).err();
    assert!(
        matches!(&err, Some(Error::Upstream(m)) if m.contains("could not connect")),
        "{err:?}"
    );
    assert_eq!(w.store.len(schema::SANDBOXES), 0);
}

#[test]
fn a_start_whose_answer_was_lost_keeps_the_runtime_that_exists() {
    let w = World::new();
    w.runtime
        .fault("POST /start", Fault::ActThenFail(HttpError::Timeout));
    let info = ok(w.alice().start(None, Some("sb")));
    assert_eq!(info.status, Status::Running);
    let key = w.runtime.key_of("sb").unwrap_or_default();
    assert_eq!(
        record(&w, "sb").and_then(|r| r.session_api_key_hash),
        Some(session_key::hash(&key))
    );
}

#[test]
fn a_timed_out_start_with_no_runtime_leaves_no_record() {
    let w = World::new();
    w.runtime
        .fault("POST /start", Fault::Transport(HttpError::Timeout));
    let err = w.alice().start(None, Some("sb")).err();
    assert!(
        matches!(&err, Some(Error::Upstream(m)) if m.contains("timed out")),
        "{err:?}"
    );
    assert!(record(&w, "sb").is_none());
}

#[test]
fn a_start_in_unknown_state_keeps_the_record_so_no_runtime_is_orphaned() {
    let w = World::new();
    w.runtime.fault(
        "POST /start",
        Fault::Transport(HttpError::Transport("reset".into())),
    );
    w.runtime
        .fault_times("GET /sessions/", Fault::Status(503, ""), 3);
    let err = w.alice().start(None, Some("sb")).err();
    assert!(
        matches!(&err, Some(Error::Upstream(m)) if m.contains("unknown")),
        "{err:?}"
    );
    assert_eq!(record(&w, "sb").map(|r| r.phase), Some(Phase::Starting));
}

#[test]
fn an_unreadable_start_answer_is_settled_by_a_lookup() {
    // A 200 with junk and nothing done: the lookup finds nothing, so the start
    // failed and its record goes.
    let w = World::new();
    w.runtime.fault("POST /start", Fault::Body("not json"));
    let err = w.alice().start(None, Some("sb")).err();
    assert!(
        matches!(&err, Some(Error::Upstream(m)) if m.contains("unreadable body")),
        "{err:?}"
    );
    assert_eq!(record(&w, "sb"), None);

    // A 200 that describes no runtime, while the runtime did start: found.
    let w = World::new();
    w.runtime.fault("POST /start", Fault::Body("{}"));
    w.runtime.insert("sb", "running");
    let info = ok(w.alice().start(None, Some("sb")));
    assert_eq!(info.status, Status::Running);
    assert_eq!(record(&w, "sb").map(|r| r.phase), Some(Phase::Started));
}

#[test]
fn a_storage_failure_before_the_start_asks_nothing_of_the_runtime() {
    let w = World::new();
    w.store.fail_commits.set(1);
    let err = w.alice().start(None, None).err();
    assert!(matches!(err, Some(Error::Storage(_))), "{err:?}");
    assert_eq!(w.runtime.count("POST /start"), 0);
}

// ---- status ----

#[test]
fn a_sandbox_starting_past_the_timeout_is_an_error_with_a_reason() {
    let w = World::new();
    *w.runtime.start_status.borrow_mut() = "starting".into();
    let id = start(&w, Some("alice"));
    assert_eq!(ok(w.alice().get(&id)).status, Status::Starting);
    w.env.advance_secs(121);
    let info = ok(w.alice().get(&id));
    assert_eq!(info.status, Status::Error);
    assert!(
        info.status_detail
            .unwrap_or_default()
            .contains("start_sandbox_timeout")
    );
    assert_eq!(info.exposed_urls, None);
}

#[test]
fn the_start_timeout_counts_from_the_last_resume() {
    let w = World::new();
    let id = start(&w, Some("alice"));
    w.env.advance_secs(1000);
    ok(w.alice().pause(&id));
    ok(w.alice().resume(&id));
    w.runtime.set_status(&id, "starting");
    assert_eq!(ok(w.alice().get(&id)).status, Status::Starting);
}

#[test]
fn malformed_runtime_fields_are_tolerated() {
    let w = World::new();
    let id = start(&w, None);
    w.runtime.remove_field(&id, "url");
    let info = ok(w.admin().get(&id));
    assert_eq!(
        (info.status, info.exposed_urls),
        (Status::Running, Some(vec![]))
    );
    w.runtime.set_field(&id, "status", json!(5));
    w.runtime.set_field(&id, "session_api_key", json!(["x"]));
    let info = ok(w.admin().get(&id));
    assert_eq!(
        (info.status, info.session_api_key),
        (Status::Running, None),
        "pod_status fallback"
    );
    w.runtime.remove_field(&id, "status");
    w.runtime.set_field(&id, "pod_status", json!("Pending"));
    assert_eq!(ok(w.admin().get(&id)).status, Status::Starting);
    w.runtime.remove_field(&id, "pod_status");
    assert_eq!(ok(w.admin().get(&id)).status, Status::Missing);
    w.runtime.fault("GET /sessions/", Fault::Body("[1,2,3]"));
    assert_eq!(ok(w.admin().get(&id)).status, Status::Missing);
}

#[test]
fn get_reports_missing_when_the_runtime_is_gone_or_the_api_fails() {
    let w = World::new();
    let id = start(&w, None);
    w.runtime
        .fault("GET /sessions/", Fault::Status(500, "boom"));
    let info = ok(w.admin().get(&id));
    assert_eq!(
        (
            info.status,
            info.session_api_key.as_deref(),
            info.exposed_urls
        ),
        (Status::Missing, None, None)
    );
    w.runtime.runtimes.borrow_mut().clear();
    assert_eq!(ok(w.admin().get(&id)).status, Status::Missing);
    assert!(matches!(w.admin().get("nope"), Err(Error::NotFound(_))));
}

#[test]
fn statuses_follow_the_runtime() {
    let w = World::new();
    let id = start(&w, None);
    for (raw, want) in [
        ("paused", Status::Paused),
        ("ERROR", Status::Error),
        ("stopped", Status::Missing),
        ("Starting", Status::Starting),
        ("running", Status::Running),
    ] {
        w.runtime.set_status(&id, raw);
        assert_eq!(ok(w.admin().get(&id)).status, want, "{raw}");
    }
    w.runtime
        .set_field(&id, "status_detail", json!("OOMKilled"));
    w.runtime.set_status(&id, "error");
    assert_eq!(
        ok(w.admin().get(&id)).status_detail.as_deref(),
        Some("OOMKilled")
    );
}

// ---- scoping ----

#[test]
fn another_users_sandbox_is_indistinguishable_from_a_missing_one() {
    let w = World::new();
    let id = start(&w, Some("alice"));
    w.runtime.clear_requests();
    let theirs = |e: Result<(), Error>| e.err();
    let missing = w.bob().get("does-not-exist").err();
    let other = w.bob().get(&id).err();
    assert_eq!(
        other.as_ref().map(|e| e.to_string().replace(&id, "ID")),
        missing
            .as_ref()
            .map(|e| e.to_string().replace("does-not-exist", "ID"))
    );
    assert!(matches!(
        theirs(w.bob().pause(&id)),
        Some(Error::NotFound(_))
    ));
    assert!(matches!(
        theirs(w.bob().resume(&id)),
        Some(Error::NotFound(_))
    ));
    assert!(matches!(
        theirs(w.bob().delete(&id)),
        Some(Error::NotFound(_))
    ));
    assert_eq!(
        w.runtime.count("POST"),
        0,
        "bob's calls reached the runtime"
    );
    assert_eq!(w.runtime.count("GET /sessions/"), 0);
    assert!(ok(w.bob().batch_get(std::slice::from_ref(&id)))[0].is_none());
    assert!(ok(w.bob().search(None, 100)).items.is_empty());
    assert_eq!(ok(w.alice().get(&id)).status, Status::Running);
    assert_eq!(ok(w.admin().search(None, 100)).items.len(), 1);
}

#[test]
fn session_key_lookup_is_scoped_and_tracks_the_current_key() {
    let w = World::new();
    let id = start(&w, Some("alice"));
    let key = w.runtime.key_of(&id).unwrap_or_default();
    assert_eq!(
        ok(w.admin().get_by_session_key(&key)).map(|i| i.id),
        Some(id.clone())
    );
    assert_eq!(
        ok(w.alice().get_by_session_key(&key)).map(|i| i.id),
        Some(id.clone())
    );
    assert_eq!(ok(w.bob().get_by_session_key(&key)), None);
    assert_eq!(ok(w.admin().get_by_session_key("wrong")), None);
    assert_eq!(ok(w.admin().get_by_session_key("")), None);
}

// ---- search and paging ----

fn start_many(w: &World, user: Option<&str>, n: usize) -> Vec<String> {
    (0..n).map(|_| start(w, user)).collect()
}

#[test]
fn search_pages_newest_first_with_cursors_and_one_batch_call_each() {
    let mut w = World::new();
    w.settings.max_num_sandboxes = 1000;
    let mut ids = start_many(&w, Some("alice"), 250);
    start_many(&w, Some("bob"), 5);
    ids.reverse();
    w.runtime.clear_requests();
    let mut seen = Vec::new();
    let mut page_id: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = ok(w.alice().search(page_id.as_deref(), 100));
        pages += 1;
        seen.extend(page.items.iter().map(|i| i.id.clone()));
        assert!(page.items.iter().all(|i| i.status == Status::Running));
        match page.next_page_id {
            Some(next) => page_id = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
    assert_eq!(w.runtime.count("GET /sessions/batch"), 3);
    assert_eq!(w.runtime.count(""), 3);
}

#[test]
fn a_deep_page_scans_no_more_than_the_first() {
    let w = World::new();
    start_many(&w, None, 300);
    w.store.rows_scanned.set(0);
    let first = ok(w.admin().search(None, 10));
    let scanned_first = w.store.rows_scanned.replace(0);
    let mut page = first;
    for _ in 0..25 {
        page = ok(w.admin().search(page.next_page_id.as_deref(), 10));
    }
    let per_deep_page = w.store.rows_scanned.get() / 25;
    assert_eq!(scanned_first, 11);
    assert_eq!(per_deep_page, 11);
}

#[test]
fn numeric_page_ids_are_offsets_and_garbage_is_refused() {
    let w = World::new();
    let mut ids = start_many(&w, Some("alice"), 30);
    ids.reverse();
    let page = ok(w.alice().search(Some("10"), 5));
    let got: Vec<_> = page.items.iter().map(|i| i.id.clone()).collect();
    assert_eq!(got, ids[10..15].to_vec());
    assert!(page.next_page_id.is_some());
    for junk in ["-3", "abc", "c0", "czzzz", "😀"] {
        let err = w.alice().search(Some(junk), 5).err();
        assert!(
            matches!(&err, Some(Error::InvalidInput(m)) if m.contains("page_id")),
            "{junk}: {err:?}"
        );
    }
    assert!(ok(w.alice().search(Some("1000"), 5)).items.is_empty());
}

#[test]
fn an_empty_page_makes_no_runtime_call() {
    let w = World::new();
    let page = ok(w.alice().search(None, 100));
    assert!(page.items.is_empty() && page.next_page_id.is_none());
    assert_eq!(w.runtime.count(""), 0);
}

#[test]
fn a_failing_batch_call_reports_missing_instead_of_failing() {
    let w = World::new();
    start_many(&w, None, 3);
    w.runtime
        .fault_times("GET /sessions/batch", Fault::Status(502, "bad gateway"), 3);
    let page = ok(w.admin().search(None, 100));
    assert_eq!(page.items.len(), 3);
    assert!(page.items.iter().all(|i| {
        i.status == Status::Missing
            && i.session_api_key.is_none()
            && i.status_detail
                .as_deref()
                .is_some_and(|d| d.contains("HTTP 502") && d.contains("after 3 attempts"))
    }));
    for body in ["null", "[null, 3]", "{}", "garbage"] {
        w.runtime.fault("GET /sessions/batch", Fault::Body(body));
        let page = ok(w.admin().search(None, 100));
        assert!(
            page.items.iter().all(|i| i.status == Status::Missing),
            "{body}"
        );
    }
}

// ---- batch get ----

#[test]
fn batch_get_answers_in_order_with_nulls_in_one_call() {
    let w = World::new();
    let ids = start_many(&w, Some("alice"), 3);
    let bobs = start(&w, Some("bob"));
    w.runtime.clear_requests();
    let ask = vec![
        ids[2].clone(),
        "unknown".into(),
        ids[0].clone(),
        bobs.clone(),
        ids[2].clone(),
        "bad/id".into(),
    ];
    let got = ok(w.alice().batch_get(&ask));
    let got_ids: Vec<_> = got
        .iter()
        .map(|i| i.as_ref().map(|i| i.id.clone()))
        .collect();
    assert_eq!(
        got_ids,
        vec![
            Some(ids[2].clone()),
            None,
            Some(ids[0].clone()),
            None,
            Some(ids[2].clone()),
            None
        ]
    );
    assert_eq!(w.runtime.count(""), 1);
    assert!(ok(w.alice().batch_get(&[])).is_empty());
    let too_many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    assert!(matches!(
        w.alice().batch_get(&too_many),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn batch_get_survives_a_failing_runtime() {
    let w = World::new();
    let id = start(&w, None);
    w.runtime.down.set(true);
    let got = ok(w.admin().batch_get(std::slice::from_ref(&id)));
    assert_eq!(got[0].as_ref().map(|i| i.status), Some(Status::Missing));
}

// ---- pause, resume, delete ----

#[test]
fn pause_clears_the_key_hash_even_if_the_pause_fails() {
    let w = World::new();
    let id = start(&w, Some("alice"));
    let key = w.runtime.key_of(&id).unwrap_or_default();
    w.runtime.fault("POST /pause", Fault::Status(500, "nope"));
    assert!(matches!(w.alice().pause(&id), Err(Error::Upstream(_))));
    assert_eq!(ok(w.admin().get_by_session_key(&key)), None);
    assert_eq!(w.store.len(schema::BY_KEY_HASH), 0);
    ok(w.alice().pause(&id));
    assert_eq!(ok(w.alice().get(&id)).status, Status::Paused);
}

#[test]
fn pause_of_a_runtime_the_api_does_not_know_is_not_found() {
    let w = World::new();
    let id = start(&w, None);
    w.runtime.fault("POST /pause", Fault::Status(404, ""));
    assert!(matches!(w.admin().pause(&id), Err(Error::NotFound(_))));
    w.runtime.runtimes.borrow_mut().clear();
    assert!(matches!(w.admin().pause(&id), Err(Error::NotFound(_))));
    assert!(matches!(w.admin().pause("nope"), Err(Error::NotFound(_))));
    w.runtime.insert(&id, "running");
    w.runtime.remove_field(&id, "runtime_id");
    assert!(matches!(w.admin().pause(&id), Err(Error::Upstream(m)) if m.contains("runtime_id")));
}

#[test]
fn resume_rotates_the_key() {
    let w = World::new();
    let id = start(&w, Some("alice"));
    let old = w.runtime.key_of(&id).unwrap_or_default();
    ok(w.alice().pause(&id));
    ok(w.alice().resume(&id));
    let new = w.runtime.key_of(&id).unwrap_or_default();
    assert_ne!(old, new);
    assert_eq!(ok(w.admin().get_by_session_key(&old)), None);
    assert_eq!(
        ok(w.admin().get_by_session_key(&new)).map(|i| i.id),
        Some(id.clone())
    );
    assert_eq!(ok(w.alice().get(&id)).status, Status::Running);
}

#[test]
fn resume_reads_the_new_key_back_when_the_answer_lacks_it() {
    let w = World::new();
    w.runtime.resume_returns_key.set(false);
    let id = start(&w, None);
    ok(w.admin().pause(&id));
    ok(w.admin().resume(&id));
    let new = w.runtime.key_of(&id).unwrap_or_default();
    assert_eq!(
        ok(w.admin().get_by_session_key(&new)).map(|i| i.id),
        Some(id)
    );
}

#[test]
fn resume_of_an_unknown_runtime_is_not_found() {
    let w = World::new();
    let id = start(&w, None);
    w.runtime.fault("POST /resume", Fault::Status(404, ""));
    assert!(matches!(w.admin().resume(&id), Err(Error::NotFound(_))));
    w.runtime.fault("POST /resume", Fault::Status(500, ""));
    assert!(matches!(w.admin().resume(&id), Err(Error::Upstream(_))));
}

#[test]
fn delete_stops_the_runtime_then_forgets_everything() {
    let w = World::new();
    let id = start(&w, Some("alice"));
    let key = w.runtime.key_of(&id).unwrap_or_default();
    ok(w.alice().delete(&id));
    assert!(w.runtime.runtime(&id).is_none());
    assert!(record(&w, &id).is_none());
    for table in [
        schema::SANDBOXES,
        schema::BY_OWNER,
        schema::BY_CREATED,
        schema::BY_KEY_HASH,
    ] {
        assert_eq!(w.store.len(table), 0, "{table}");
    }
    assert_eq!(ok(w.admin().get_by_session_key(&key)), None);
    assert!(matches!(w.alice().delete(&id), Err(Error::NotFound(_))));
}

#[test]
fn a_failed_stop_keeps_the_record() {
    let w = World::new();
    let id = start(&w, None);
    w.runtime.fault("POST /stop", Fault::Status(500, "stuck"));
    let err = w.admin().delete(&id).err();
    assert!(
        matches!(&err, Some(Error::Upstream(m)) if m.contains("not deleted") && m.contains("stuck")),
        "{err:?}"
    );
    assert!(record(&w, &id).is_some());
    w.runtime
        .fault("POST /stop", Fault::Transport(HttpError::Timeout));
    assert!(w.admin().delete(&id).is_err());
    w.runtime.fault("GET /sessions/", Fault::Status(500, ""));
    assert!(w.admin().delete(&id).is_err());
    assert!(record(&w, &id).is_some());
    ok(w.admin().delete(&id));
    assert!(record(&w, &id).is_none());
}

#[test]
fn a_stop_answering_404_or_a_vanished_runtime_still_deletes() {
    let w = World::new();
    let a = start(&w, None);
    let b = start(&w, None);
    w.runtime.fault("POST /stop", Fault::Status(404, ""));
    ok(w.admin().delete(&a));
    assert!(record(&w, &a).is_none());
    w.runtime.runtimes.borrow_mut().remove(&b);
    w.runtime.clear_requests();
    ok(w.admin().delete(&b));
    assert!(record(&w, &b).is_none());
    assert_eq!(w.runtime.count("POST /stop"), 0);
}

#[test]
fn a_stop_answered_with_something_other_than_json_keeps_the_sandbox() {
    // A proxy's error page with a 200 is no proof the runtime stopped: keeping
    // the record (a visible MISSING at worst) beats forgetting a running runtime.
    let w = World::new();
    let id = start(&w, None);
    w.runtime
        .fault("POST /stop", Fault::Body("<html>maintenance</html>"));
    let err = w.admin().delete(&id).err();
    assert!(
        matches!(&err, Some(Error::Upstream(m)) if m.contains("not deleted") && m.contains("unreadable")),
        "{err:?}"
    );
    assert!(record(&w, &id).is_some());
    // An empty 200 is a plain "done".
    w.runtime.fault("POST /stop", Fault::Body(""));
    ok(w.admin().delete(&id));
    assert!(record(&w, &id).is_none());
}

// ---- max_num_sandboxes ----

#[test]
fn a_start_with_a_taken_id_pauses_nothing() {
    // Found by tests/tests/isolation.rs: the limit was enforced before the id
    // was found taken.
    let mut w = World::new();
    w.settings.max_num_sandboxes = 1;
    let bobs = start(&w, Some("bob"));
    let alices = start(&w, Some("alice"));
    let err = w.bob().start(None, Some(&alices)).err();
    assert!(matches!(err, Some(Error::Conflict(_))), "{err:?}");
    assert_eq!(ok(w.bob().get(&bobs)).status, Status::Running);
}

#[test]
fn the_limit_pauses_the_oldest_running_sandboxes_first() {
    let mut w = World::new();
    w.settings.max_num_sandboxes = 3;
    let ids = start_many(&w, Some("alice"), 3);
    let newest = start(&w, Some("alice"));
    assert_eq!(ok(w.alice().get(&ids[0])).status, Status::Paused);
    for id in [&ids[1], &ids[2], &newest] {
        assert_eq!(ok(w.alice().get(id)).status, Status::Running);
    }
    let newer = start(&w, Some("alice"));
    assert_eq!(ok(w.alice().get(&ids[1])).status, Status::Paused);
    assert_eq!(ok(w.alice().get(&newer)).status, Status::Running);
}

#[test]
fn the_limit_counts_only_the_callers_sandboxes() {
    let mut w = World::new();
    w.settings.max_num_sandboxes = 2;
    let alices = start_many(&w, Some("alice"), 2);
    start(&w, Some("bob"));
    start(&w, Some("bob"));
    for id in &alices {
        assert_eq!(ok(w.alice().get(id)).status, Status::Running);
    }
}

#[test]
fn resume_makes_room_without_pausing_itself() {
    let mut w = World::new();
    w.settings.max_num_sandboxes = 2;
    let ids = start_many(&w, Some("alice"), 2);
    ok(w.alice().pause(&ids[0]));
    let third = start(&w, Some("alice"));
    ok(w.alice().resume(&ids[0]));
    assert_eq!(ok(w.alice().get(&ids[0])).status, Status::Running);
    assert_eq!(ok(w.alice().get(&ids[1])).status, Status::Paused);
    assert_eq!(ok(w.alice().get(&third)).status, Status::Running);
}

#[test]
fn the_limit_asks_the_runtime_only_when_the_caller_has_enough_sandboxes() {
    let mut w = World::new();
    w.settings.max_num_sandboxes = 3;
    start_many(&w, Some("alice"), 2);
    assert_eq!(
        w.runtime.count("GET /list"),
        0,
        "two stored sandboxes cannot exceed a limit of 3"
    );
    start(&w, Some("bob"));
    assert_eq!(w.runtime.count("GET /list"), 0);
    start(&w, Some("alice"));
    assert_eq!(
        w.runtime.count("GET /list"),
        0,
        "a third is within the limit"
    );
    start(&w, Some("alice"));
    assert_eq!(w.runtime.count("GET /list"), 1);
}

#[test]
fn a_failing_limit_check_never_fails_the_start() {
    let mut w = World::new();
    w.settings.max_num_sandboxes = 1;
    let first = start(&w, None);
    w.runtime.fault("GET /list", Fault::Status(500, ""));
    start(&w, None);
    w.runtime
        .fault("GET /list", Fault::Body("{\"runtimes\": 5}"));
    start(&w, None);
    w.runtime.fault("POST /pause", Fault::Status(500, ""));
    start(&w, None);
    assert_eq!(
        ok(w.admin().get(&first)).status,
        Status::Running,
        "the failed pause left it running"
    );
    let warnings = w.env.all_log_text();
    assert!(
        warnings.contains("max_num_sandboxes") || warnings.contains("over the limit"),
        "{warnings}"
    );
}

#[test]
fn an_unreadable_record_is_an_error_for_get_and_skipped_by_search() {
    let w = World::new();
    let good = start(&w, None);
    let bad = start(&w, None);
    w.store
        .raw_put(schema::SANDBOXES, bad.as_bytes(), b"{not json");
    assert!(matches!(w.admin().get(&bad), Err(Error::Storage(_))));
    let page = ok(w.admin().search(None, 100));
    assert_eq!(
        page.items.iter().map(|i| i.id.clone()).collect::<Vec<_>>(),
        vec![good]
    );
    assert!(w.env.all_log_text().contains("unreadable sandbox record"));
}

// ---- reconciliation ----

mod reconcile {
    use super::*;
    use crate::service::OrphanPolicy;

    const FOREVER: i64 = i64::MAX;

    #[test]
    fn an_orphan_runtime_is_stopped_and_recorded_sandboxes_are_left_alone() {
        let w = World::new();
        let kept = start(&w, Some("alice"));
        w.runtime.insert("stray", "running");
        let summary = ok(w.admin().reconcile(OrphanPolicy::Stop, 0));
        assert_eq!(
            (
                summary.runtimes,
                summary.records,
                summary.orphans,
                summary.stopped
            ),
            (2, 1, 1, 1)
        );
        assert_eq!(w.runtime.count("POST /stop"), 1);
        assert!(w.runtime.runtime("stray").is_none());
        assert!(w.runtime.runtime(&kept).is_some());
        assert!(record(&w, &kept).is_some());
    }

    #[test]
    fn an_orphan_can_be_adopted_for_admins_or_kept() {
        let w = World::new();
        w.runtime.insert("stray", "running");
        let summary = ok(w.admin().reconcile(OrphanPolicy::Keep, 0));
        assert_eq!(
            (summary.orphans, summary.stopped, summary.adopted),
            (1, 0, 0)
        );
        assert!(record(&w, "stray").is_none());

        let summary = ok(w.admin().reconcile(OrphanPolicy::Adopt, 0));
        assert_eq!(summary.adopted, 1);
        let adopted = record(&w, "stray").unwrap_or_else(|| panic!("not adopted"));
        assert_eq!(adopted.created_by_user_id, None);
        assert_eq!(adopted.phase, Phase::Started);
        let key = w.runtime.key_of("stray").unwrap_or_default();
        assert_eq!(adopted.session_api_key_hash, Some(session_key::hash(&key)));
        assert!(matches!(w.alice().get("stray"), Err(Error::NotFound(_))));
        assert_eq!(ok(w.admin().get("stray")).status, Status::Running);
        // Nothing left to do the second time.
        assert_eq!(ok(w.admin().reconcile(OrphanPolicy::Adopt, 0)).orphans, 0);
    }

    /// A record left in phase `starting`, as a crash between the record and the
    /// runtime's answer leaves it.
    fn half_way(w: &World, id: &str) {
        let record = SandboxRecord {
            id: id.into(),
            created_by_user_id: Some("alice".into()),
            sandbox_spec_id: "image:default".into(),
            session_api_key_hash: None,
            created_at_us: 1,
            started_at_us: 1,
            phase: Phase::Starting,
        };
        let store: &dyn crate::ports::Store = &w.store;
        if let Err(e) = store.commit(record.insert_ops()) {
            panic!("{e:?}");
        }
    }

    #[test]
    fn a_start_left_half_way_is_completed_if_the_runtime_exists_and_removed_if_not() {
        let w = World::new();
        half_way(&w, "reached");
        w.runtime.insert("reached", "running");
        half_way(&w, "lost");
        let summary = ok(w.admin().reconcile(OrphanPolicy::Stop, FOREVER));
        assert_eq!(
            (summary.completed, summary.removed, summary.orphans),
            (1, 1, 0)
        );
        let reached = record(&w, "reached").unwrap_or_else(|| panic!("removed"));
        assert_eq!(reached.phase, Phase::Started);
        let key = w.runtime.key_of("reached").unwrap_or_default();
        assert_eq!(reached.session_api_key_hash, Some(session_key::hash(&key)));
        assert!(record(&w, "lost").is_none());
        assert_eq!(ok(w.alice().get("reached")).status, Status::Running);
    }

    #[test]
    fn a_start_that_may_still_be_running_is_not_touched() {
        let w = World::new();
        half_way(&w, "in-flight");
        // Its start began after the threshold: its call may still be running.
        let summary = ok(w.admin().reconcile(OrphanPolicy::Stop, 0));
        assert_eq!((summary.completed, summary.removed), (0, 0));
        assert!(record(&w, "in-flight").is_some());
    }

    #[test]
    fn an_unknown_outcome_is_left_for_the_next_pass_and_a_failed_list_fails_the_pass() {
        let w = World::new();
        half_way(&w, "unknown");
        w.runtime
            .fault_times("GET /sessions/unknown", Fault::Status(503, "busy"), 3);
        let summary = ok(w.admin().reconcile(OrphanPolicy::Stop, FOREVER));
        assert_eq!(summary.failures.len(), 1, "{summary:?}");
        assert!(record(&w, "unknown").is_some());

        w.runtime.fault("GET /list", Fault::Status(500, "down"));
        let err = w.admin().reconcile(OrphanPolicy::Stop, FOREVER).err();
        assert!(
            matches!(&err, Some(Error::Upstream(m)) if m.contains("GET /list") && m.contains("500")),
            "{err:?}"
        );
    }

    #[test]
    fn users_cannot_reconcile() {
        let w = World::new();
        assert!(matches!(
            w.alice().reconcile(OrphanPolicy::Stop, 0),
            Err(Error::Unauthorized(_))
        ));
    }
}

// ---- retries ----

mod retries {
    use super::*;
    use crate::runtime::client::{BACKOFF_MS, READ_ATTEMPTS};

    #[test]
    fn a_transient_read_failure_is_retried_with_growing_jittered_waits() {
        let w = World::new();
        let id = start(&w, Some("alice"));
        w.runtime.clear_requests();
        w.runtime
            .fault("GET /sessions/", Fault::Status(503, "busy"));
        w.runtime.fault(
            "GET /sessions/",
            Fault::Transport(HttpError::Connect("refused".into())),
        );
        assert_eq!(ok(w.alice().get(&id)).status, Status::Running);
        assert_eq!(w.runtime.count("GET /sessions/"), 3);
        let sleeps = w.env.sleeps.borrow().clone();
        assert_eq!(sleeps.len(), 2);
        assert!(
            (BACKOFF_MS / 2..=BACKOFF_MS).contains(&sleeps[0]),
            "{sleeps:?}"
        );
        assert!(
            (BACKOFF_MS..=2 * BACKOFF_MS).contains(&sleeps[1]),
            "{sleeps:?}"
        );
    }

    #[test]
    fn a_429_waits_for_a_short_retry_after_and_gives_up_on_a_long_one() {
        let w = World::new();
        let id = start(&w, Some("alice"));
        w.runtime.fault("GET /sessions/", Fault::TooMany(1));
        assert_eq!(ok(w.alice().get(&id)).status, Status::Running);
        assert_eq!(w.env.sleeps.borrow().as_slice(), &[1_000]);

        w.runtime.fault("GET /sessions/", Fault::TooMany(60));
        let info = ok(w.alice().get(&id));
        assert_eq!(info.status, Status::Missing);
        assert!(
            info.status_detail
                .as_deref()
                .is_some_and(|d| d.contains("HTTP 429")),
            "{info:?}"
        );
        assert_eq!(w.env.sleeps.borrow().len(), 1, "no second wait");
    }

    #[test]
    fn timeouts_500s_and_unreadable_answers_are_not_retried() {
        let w = World::new();
        let id = start(&w, Some("alice"));
        for fault in [
            Fault::Transport(HttpError::Timeout),
            Fault::Status(500, "bug"),
            Fault::Body("not json"),
        ] {
            w.runtime.clear_requests();
            w.runtime.fault("GET /sessions/", fault.clone());
            assert_eq!(ok(w.alice().get(&id)).status, Status::Missing, "{fault:?}");
            assert_eq!(w.runtime.count("GET /sessions/"), 1, "{fault:?}");
        }
        assert!(w.env.sleeps.borrow().is_empty());
    }

    #[test]
    fn writes_are_never_repeated() {
        let w = World::new();
        let id = start(&w, Some("alice"));
        for (key, action) in [
            ("POST /pause", "pause"),
            ("POST /resume", "resume"),
            ("POST /stop", "delete"),
        ] {
            w.runtime.clear_requests();
            w.runtime.fault(key, Fault::Status(503, "busy"));
            let result = match action {
                "pause" => w.alice().pause(&id),
                "resume" => w.alice().resume(&id),
                _ => w.alice().delete(&id),
            };
            assert!(
                matches!(result, Err(Error::Upstream(_))),
                "{action}: {result:?}"
            );
            assert_eq!(w.runtime.count(key), 1, "{action}");
        }
        w.runtime.clear_requests();
        w.runtime.fault("POST /start", Fault::Status(503, "busy"));
        w.runtime.fault_times(
            "GET /sessions/",
            Fault::Status(503, "busy"),
            READ_ATTEMPTS as usize,
        );
        assert!(w.alice().start(None, Some("once")).is_err());
        assert_eq!(w.runtime.count("POST /start"), 1);
    }
}
