//! Status translation, the start timeout, tolerance of malformed runtime fields.

use super::*;

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
