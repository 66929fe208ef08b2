//! Warm pools: filled by the pass, taken by starts, invisible until taken,
//! failed and excess sandboxes removed without leaving a runtime behind.

use super::*;
use crate::model::Cause;
use crate::schema::Warm;
use crate::service::PassSummary;
use crate::testing::Fault;

const SPEC: &str = "image:default";

fn all() -> Share {
    Share::new(1, &[0])
}

fn with_pool(size: u32) -> World {
    let mut w = World::new();
    w.settings.warm_pools = vec![(SPEC.into(), size)];
    w
}

fn pass(w: &World) -> PassSummary {
    let summary = ok(w.admin().lifecycle_pass(&all()));
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    summary
}

/// The stored warm sandboxes, by id.
fn warm_ids(w: &World) -> Vec<String> {
    w.runtime
        .runtimes
        .borrow()
        .keys()
        .filter(|id| record(w, id).is_some_and(|r| r.warm.is_some()))
        .cloned()
        .collect()
}

#[test]
fn the_pass_fills_the_pool_and_a_start_takes_a_running_sandbox_from_it() {
    let w = with_pool(2);
    let filled = pass(&w);
    assert_eq!((filled.warm_started, filled.warm_ready), (2, 2));
    let pooled = warm_ids(&w);
    assert_eq!(pooled.len(), 2);

    let starts = w.runtime.count("POST /start");
    let info = ok(w.alice().start(None, None));
    // Answered running, without asking the runtime to start anything.
    assert_eq!(info.status, Status::Running);
    assert_eq!(w.runtime.count("POST /start"), starts);
    assert!(pooled.contains(&info.id));
    assert_eq!(info.created_by_user_id.as_deref(), Some("alice"));
    assert_eq!(info.session_api_key, w.runtime.key_of(&info.id));
    assert!(info.exposed_urls.is_some());
    // From now on it is alice's like any sandbox she started.
    let stored = record(&w, &info.id).unwrap_or_else(|| panic!("no record"));
    assert_eq!(stored.warm, None);
    assert_eq!(
        stored.session_api_key_hash,
        info.session_api_key.as_deref().map(session_key::hash)
    );
    assert_eq!(ok(w.alice().get(&info.id)).status, Status::Running);
    assert_eq!(ok(w.alice().search(None, 100)).items.len(), 1);
    let history = ok(w.alice().history(&info.id, None, 10)).items;
    assert_eq!(history.len(), 1);
    assert_eq!(
        (
            history[0].status,
            history[0].cause,
            history[0].previous_status
        ),
        (Status::Running, Cause::User, None)
    );

    // The next pass refills what was taken.
    let refilled = pass(&w);
    assert_eq!((refilled.warm_started, refilled.warm_ready), (1, 2));
    assert_eq!(warm_ids(&w).len(), 2);
    // A full pool starts nothing more.
    assert_eq!(pass(&w).warm_started, 0);
}

#[test]
fn a_warm_sandbox_is_no_ones_until_a_start_takes_it() {
    let mut w = with_pool(2);
    w.settings.max_num_sandboxes = 1;
    pass(&w);
    let pooled = warm_ids(&w);
    // No listing, lookup or action reaches it, for a user or an admin.
    assert!(ok(w.admin().search(None, 100)).items.is_empty());
    assert!(ok(w.alice().search(None, 100)).items.is_empty());
    for id in &pooled {
        assert!(matches!(w.admin().get(id), Err(Error::NotFound(_))));
        assert!(matches!(w.alice().pause(id), Err(Error::NotFound(_))));
        assert!(matches!(w.admin().delete(id), Err(Error::NotFound(_))));
        assert!(matches!(
            w.admin().history(id, None, 10),
            Err(Error::NotFound(_))
        ));
        let key = w.runtime.key_of(id).unwrap_or_default();
        assert_eq!(ok(w.admin().get_by_session_key(&key)), None);
    }
    assert_eq!(ok(w.admin().batch_get(&pooled)), vec![None, None]);

    // Nor does the limit count it: with room for one running sandbox, the
    // first start pauses nothing, and a second pauses only the first.
    let first = ok(w.alice().start(None, None)).id;
    assert_eq!(w.runtime.count("POST /pause"), 0);
    let second = ok(w.alice().start(None, None)).id;
    assert_eq!(w.runtime.count("POST /pause"), 1);
    assert_eq!(ok(w.alice().get(&first)).status, Status::Paused);
    assert_eq!(ok(w.alice().get(&second)).status, Status::Running);
    // Both came from the pool; bob's start finds it empty and starts one.
    assert!(pooled.contains(&first) && pooled.contains(&second));
    let starts = w.runtime.count("POST /start");
    let bobs = ok(w.bob().start(None, None));
    assert_eq!(w.runtime.count("POST /start"), starts + 1);
    assert!(!pooled.contains(&bobs.id));
}

#[test]
fn a_start_with_an_id_or_of_a_spec_without_a_pool_starts_a_sandbox() {
    let w = with_pool(1);
    pass(&w);
    let starts = w.runtime.count("POST /start");
    let named = ok(w.alice().start(None, Some("mine")));
    assert_eq!(named.id, "mine");
    let other = ok(w.alice().start(Some("image:other"), None));
    assert_eq!(w.runtime.count("POST /start"), starts + 2);
    assert_eq!(other.sandbox_spec_id, "image:other");
    // The pool is untouched.
    assert_eq!(warm_ids(&w).len(), 1);
}

#[test]
fn a_warm_sandbox_still_starting_is_not_handed_out() {
    let w = with_pool(1);
    *w.runtime.start_status.borrow_mut() = "starting".into();
    let filled = pass(&w);
    assert_eq!((filled.warm_started, filled.warm_ready), (1, 0));
    let pooled = warm_ids(&w);
    // Starting counts as coming: the pass does not start another.
    assert_eq!(pass(&w).warm_started, 0);
    let cold = ok(w.alice().start(None, None));
    assert!(!pooled.contains(&cold.id));
    assert_eq!(cold.status, Status::Starting);
    w.runtime.set_status(&pooled[0], "running");
    assert_eq!(pass(&w).warm_ready, 1);
    assert_eq!(ok(w.alice().start(None, None)).id, pooled[0]);
}

#[test]
fn failed_and_excess_warm_sandboxes_are_stopped_and_forgotten() {
    let mut w = with_pool(2);
    pass(&w);
    let pooled = warm_ids(&w);
    w.runtime.set_status(&pooled[0], "error");
    let summary = pass(&w);
    assert_eq!((summary.warm_started, summary.warm_ready), (1, 2));
    assert!(
        w.runtime.runtime(&pooled[0]).is_none(),
        "its runtime is stopped"
    );
    assert!(record(&w, &pooled[0]).is_none(), "and its record gone");
    assert_eq!(warm_ids(&w).len(), 2);

    // The pool shrinks to nothing: every warm runtime stops, no record stays.
    w.settings.warm_pools.clear();
    let summary = pass(&w);
    assert_eq!((summary.warm_started, summary.warm_ready), (0, 0));
    assert!(warm_ids(&w).is_empty());
    assert!(w.runtime.runtimes.borrow().is_empty());
    assert!(w.store.len(schema::WARM) == 0);
}

#[test]
fn a_warm_sandbox_whose_stop_failed_is_never_taken_and_is_removed_later() {
    let w = with_pool(1);
    pass(&w);
    let pooled = warm_ids(&w);
    w.runtime.set_status(&pooled[0], "error");
    w.runtime.fault("POST /stop", Fault::Status(500, "stuck"));
    let summary = ok(w.admin().lifecycle_pass(&all()));
    assert_eq!(summary.failures.len(), 1, "{:?}", summary.failures);
    let kept = record(&w, &pooled[0]).unwrap_or_else(|| panic!("the record must stay"));
    assert_eq!(kept.warm, Some(Warm::Leaving));
    // Running again (say), it still is not handed out: it is leaving.
    w.runtime.set_status(&pooled[0], "running");
    let started = ok(w.alice().start(None, None));
    assert_ne!(started.id, pooled[0]);
    pass(&w);
    assert!(record(&w, &pooled[0]).is_none());
    assert!(w.runtime.runtime(&pooled[0]).is_none());
}

#[test]
fn a_failed_pool_start_is_reported_and_leaves_nothing_behind() {
    let w = with_pool(1);
    w.runtime
        .fault("POST /start", Fault::Status(500, "no capacity"));
    let summary = ok(w.admin().lifecycle_pass(&all()));
    assert_eq!(summary.warm_started, 0);
    assert!(
        summary
            .failures
            .iter()
            .any(|(what, why)| what == "warm pool image:default" && why.contains("no capacity")),
        "{:?}",
        summary.failures
    );
    assert!(w.store.len(schema::WARM) == 0);
    assert_eq!(pass(&w).warm_started, 1);
}

#[test]
fn a_pool_is_kept_by_the_host_whose_share_holds_its_spec() {
    let w = with_pool(1);
    let (mine, theirs) = (Share::new(2, &[0]), Share::new(2, &[1]));
    let started: u32 = [mine, theirs]
        .iter()
        .map(|share| ok(w.admin().lifecycle_pass(share)).warm_started)
        .sum();
    assert_eq!(started, 1);
    assert_eq!(warm_ids(&w).len(), 1);
}

#[test]
fn a_runtime_that_cannot_answer_about_the_pool_means_a_cold_start() {
    let w = with_pool(1);
    pass(&w);
    let pooled = warm_ids(&w);
    w.runtime.fault_times(
        "GET /sessions/batch",
        Fault::Transport(HttpError::Connect("refused".into())),
        3,
    );
    let starts = w.runtime.count("POST /start");
    let info = ok(w.alice().start(None, None));
    assert_eq!(w.runtime.count("POST /start"), starts + 1);
    assert!(!pooled.contains(&info.id));
    assert_eq!(warm_ids(&w), pooled);
}
