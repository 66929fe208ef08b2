//! Reconciliation of the store with the runtime's `/list`: orphans, starts left half-way.

use super::*;
use crate::model::Cause;
use crate::service::OrphanPolicy;

const FOREVER: i64 = i64::MAX;

#[test]
fn an_orphan_runtime_is_stopped_and_recorded_sandboxes_are_left_alone() {
    let w = World::new();
    let kept = start(&w, Some("alice"));
    w.runtime.insert("stray", "running");
    let summary = ok(w.admin().reconcile(OrphanPolicy::Stop, 0, &Share::all()));
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
    let summary = ok(w.admin().reconcile(OrphanPolicy::Keep, 0, &Share::all()));
    assert_eq!(
        (summary.orphans, summary.stopped, summary.adopted),
        (1, 0, 0)
    );
    assert!(record(&w, "stray").is_none());

    let summary = ok(w.admin().reconcile(OrphanPolicy::Adopt, 0, &Share::all()));
    assert_eq!(summary.adopted, 1);
    let adopted = record(&w, "stray").unwrap_or_else(|| panic!("not adopted"));
    assert_eq!(adopted.created_by_user_id, None);
    assert_eq!(adopted.phase, Phase::Started);
    let key = w.runtime.key_of("stray").unwrap_or_default();
    assert_eq!(adopted.session_api_key_hash, Some(session_key::hash(&key)));
    assert!(matches!(w.alice().get("stray"), Err(Error::NotFound(_))));
    assert_eq!(ok(w.admin().get("stray")).status, Status::Running);
    // Nothing left to do the second time.
    assert_eq!(
        ok(w.admin().reconcile(OrphanPolicy::Adopt, 0, &Share::all())).orphans,
        0
    );
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
        status: None,
        status_at_us: 0,
        retired_key: None,
        acted: None,
        warm: None,
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
    let summary = ok(w
        .admin()
        .reconcile(OrphanPolicy::Stop, FOREVER, &Share::all()));
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
    let summary = ok(w.admin().reconcile(OrphanPolicy::Stop, 0, &Share::all()));
    assert_eq!((summary.completed, summary.removed), (0, 0));
    assert!(record(&w, "in-flight").is_some());
}

#[test]
fn an_unknown_outcome_is_left_for_the_next_pass_and_a_failed_list_fails_the_pass() {
    let w = World::new();
    half_way(&w, "unknown");
    w.runtime
        .fault_times("GET /sessions/unknown", Fault::Status(503, "busy"), 3);
    let summary = ok(w
        .admin()
        .reconcile(OrphanPolicy::Stop, FOREVER, &Share::all()));
    assert_eq!(summary.failures.len(), 1, "{summary:?}");
    assert!(record(&w, "unknown").is_some());

    w.runtime.fault("GET /list", Fault::Status(500, "down"));
    let err = w
        .admin()
        .reconcile(OrphanPolicy::Stop, FOREVER, &Share::all())
        .err();
    assert!(
        matches!(&err, Some(Error::Upstream(m)) if m.contains("GET /list") && m.contains("500")),
        "{err:?}"
    );
}

#[test]
fn users_cannot_reconcile() {
    let w = World::new();
    assert!(matches!(
        w.alice().reconcile(OrphanPolicy::Stop, 0, &Share::all()),
        Err(Error::Unauthorized(_))
    ));
}

#[test]
fn a_pass_counts_the_stored_sandboxes_by_status() {
    let w = World::new();
    let running = start(&w, Some("alice"));
    let paused = start(&w, Some("alice"));
    ok(w.alice().pause(&paused));
    let gone = start(&w, Some("bob"));
    w.runtime.set_status(&gone, "stopped");
    w.runtime.insert("stray", "running");
    let summary = ok(w.admin().reconcile(OrphanPolicy::Adopt, 0, &Share::all()));
    let s = &summary.statuses;
    assert_eq!(
        (s.starting, s.running, s.paused, s.error, s.missing),
        (0, 2, 1, 0, 1),
        "{running} and the adopted stray run, one is paused, one has no runtime"
    );
}

#[test]
fn reconciliation_rebuilds_the_active_index_of_records_stored_without_it() {
    let mut w = World::new();
    w.settings.max_num_sandboxes = 2;
    let ids = start_many(&w, Some("alice"), 2);
    ok(w.alice().pause(&ids[1]));
    // As a store written before the index existed: no entries at all.
    w.store.clear_table(schema::ACTIVE_BY_OWNER);
    ok(w.admin().reconcile(OrphanPolicy::Stop, 0, &Share::all()));
    assert_eq!(
        w.store.len(schema::ACTIVE_BY_OWNER),
        1,
        "the running one is active again, the paused one is not"
    );
    // And the limit counts it: a third start makes room by pausing ids[0]
    // only once a second active one exists.
    start(&w, Some("alice"));
    assert_eq!(ok(w.alice().get(&ids[0])).status, Status::Running);
    start(&w, Some("alice"));
    assert_eq!(ok(w.alice().get(&ids[0])).status, Status::Paused);
    // A second pass has nothing left to fix.
    let before = w.store.relaxed_commits.get();
    ok(w.admin().reconcile(OrphanPolicy::Stop, 0, &Share::all()));
    assert_eq!(w.store.relaxed_commits.get(), before);
}

#[test]
fn what_reconciliation_repairs_is_in_the_history_as_its_doing() {
    let w = World::new();
    half_way(&w, "reached");
    w.runtime.insert("reached", "running");
    w.runtime.insert("stray", "running");
    ok(w.admin()
        .reconcile(OrphanPolicy::Adopt, FOREVER, &Share::all()));
    for id in ["reached", "stray"] {
        let page = ok(w.admin().history(id, None, 10));
        let causes: Vec<_> = page.items.iter().map(|c| (c.status, c.cause)).collect();
        assert_eq!(causes, vec![(Status::Running, Cause::Reconcile)], "{id}");
        assert!(page.items[0].detail.is_some(), "{id}: the repair is named");
    }
    // The completed start is its owner's history, not someone else's.
    assert_eq!(ok(w.alice().history("reached", None, 10)).items.len(), 1);
    assert!(matches!(
        w.bob().history("reached", None, 10),
        Err(Error::NotFound(_))
    ));
}
