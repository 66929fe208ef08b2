//! Policies, the history with causes, lifecycle events, teardown grace.

use super::*;
use crate::model::{Cause, LifecyclePolicy};
use crate::schema::callbacks::DELIVERIES;
use crate::schema::history::{HISTORY, HISTORY_EXPIRY};
use crate::service::OrphanPolicy;
use crate::testing::HOOKS_URL;

fn all() -> Share {
    Share::new(1, &[0])
}

/// The sandbox's history as (status, cause), newest first.
fn causes(w: &World, id: &str) -> Vec<(Status, Cause)> {
    ok(w.admin().history(id, None, 100))
        .items
        .into_iter()
        .map(|c| (c.status, c.cause))
        .collect()
}

fn with_policy(policy: LifecyclePolicy) -> World {
    let mut w = World::new();
    w.settings.default_policy = policy;
    w
}

#[test]
fn every_change_an_api_call_makes_is_in_the_history_with_its_cause() {
    let mut w = World::new();
    w.settings.max_num_sandboxes = 1;
    let first = start(&w, Some("alice"));
    ok(w.alice().pause(&first));
    ok(w.alice().resume(&first));
    // A second start pauses the first to stay within the limit.
    let second = start(&w, Some("alice"));
    assert_eq!(
        causes(&w, &first),
        vec![
            (Status::Paused, Cause::Limit),
            (Status::Running, Cause::User),
            (Status::Paused, Cause::User),
            (Status::Running, Cause::User),
        ]
    );
    ok(w.alice().delete(&second));
    // The history outlives the sandbox, scoped like the sandbox was.
    assert_eq!(
        causes(&w, &second),
        vec![
            (Status::Missing, Cause::User),
            (Status::Running, Cause::User)
        ]
    );
    assert_eq!(ok(w.alice().history(&second, None, 10)).items.len(), 2);
    assert!(matches!(
        w.bob().history(&second, None, 10),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        w.bob().history(&first, None, 10),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        w.alice().history("never", None, 10),
        Err(Error::NotFound(_))
    ));
    let newest = &ok(w.alice().history(&first, None, 1)).items[0];
    assert_eq!(newest.previous_status, Some(Status::Running));
}

#[test]
fn history_pages_newest_first_without_gaps_or_repeats() {
    let w = World::new();
    let id = start(&w, None);
    for _ in 0..3 {
        ok(w.admin().pause(&id));
        ok(w.admin().resume(&id));
    }
    let full = causes(&w, &id);
    assert_eq!(full.len(), 7);
    let mut paged = Vec::new();
    let mut page_id = None;
    loop {
        let page = ok(w.admin().history(&id, page_id.as_deref(), 2));
        paged.extend(page.items.into_iter().map(|c| (c.status, c.cause)));
        match page.next_page_id {
            Some(next) => page_id = Some(next),
            None => break,
        }
    }
    assert_eq!(paged, full);
    // A junk page id starts over, as every listing does.
    assert_eq!(ok(w.admin().history(&id, Some("zz"), 100)).items.len(), 7);
}

#[test]
fn max_running_pauses_once_per_start_or_resume() {
    let w = with_policy(LifecyclePolicy {
        max_running_secs: Some(60),
        ..LifecyclePolicy::default()
    });
    let id = start(&w, Some("alice"));
    assert_eq!(ok(w.admin().lifecycle_pass(&all())).paused, 0);
    w.env.advance_secs(60);
    let pass = ok(w.admin().lifecycle_pass(&all()));
    assert_eq!((pass.paused, pass.failures.len()), (1, 0), "{pass:?}");
    assert_eq!(causes(&w, &id)[0], (Status::Paused, Cause::MaxRunning));
    // The runtime shows it running again (slow, or resumed behind our back):
    // the policy does not ask twice; the change is recorded as the runtime's.
    w.runtime.set_status(&id, "running");
    w.env.advance_secs(60);
    w.runtime.clear_requests();
    let pass = ok(w.admin().lifecycle_pass(&all()));
    assert_eq!((pass.paused, pass.observed), (0, 1));
    assert_eq!(w.runtime.count("POST /pause"), 0);
    assert_eq!(causes(&w, &id)[0], (Status::Running, Cause::Runtime));
    // A resume starts the clock again, and the policy may act again.
    ok(w.alice().resume(&id));
    w.env.advance_secs(60);
    assert_eq!(ok(w.admin().lifecycle_pass(&all())).paused, 1);
}

#[test]
fn idle_pause_goes_by_silence_and_conversation_status() {
    let w = with_policy(LifecyclePolicy {
        idle_pause_secs: Some(300),
        ..LifecyclePolicy::default()
    });
    let quiet = start(&w, None);
    let busy = start(&w, None);
    let idle_conv = start(&w, None);
    for (id, status) in [(&busy, "running"), (&idle_conv, "idle")] {
        let url = w
            .runtime
            .runtime(id)
            .and_then(|r| r["url"].as_str().map(str::to_owned));
        let url = url.unwrap_or_default();
        w.agents
            .add_agent(&url, &w.runtime.key_of(id).unwrap_or_default());
        w.agents
            .add_conversation(&url, &format!("{id}-conv"), status);
    }
    ok(w.admin().poll(&all()));
    w.env.advance_secs(299);
    assert_eq!(ok(w.admin().lifecycle_pass(&all())).paused, 0);
    w.env.advance_secs(1);
    let pass = ok(w.admin().lifecycle_pass(&all()));
    assert_eq!(pass.paused, 2, "{pass:?}");
    assert_eq!(causes(&w, &quiet)[0], (Status::Paused, Cause::Idle));
    assert_eq!(causes(&w, &idle_conv)[0], (Status::Paused, Cause::Idle));
    // A running conversation keeps its sandbox awake however long it runs.
    assert_eq!(causes(&w, &busy)[0], (Status::Running, Cause::User));
    w.env.advance_secs(3_600);
    assert_eq!(ok(w.admin().lifecycle_pass(&all())).paused, 0);
}

#[test]
fn new_events_keep_a_sandbox_awake() {
    let w = with_policy(LifecyclePolicy {
        idle_pause_secs: Some(300),
        ..LifecyclePolicy::default()
    });
    let id = start(&w, None);
    let url = w
        .runtime
        .runtime(&id)
        .and_then(|r| r["url"].as_str().map(str::to_owned));
    let url = url.unwrap_or_default();
    w.agents
        .add_agent(&url, &w.runtime.key_of(&id).unwrap_or_default());
    let conv = "cccccccc-0000-4000-8000-000000000003";
    w.agents.add_conversation(&url, conv, "idle");
    w.env.advance_secs(250);
    let ts = crate::time::iso8601(w.env.now_us.get());
    w.agents.add_event(
        &url,
        conv,
        json!({"id": "e1", "timestamp": ts, "kind": "MessageEvent", "source": "agent"}),
    );
    ok(w.admin().poll(&all()));
    w.env.advance_secs(100);
    assert_eq!(ok(w.admin().lifecycle_pass(&all())).paused, 0);
    w.env.advance_secs(200);
    assert_eq!(ok(w.admin().lifecycle_pass(&all())).paused, 1);
}

#[test]
fn delete_paused_after_deletes_what_stayed_paused_and_keeps_its_history() {
    let w = with_policy(LifecyclePolicy {
        delete_paused_after_secs: Some(3_600),
        ..LifecyclePolicy::default()
    });
    let paused = start(&w, Some("alice"));
    let running = start(&w, Some("alice"));
    ok(w.alice().pause(&paused));
    w.env.advance_secs(3_599);
    assert_eq!(ok(w.admin().lifecycle_pass(&all())).deleted, 0);
    w.env.advance_secs(1);
    let pass = ok(w.admin().lifecycle_pass(&all()));
    assert_eq!(pass.deleted, 1, "{pass:?}");
    assert!(record(&w, &paused).is_none());
    assert!(record(&w, &running).is_some());
    assert!(w.runtime.runtime(&paused).is_none());
    assert_eq!(causes(&w, &paused)[0], (Status::Missing, Cause::Ttl));
    // Purged once the retention is over, and only then.
    w.env
        .advance_secs(i64::from(w.settings.history_retention_secs) - 1);
    assert_eq!(ok(w.admin().lifecycle_pass(&all())).histories_purged, 0);
    w.env.advance_secs(1);
    assert_eq!(ok(w.admin().lifecycle_pass(&all())).histories_purged, 1);
    assert!(matches!(
        w.alice().history(&paused, None, 10),
        Err(Error::NotFound(_))
    ));
    assert_eq!(w.store.len(HISTORY_EXPIRY), 0);
    assert!(!causes(&w, &running).is_empty());
}

#[test]
fn reconciliation_records_what_the_runtime_reports_and_start_timeouts() {
    let w = World::new();
    let gone = start(&w, None);
    let slow = start(&w, None);
    w.runtime.set_status(&slow, "starting");
    w.runtime.set_field(&slow, "pod_status", json!("pending"));
    w.runtime.runtimes.borrow_mut().remove(&gone);
    let reconcile = || ok(w.admin().reconcile(OrphanPolicy::Keep, 0, &all()));
    // Within the settle time nothing is recorded as the runtime's ...
    reconcile();
    assert_eq!(causes(&w, &gone).len(), 1);
    w.env
        .advance_secs(i64::from(w.settings.start_sandbox_timeout_secs) + 1);
    reconcile();
    assert_eq!(causes(&w, &gone)[0], (Status::Missing, Cause::Runtime));
    assert_eq!(causes(&w, &slow)[0], (Status::Error, Cause::StartTimeout));
    // ... and each change once.
    reconcile();
    assert_eq!(causes(&w, &gone).len(), 2);
    assert_eq!(causes(&w, &slow).len(), 2);
}

#[test]
fn with_a_policy_on_the_pass_records_what_the_runtime_reports_and_without_asks_it_nothing() {
    let mut w = World::new();
    let id = start(&w, None);
    w.runtime.set_status(&id, "paused");
    w.env.advance_secs(20);
    w.runtime.clear_requests();
    let pass = ok(w.admin().lifecycle_pass(&all()));
    assert_eq!((pass.sandboxes, pass.observed), (1, 0));
    assert_eq!(
        w.runtime.count("GET "),
        0,
        "no policy on: the runtime is not asked"
    );
    w.settings.default_policy.max_running_secs = Some(3_600);
    let pass = ok(w.admin().lifecycle_pass(&all()));
    assert_eq!(pass.observed, 1, "{pass:?}");
    assert_eq!(causes(&w, &id)[0], (Status::Paused, Cause::Runtime));
}

#[test]
fn a_failure_on_one_sandbox_does_not_stop_the_pass() {
    let w = with_policy(LifecyclePolicy {
        max_running_secs: Some(1),
        ..LifecyclePolicy::default()
    });
    let ids = start_many(&w, None, 3);
    w.env.advance_secs(2);
    w.runtime
        .fault_times("POST /pause", Fault::Status(500, "stuck"), 1);
    let pass = ok(w.admin().lifecycle_pass(&all()));
    assert_eq!((pass.paused, pass.failures.len()), (2, 1), "{pass:?}");
    assert!(ids.contains(&pass.failures[0].0));
    assert!(matches!(
        w.alice().lifecycle_pass(&all()),
        Err(Error::Unauthorized(_))
    ));
}

#[test]
fn the_pass_ends_teardown_graces() {
    let w = World::new();
    let id = start(&w, None);
    let key = w.runtime.key_of(&id).unwrap_or_default();
    ok(w.admin().pause(&id));
    assert_eq!(ok(w.admin().lifecycle_pass(&all())).keys_retired, 0);
    assert_eq!(w.store.len(schema::BY_KEY_HASH), 1);
    w.env
        .advance_secs(i64::from(w.settings.teardown_grace_secs));
    assert_eq!(ok(w.admin().lifecycle_pass(&all())).keys_retired, 1);
    assert_eq!(w.store.len(schema::BY_KEY_HASH), 0);
    assert_eq!(ok(w.admin().get_by_session_key(&key)), None);
}

#[test]
fn status_events_are_owed_to_the_owners_callbacks_that_name_them() {
    let w = World::new();
    let kinds = Some(vec!["SandboxStatusEvent".to_owned()]);
    ok(w.alice()
        .create_callback("alices", &format!("{HOOKS_URL}/a"), None, kinds.clone()));
    ok(w.bob()
        .create_callback("bobs", &format!("{HOOKS_URL}/b"), None, kinds));
    ok(w.alice()
        .create_callback("all-kinds", &format!("{HOOKS_URL}/c"), None, None));
    let id = start(&w, Some("alice"));
    ok(w.alice().pause(&id));
    assert_eq!(w.store.len(DELIVERIES), 2);
    ok(w.admin().deliver_due(&all()));
    let hooks = w.hooks.borrow();
    assert_eq!(hooks.len(), 2);
    let bodies: Vec<serde_json::Value> = hooks
        .iter()
        .map(|r| {
            assert!(r.url.ends_with("/a"), "{}", r.url);
            serde_json::from_slice(r.body.as_deref().unwrap_or_default()).unwrap_or_default()
        })
        .collect();
    assert_eq!(bodies[0]["kind"], "SandboxStatusEvent");
    assert_eq!(bodies[0]["sandbox_id"], id.as_str());
    let statuses: Vec<_> = bodies.iter().map(|b| b["status"].clone()).collect();
    assert!(statuses.contains(&json!("RUNNING")) && statuses.contains(&json!("PAUSED")));
    let pause = bodies
        .iter()
        .find(|b| b["status"] == "PAUSED")
        .unwrap_or_else(|| panic!("no PAUSED event in {bodies:?}"));
    assert_eq!(pause["previous_status"], "RUNNING");
    assert_eq!(pause["cause"], "user");
    assert!(
        hooks[0]
            .headers
            .iter()
            .any(|(k, v)| k == "x-sandboxd-sandbox-id" && *v == id)
    );
    assert_eq!(w.store.len(HISTORY), 2);
}

#[test]
fn a_wake_resumes_on_the_owners_behalf_and_only_what_is_paused() {
    let mut w = World::new();
    w.settings.max_num_sandboxes = 1;
    let alices = start(&w, Some("alice"));
    ok(w.alice().pause(&alices));
    let bobs = start(&w, Some("bob"));
    assert!(matches!(
        w.alice().wake(&alices),
        Err(Error::Unauthorized(_))
    ));
    let woken = ok(w.admin().wake(&alices));
    assert_eq!(woken.status, Status::Running);
    assert_eq!(causes(&w, &alices)[0], (Status::Running, Cause::Wake));
    // Alice's limit applies, not everyone's: Bob's sandbox runs on.
    assert_eq!(ok(w.bob().get(&bobs)).status, Status::Running);
    w.runtime.clear_requests();
    assert_eq!(ok(w.admin().wake(&alices)).status, Status::Running);
    assert_eq!(
        w.runtime.count("POST /resume"),
        0,
        "a running sandbox is left alone"
    );
}
