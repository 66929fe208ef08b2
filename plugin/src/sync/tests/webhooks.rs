//! Webhooks: authentication by session key, ownership, and the same store as polls.

use super::*;

#[test]
fn webhooks_and_polls_store_each_event_once() {
    let w = World::new();
    let (_, url, key) = sandbox_with_agent(&w, Some("alice"));
    let info = json!({"id": CONV_A, "execution_status": "idle", "title": "hello", "updated_at": "2026-11-26T07:00:00"});
    let s = ok(w
        .admin()
        .ingest_conversation(&key, info.to_string().as_bytes()));
    assert_eq!(s.changed_conversations, [CONV_A]);
    let batch = json!([
        event("e1", "2026-11-26T07:00:01", "MessageEvent"),
        event("e2", "2026-11-26T07:00:02", "ActionEvent")
    ]);
    let s =
        ok(w.admin()
            .ingest_events(&key, &CONV_A.replace('-', ""), batch.to_string().as_bytes()));
    assert_eq!(s.new_events, 2);
    let s = ok(w
        .admin()
        .ingest_events(&key, CONV_A, batch.to_string().as_bytes()));
    assert_eq!(s.new_events, 0, "a repeated webhook batch stores nothing");
    // The same events by poll, plus one more.
    w.agents.add_conversation(&url, CONV_A, "running");
    w.agents.add_event(
        &url,
        CONV_A,
        event("e1", "2026-11-26T07:00:01", "MessageEvent"),
    );
    w.agents.add_event(
        &url,
        CONV_A,
        event("e2", "2026-11-26T07:00:02", "ActionEvent"),
    );
    w.agents.add_event(
        &url,
        CONV_A,
        event("e3", "2026-11-26T07:00:03", "MessageEvent"),
    );
    assert_eq!(ok(w.admin().poll(&Share::all())).new_events, 1);
    let c = conversation(&w, Some("alice"), CONV_A);
    assert_eq!(
        (c["event_count"].clone(), c["title"].clone()),
        (
            json!(3),
            json!("conversation aaaaaaaa-0000-4000-8000-000000000001")
        )
    );
}

#[test]
fn webhook_authentication_and_ownership() {
    let w = World::new();
    let (alice_sb, _, alice_key) = sandbox_with_agent(&w, Some("alice"));
    let (_, _, bob_key) = sandbox_with_agent(&w, Some("bob"));
    let batch = json!([event("e1", "2026-11-26T07:00:01", "MessageEvent")]).to_string();
    assert!(matches!(
        w.admin().ingest_events("wrong", CONV_A, batch.as_bytes()),
        Err(Error::Unauthorized(_))
    ));
    ok(w.admin()
        .ingest_events(&alice_key, CONV_A, batch.as_bytes()));
    // Bob's agent server cannot write into Alice's conversation.
    let e = w
        .admin()
        .ingest_events(&bob_key, CONV_A, batch.as_bytes())
        .err();
    assert!(
        matches!(&e, Some(Error::Unauthorized(m)) if m.contains("another user")),
        "{e:?}"
    );
    let e = w
        .admin()
        .ingest_conversation(&bob_key, json!({"id": CONV_A}).to_string().as_bytes())
        .err();
    assert!(matches!(e, Some(Error::Unauthorized(_))), "{e:?}");
    // A paused sandbox's key authenticates its final webhooks for the
    // teardown grace, and no longer.
    ok(w.admin().pause(&alice_sb));
    ok(w.admin()
        .ingest_events(&alice_key, CONV_A, batch.as_bytes()));
    w.env
        .advance_secs(i64::from(w.settings.teardown_grace_secs));
    assert!(matches!(
        w.admin()
            .ingest_events(&alice_key, CONV_A, batch.as_bytes()),
        Err(Error::Unauthorized(_))
    ));
    // Malformed bodies and a deleting conversation.
    assert!(matches!(
        w.admin()
            .ingest_events(&bob_key, CONV_B, b"{\"not\": \"an array\"}"),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        w.admin().ingest_events(&bob_key, "not/an/id", b"[]"),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        w.admin().ingest_conversation(&bob_key, b"nope"),
        Err(Error::InvalidInput(_))
    ));
    let deleting = json!({"id": CONV_B, "execution_status": "deleting"}).to_string();
    assert_eq!(
        ok(w.admin().ingest_conversation(&bob_key, deleting.as_bytes()))
            .changed_conversations
            .len(),
        0
    );
    assert!(matches!(
        w.bob().get_conversation(CONV_B),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn events_without_ids_are_stored_once_by_digest() {
    let w = World::new();
    let (_, _, key) = sandbox_with_agent(&w, None);
    let batch =
        json!([{"kind": "X", "timestamp": "2026-11-26T07:00:01", "n": 1}, {"kind": "X", "n": 2}])
            .to_string();
    assert_eq!(
        ok(w.admin().ingest_events(&key, CONV_A, batch.as_bytes())).new_events,
        2
    );
    assert_eq!(
        ok(w.admin().ingest_events(&key, CONV_A, batch.as_bytes())).new_events,
        0
    );
    // Anything but objects is refused, whole, naming the element.
    let bad = json!([{"kind": "X", "n": 3}, 5]).to_string();
    let err = w.admin().ingest_events(&key, CONV_A, bad.as_bytes()).err();
    assert!(
        matches!(&err, Some(Error::InvalidInput(m)) if m.contains("event 1")),
        "{err:?}"
    );
}

#[test]
fn an_event_too_large_to_store_is_refused_by_a_webhook_and_skipped_by_a_poll() {
    // One event over the store's value limit used to fail the whole commit: a
    // 500 for the webhook, and every poll cycle, for every sandbox, after it.
    let w = World::new();
    let (_, url, key) = sandbox_with_agent(&w, Some("alice"));
    let batch = json!([
        event("e1", "2026-11-26T07:00:01", "MessageEvent"),
        huge_event()
    ])
    .to_string();
    let err = w
        .admin()
        .ingest_events(&key, CONV_A, batch.as_bytes())
        .err();
    assert!(
        matches!(&err, Some(Error::InvalidInput(m)) if m.contains("event 1") && m.contains("bytes")),
        "{err:?}"
    );
    w.agents.add_conversation(&url, CONV_B, "running");
    w.agents.add_event(&url, CONV_B, huge_event());
    w.agents.add_event(
        &url,
        CONV_B,
        event("e2", "2026-11-26T07:00:03", "MessageEvent"),
    );
    let summary = ok(w.admin().poll(&Share::all()));
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    assert_eq!(summary.new_events, 1);
}

fn huge_event() -> Value {
    let mut e = event("big", "2026-11-26T07:00:02", "ObservationEvent");
    e["payload"] = json!("x".repeat(1 << 20));
    e
}
