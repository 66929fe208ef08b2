//! Pause, resume and delete.

use super::*;

#[test]
fn pause_retires_the_key_for_the_teardown_grace_even_if_the_pause_fails() {
    let w = World::new();
    let id = start(&w, Some("alice"));
    let key = w.runtime.key_of(&id).unwrap_or_default();
    w.runtime.fault("POST /pause", Fault::Status(500, "nope"));
    assert!(matches!(w.alice().pause(&id), Err(Error::Upstream(_))));
    // The agent server's final webhooks still authenticate for the grace ...
    assert_eq!(
        ok(w.admin().get_by_session_key(&key)).map(|s| s.id),
        Some(id.clone())
    );
    assert_eq!(record(&w, &id).map(|r| r.session_api_key_hash), Some(None));
    // ... and not a moment after.
    w.env
        .advance_secs(i64::from(w.settings.teardown_grace_secs));
    assert_eq!(ok(w.admin().get_by_session_key(&key)), None);
    ok(w.alice().pause(&id));
    assert_eq!(ok(w.alice().get(&id)).status, Status::Paused);
}

#[test]
fn with_no_teardown_grace_a_paused_key_is_refused_at_once() {
    let mut w = World::new();
    w.settings.teardown_grace_secs = 0;
    let id = start(&w, Some("alice"));
    let key = w.runtime.key_of(&id).unwrap_or_default();
    ok(w.alice().pause(&id));
    assert_eq!(ok(w.admin().get_by_session_key(&key)), None);
    assert_eq!(w.store.len(schema::BY_KEY_HASH), 0);
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
    let key = w.runtime.key_of(&id).unwrap_or_default();
    let err = w.admin().delete(&id).err();
    // A 5xx may pass: the caller is told to retry, the key is revoked first.
    assert!(
        matches!(&err, Some(Error::Unavailable(m, 5)) if m.contains("not deleted") && m.contains("stuck") && m.contains("revoked")),
        "{err:?}"
    );
    assert!(record(&w, &id).is_some());
    assert_eq!(ok(w.admin().get_by_session_key(&key)), None);
    assert_eq!(w.store.len(schema::BY_KEY_HASH), 0);
    // A refusal that will not pass is the runtime's answer (502).
    w.runtime.fault("POST /stop", Fault::Status(409, "locked"));
    let err = w.admin().delete(&id).err();
    assert!(
        matches!(&err, Some(Error::Upstream(m)) if m.contains("locked")),
        "{err:?}"
    );
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
