//! The query side: conversations and events, scoped to their owner, paged like the agent server.

use super::*;

#[test]
fn a_deleted_or_reused_sandbox_id_leaks_no_conversation_through_paging() {
    // Found by tests/tests/isolation.rs: a cursor taken from a hidden row named
    // another user's conversation.
    let w = World::new();
    let (alice_sb, _, alice_key) = sandbox_with_agent(&w, Some("alice"));
    let batch = json!([event("e1", "2026-11-26T07:00:01", "MessageEvent")]).to_string();
    for conv in [CONV_A, CONV_B] {
        ok(w.admin().ingest_events(&alice_key, conv, batch.as_bytes()));
    }
    ok(w.alice().delete(&alice_sb));
    let page = ok(w.bob().search_conversations(Some(&alice_sb), None, 1));
    assert!(
        page.items.is_empty() && page.next_page_id.is_none(),
        "{page:?}"
    );
    // Alice still pages through both, one at a time.
    let first = ok(w.alice().search_conversations(Some(&alice_sb), None, 1));
    assert_eq!(first.items.len(), 1);
    let next = first.next_page_id.unwrap_or_default();
    let second = ok(w
        .alice()
        .search_conversations(Some(&alice_sb), Some(&next), 1));
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.next_page_id, None);
    // Bob takes the freed id: the old conversations stay Alice's, unseen.
    ok(w.bob().start(None, Some(&alice_sb)));
    let page = ok(w.bob().search_conversations(Some(&alice_sb), None, 1));
    assert!(
        page.items.is_empty() && page.next_page_id.is_none(),
        "{page:?}"
    );
}

#[test]
fn conversations_and_events_are_scoped_to_their_owner() {
    let w = World::new();
    let (alice_sb, _, alice_key) = sandbox_with_agent(&w, Some("alice"));
    let (bob_sb, _, bob_key) = sandbox_with_agent(&w, Some("bob"));
    let batch = json!([event("e1", "2026-11-26T07:00:01", "MessageEvent")]).to_string();
    ok(w.admin()
        .ingest_events(&alice_key, CONV_A, batch.as_bytes()));
    ok(w.admin().ingest_events(&bob_key, CONV_B, batch.as_bytes()));
    assert!(matches!(
        w.bob().get_conversation(CONV_A),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        w.bob().search_events(
            CONV_A,
            &EventQuery {
                limit: 10,
                ..Default::default()
            }
        ),
        Err(Error::NotFound(_))
    ));
    let mine = ok(w.bob().search_conversations(None, None, 100));
    assert_eq!(mine.ids, [CONV_B]);
    assert!(
        ok(w.bob().search_conversations(Some(&alice_sb), None, 100))
            .items
            .is_empty()
    );
    assert_eq!(
        ok(w.bob().search_conversations(Some(&bob_sb), None, 100)).ids,
        [CONV_B]
    );
    assert_eq!(
        ok(w.admin().search_conversations(None, None, 100))
            .items
            .len(),
        2
    );
    // Undashed ids work too.
    assert!(
        w.alice()
            .get_conversation(&CONV_A.replace('-', "").to_uppercase())
            .is_ok()
    );
}

#[test]
fn event_search_pages_filters_and_sorts_like_the_agent_server() {
    let w = World::new();
    let (_, _, key) = sandbox_with_agent(&w, None);
    let events: Vec<Value> = (0..25)
        .map(|i| {
            event(
                &format!("e{i:02}"),
                &format!("2026-11-26T07:00:{i:02}"),
                if i % 5 == 0 {
                    "ActionEvent"
                } else {
                    "MessageEvent"
                },
            )
        })
        .rev()
        .collect();
    ok(w.admin()
        .ingest_events(&key, CONV_A, Value::Array(events).to_string().as_bytes()));

    let (page1, next) = event_ids(
        &w,
        None,
        CONV_A,
        EventQuery {
            limit: 10,
            ..Default::default()
        },
    );
    assert_eq!(page1.first().map(String::as_str), Some("e00"));
    assert_eq!(
        next.as_deref(),
        Some("e10"),
        "next_page_id is the first event of the next page"
    );
    let (page2, _) = event_ids(
        &w,
        None,
        CONV_A,
        EventQuery {
            limit: 10,
            page_id: next,
            ..Default::default()
        },
    );
    assert_eq!(page2.first().map(String::as_str), Some("e10"));

    let (desc, next) = event_ids(
        &w,
        None,
        CONV_A,
        EventQuery {
            limit: 3,
            descending: true,
            ..Default::default()
        },
    );
    assert_eq!(desc, ["e24", "e23", "e22"]);
    assert_eq!(next.as_deref(), Some("e21"));

    let (actions, _) = event_ids(
        &w,
        None,
        CONV_A,
        EventQuery {
            kind: Some("ActionEvent".into()),
            ..Default::default()
        },
    );
    assert_eq!(actions, ["e00", "e05", "e10", "e15", "e20"]);
    let (actions, next) = event_ids(
        &w,
        None,
        CONV_A,
        EventQuery {
            limit: 2,
            kind: Some("ActionEvent".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        (actions, next.as_deref()),
        (vec!["e00".to_owned(), "e05".to_owned()], Some("e10"))
    );

    let (window, _) = event_ids(
        &w,
        None,
        CONV_A,
        EventQuery {
            timestamp_gte: Some("2026-11-26T07:00:03Z".into()),
            timestamp_lt: Some("2026-11-26T09:00:06+02:00".into()),
            ..Default::default()
        },
    );
    assert_eq!(window, ["e03", "e04", "e05"]);
    let bad = w.admin().search_events(
        CONV_A,
        &EventQuery {
            limit: 5,
            timestamp_gte: Some("soon".into()),
            ..Default::default()
        },
    );
    assert!(matches!(bad, Err(Error::InvalidInput(_))));
}

#[test]
fn a_stream_starts_after_the_newest_event_or_where_the_client_left_off() {
    let w = World::new();
    let (_, _, key) = sandbox_with_agent(&w, Some("alice"));
    assert!(matches!(
        w.alice().stream_start(CONV_A, None),
        Err(Error::NotFound(_))
    ));
    let info = json!({"id": CONV_A, "execution_status": "idle"});
    ok(w.admin()
        .ingest_conversation(&key, info.to_string().as_bytes()));
    let undashed = CONV_A.replace('-', "");
    let empty = ok(w.alice().stream_start(&undashed, None));
    assert_eq!(
        empty.conversation_id, CONV_A,
        "the id sync reports changes under"
    );
    assert_eq!(empty.after_event_id, None, "no events yet: from the first");

    let batch = json!([
        event("e2", "2026-11-26T07:00:02", "M"),
        event("e1", "2026-11-26T07:00:01", "M"),
    ]);
    ok(w.admin()
        .ingest_events(&key, CONV_A, batch.to_string().as_bytes()));
    let fresh = ok(w.alice().stream_start(CONV_A, None));
    assert_eq!(
        fresh.after_event_id.as_deref(),
        Some("e1"),
        "the last stored, whatever its timestamp"
    );
    let resumed = ok(w.alice().stream_start(CONV_A, Some(" e1 ")));
    assert_eq!(resumed.after_event_id.as_deref(), Some("e1"));

    assert!(matches!(
        w.bob().stream_start(CONV_A, None),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn a_sandbox_filter_that_cannot_be_a_sandbox_id_lists_nothing() {
    // Found by the API fuzzer: a 1,024-character sandbox id with a long page
    // id made an index key past the store's limit (a 500).
    let w = World::new();
    let long = "0".repeat(1024);
    let page = ok(w
        .alice()
        .search_conversations(Some(&long), Some(&"0".repeat(4096)), 100));
    assert!(page.items.is_empty() && page.next_page_id.is_none());
}

#[test]
fn a_stream_follows_the_order_events_were_stored_not_their_timestamps() {
    let w = World::new();
    let (_, _, key) = sandbox_with_agent(&w, Some("alice"));
    let store = |batch: Value| {
        ok(w.admin()
            .ingest_events(&key, CONV_A, batch.to_string().as_bytes()));
    };
    store(json!([
        event("b", "2026-11-26T07:00:05", "M"),
        event("a", "2026-11-26T07:00:04", "M")
    ]));
    let start = ok(w.alice().stream_start(CONV_A, None));
    assert_eq!(
        start.after_event_id.as_deref(),
        Some("a"),
        "the last stored, not the newest"
    );
    // Stored later with an older timestamp: still the next thing a stream sends.
    store(json!([
        event("old", "2026-11-26T06:00:00", "M"),
        event("a", "2026-11-26T07:00:04", "M")
    ]));
    store(json!([event("new", "2026-11-26T08:00:00", "M")]));
    let ids = |after: Option<&str>| ok(w.alice().stream_events(CONV_A, after, 100)).ids;
    assert_eq!(ids(start.after_event_id.as_deref()), ["old", "new"]);
    assert_eq!(
        ids(None),
        ["b", "a", "old", "new"],
        "every event once, as stored"
    );
    assert_eq!(ids(Some("old")), ["new"]);
    assert!(ids(Some("new")).is_empty());
    let two = ok(w.alice().stream_events(CONV_A, None, 2));
    assert_eq!(two.ids, ["b", "a"]);
    assert_eq!(two.items.len(), 2);
    assert!(matches!(
        w.bob().stream_events(CONV_A, None, 10),
        Err(Error::NotFound(_))
    ));
}
