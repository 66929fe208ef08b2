//! Starting: the record before the runtime, the body sent, what a failed or lost start leaves.

use super::*;

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

#[test]
fn a_start_waits_for_one_durable_commit() {
    let w = World::new();
    let id = start(&w, Some("alice"));
    // The intent (visible before the runtime is asked, lost only with a crash
    // that also loses the answer) and the durable result.
    assert_eq!(w.store.relaxed_commits.get(), 1);
    assert_eq!(w.store.durable_commits.get(), 1);
    assert_eq!(record(&w, &id).map(|r| r.phase), Some(Phase::Started));
}
