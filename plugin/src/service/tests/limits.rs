//! The per-user max_num_sandboxes limit.

use super::*;

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
fn the_limit_asks_the_runtime_only_when_the_caller_has_enough_active_sandboxes() {
    let mut w = World::new();
    w.settings.max_num_sandboxes = 3;
    let ids = start_many(&w, Some("alice"), 2);
    let asked = |w: &World| w.runtime.count("GET /sessions/batch") + w.runtime.count("GET /list");
    assert_eq!(asked(&w), 0, "two sandboxes cannot exceed a limit of 3");
    start(&w, Some("bob"));
    assert_eq!(asked(&w), 0, "bob's do not count for alice");
    start(&w, Some("alice"));
    assert_eq!(asked(&w), 0, "a third is within the limit");
    // Paused ones are not active: they cost nothing, however many are kept.
    ok(w.alice().pause(&ids[0]));
    start(&w, Some("alice"));
    assert_eq!(asked(&w), 0, "three active after one was paused");
    start(&w, Some("alice"));
    assert_eq!(w.runtime.count("GET /sessions/batch"), 1);
    assert_eq!(
        w.runtime.count("GET /list"),
        0,
        "never the whole runtime list"
    );
}

#[test]
fn a_start_reads_only_the_active_sandboxes_however_many_are_stored() {
    let mut w = World::new();
    w.settings.max_num_sandboxes = 5;
    for id in start_many(&w, Some("alice"), 200) {
        ok(w.alice().pause(&id));
    }
    w.store.rows_scanned.set(0);
    start(&w, Some("alice"));
    assert!(
        w.store.rows_scanned.get() <= 5,
        "scanned {} rows for a start with 200 paused sandboxes",
        w.store.rows_scanned.get()
    );
}

#[test]
fn a_sandbox_the_runtime_stopped_by_itself_is_not_counted() {
    let mut w = World::new();
    w.settings.max_num_sandboxes = 2;
    let ids = start_many(&w, Some("alice"), 2);
    // Paused behind sandboxd's back: still active in the index, not running.
    w.runtime.set_status(&ids[0], "paused");
    let third = start(&w, Some("alice"));
    assert_eq!(w.runtime.count("GET /sessions/batch"), 1);
    assert_eq!(ok(w.alice().get(&ids[1])).status, Status::Running);
    assert_eq!(ok(w.alice().get(&third)).status, Status::Running);
}

#[test]
fn a_failing_limit_check_never_fails_the_start() {
    let mut w = World::new();
    w.settings.max_num_sandboxes = 1;
    let first = start(&w, None);
    w.runtime
        .fault("GET /sessions/batch", Fault::Status(500, ""));
    start(&w, None);
    w.runtime
        .fault("GET /sessions/batch", Fault::Body("{\"runtimes\": 5}"));
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
