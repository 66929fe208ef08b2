//! Retries of idempotent reads: which failures, how many times, how long between.

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
        // A delete the runtime may carry out later is to be retried (503).
        assert!(
            matches!(result, Err(Error::Upstream(_)))
                || (action == "delete" && matches!(result, Err(Error::Unavailable(_, _)))),
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
