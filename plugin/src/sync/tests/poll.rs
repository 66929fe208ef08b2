//! Poll cycles: what they store, what they skip, how a failing agent server is named.

use super::*;

#[test]
fn a_poll_stores_every_conversation_and_event_once() {
    let w = World::new();
    let (sandbox, url, _) = sandbox_with_agent(&w, Some("alice"));
    w.agents.add_conversation(&url, CONV_A, "running");
    w.agents.add_conversation(&url, CONV_B, "idle");
    // Out of timestamp order, no timezone.
    w.agents.add_event(
        &url,
        CONV_A,
        event("e3", "2026-11-26T07:00:03.000000", "ObservationEvent"),
    );
    w.agents.add_event(
        &url,
        CONV_A,
        event("e1", "2026-11-26T07:00:01.000000", "MessageEvent"),
    );
    w.agents.add_event(
        &url,
        CONV_A,
        event("e2", "2026-11-26T07:00:02.000000", "ActionEvent"),
    );

    let summary = ok(w.admin().poll(&Share::all()));
    assert_eq!(
        (summary.sandboxes, summary.conversations, summary.new_events),
        (1, 2, 3)
    );
    assert!(summary.failures.is_empty(), "{:?}", summary.failures);
    assert_eq!(summary.changed_conversations.len(), 2);

    let c = conversation(&w, Some("alice"), CONV_A);
    assert_eq!(c["sandbox_id"], json!(sandbox));
    assert_eq!(c["created_by_user_id"], "alice");
    assert_eq!(c["execution_status"], "running");
    assert_eq!(c["llm_model"], "fake-model");
    assert_eq!(c["event_count"], 3);
    assert_eq!(
        c["raw"]["unknown_new_field"],
        json!([1, 2, 3]),
        "the raw info is kept"
    );
    let (ids, _) = event_ids(&w, Some("alice"), CONV_A, EventQuery::default());
    assert_eq!(ids, ["e1", "e2", "e3"], "stored in timestamp order");

    // Nothing new: one search per sandbox and one event request per conversation.
    w.agents.requests.borrow_mut().clear();
    let summary = ok(w.admin().poll(&Share::all()));
    assert_eq!(summary.new_events, 0);
    assert!(summary.changed_conversations.is_empty());
    assert_eq!(summary.requests, 3);
    assert!(summary.requests <= 2 * summary.conversations);
    assert_eq!(w.agents.count(&url, "/events/search"), 2);
    let last = w
        .agents
        .requests
        .borrow()
        .iter()
        .rev()
        .find(|r| r.url.contains(&CONV_A.replace('-', "")))
        .map(|r| r.url.clone())
        .unwrap_or_default();
    assert!(
        last.contains("timestamp__gte=2026-11-26T06%3A59%3A33"),
        "resumes from the cursor minus a margin: {last}"
    );
}

#[test]
fn later_events_are_added_and_repeats_dropped() {
    let w = World::new();
    let (_, url, _) = sandbox_with_agent(&w, None);
    w.agents.add_conversation(&url, CONV_A, "running");
    w.agents.add_event(
        &url,
        CONV_A,
        event("e1", "2026-11-26T07:00:01", "MessageEvent"),
    );
    ok(w.admin().poll(&Share::all()));
    w.agents.add_event(
        &url,
        CONV_A,
        event("e0", "2026-11-26T07:00:00.5", "MessageEvent"),
    );
    w.agents.add_event(
        &url,
        CONV_A,
        event("e2", "2026-11-26T07:00:02", "MessageEvent"),
    );
    let summary = ok(w.admin().poll(&Share::all()));
    assert_eq!(
        summary.new_events, 2,
        "a late event inside the margin is not lost"
    );
    let (ids, _) = event_ids(&w, None, CONV_A, EventQuery::default());
    assert_eq!(ids, ["e0", "e1", "e2"]);
    assert_eq!(conversation(&w, None, CONV_A)["event_count"], 3);
}

#[test]
fn state_update_events_move_the_status_forward_only() {
    let w = World::new();
    let (_, url, _) = sandbox_with_agent(&w, None);
    w.agents.add_conversation(&url, CONV_A, "idle");
    w.agents.add_event(
        &url,
        CONV_A,
        json!({
            "id": "s1", "timestamp": "2026-11-26T08:00:00", "kind": "ConversationStateUpdateEvent",
            "key": "execution_status", "value": "finished"
        }),
    );
    w.agents.add_event(
        &url,
        CONV_A,
        json!({
            "id": "s2", "timestamp": "2026-11-26T08:00:01", "kind": "ConversationStateUpdateEvent",
            "key": "stats", "value": {"tokens": 42}
        }),
    );
    ok(w.admin().poll(&Share::all()));
    let c = conversation(&w, None, CONV_A);
    assert_eq!(
        c["execution_status"], "finished",
        "the info says idle but is older"
    );
    assert_eq!(c["stats"], json!({"tokens": 42}));
    // A newer info wins again.
    w.agents
        .set_conversation_field(&url, CONV_A, "updated_at", json!("2026-11-26T09:00:00Z"));
    w.agents
        .set_conversation_field(&url, CONV_A, "execution_status", json!("running"));
    ok(w.admin().poll(&Share::all()));
    assert_eq!(
        conversation(&w, None, CONV_A)["execution_status"],
        "running"
    );
}

#[test]
fn a_failing_agent_server_is_named_and_the_others_go_on() {
    let w = World::new();
    let (bad, bad_url, _) = sandbox_with_agent(&w, None);
    let (_, dead_url, _) = sandbox_with_agent(&w, None);
    let (_, good_url, _) = sandbox_with_agent(&w, None);
    w.agents.add_conversation(&good_url, CONV_A, "running");
    w.agents.add_event(
        &good_url,
        CONV_A,
        event("e1", "2026-11-26T07:00:01", "MessageEvent"),
    );
    w.agents.set_key(&bad_url, "another-key");
    w.agents
        .down
        .borrow_mut()
        .insert(dead_url.clone(), HttpError::Timeout);
    let summary = ok(w.admin().poll(&Share::all()));
    assert_eq!(summary.sandboxes, 3);
    assert_eq!(summary.new_events, 1);
    assert_eq!(summary.failures.len(), 2, "{:?}", summary.failures);
    let reason = summary
        .failures
        .iter()
        .find(|(id, _)| *id == bad)
        .map(|(_, r)| r.clone())
        .unwrap_or_default();
    assert!(reason.contains("refused the session key"), "{reason}");
    assert!(
        summary
            .failures
            .iter()
            .any(|(_, r)| r.contains("timed out")),
        "{:?}",
        summary.failures
    );
}

#[test]
fn only_running_sandboxes_we_know_are_polled() {
    let w = World::new();
    let (paused, paused_url, _) = sandbox_with_agent(&w, None);
    w.agents.add_conversation(&paused_url, CONV_A, "idle");
    ok(w.admin().pause(&paused));
    w.runtime.insert("not-ours", "running");
    let summary = ok(w.admin().poll(&Share::all()));
    assert_eq!(summary.sandboxes, 0);
    assert_eq!(w.agents.count(&paused_url, "/api/"), 0);
}
