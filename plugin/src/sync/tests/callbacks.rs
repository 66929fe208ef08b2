//! Event callbacks: delivery once, signed, retried; validation; removal.

use super::*;

#[test]
fn callbacks_receive_new_events_once_signed_and_retried() {
    let w = World::new();
    let (_, _, key) = sandbox_with_agent(&w, Some("alice"));
    let all = ok(w
        .alice()
        .create_callback("cb1", &format!("{HOOKS_URL}/all"), None, None));
    let actions = ok(w.alice().create_callback(
        "cb2",
        &format!("{HOOKS_URL}/actions"),
        Some(CONV_A),
        Some(vec!["ActionEvent".into()]),
    ));
    ok(w.bob()
        .create_callback("cb3", &format!("{HOOKS_URL}/bob"), None, None));
    let batch = json!([
        event("e1", "2026-11-26T07:00:01", "MessageEvent"),
        event("e2", "2026-11-26T07:00:02", "ActionEvent")
    ])
    .to_string();
    ok(w.admin().ingest_events(&key, CONV_A, batch.as_bytes()));
    ok(w.admin().ingest_events(&key, CONV_A, batch.as_bytes()));

    let summary = ok(w.admin().deliver_due(&Share::all()));
    assert_eq!(
        (summary.attempted, summary.delivered),
        (3, 3),
        "two for 'all', one for 'actions', none for bob"
    );
    let hooks = w.hooks.borrow().clone();
    let to = |path: &str| hooks.iter().filter(|r| r.url.ends_with(path)).count();
    assert_eq!((to("/all"), to("/actions"), to("/bob")), (2, 1, 0));
    let action = hooks
        .iter()
        .find(|r| r.url.ends_with("/actions"))
        .cloned()
        .unwrap_or_else(|| panic!("no delivery"));
    assert_eq!(
        action.credential,
        Credential::CallbackSignature(actions.id.clone())
    );
    let body: Value =
        serde_json::from_slice(action.body.as_deref().unwrap_or_default()).unwrap_or_default();
    assert_eq!(
        body,
        event("e2", "2026-11-26T07:00:02", "ActionEvent"),
        "the event exactly as received"
    );
    assert!(
        action
            .headers
            .contains(&("x-sandboxd-conversation-id".into(), CONV_A.into()))
    );
    assert_eq!(
        ok(w.admin().deliver_due(&Share::all())).attempted,
        0,
        "delivered once"
    );
    let (log, _) = ok(w.alice().callback_deliveries(&all.id, None, 100));
    assert_eq!(log.len(), 2);
    assert!(
        log.iter()
            .all(|a| a.state == "delivered" && a.status == Some(200))
    );
    assert!(matches!(
        w.bob().callback_deliveries(&all.id, None, 10),
        Err(Error::NotFound(_))
    ));

    // A failing receiver is retried with backoff, then given up.
    w.hook_status.set(503);
    ok(w.admin().ingest_events(
        &key,
        CONV_A,
        json!([event("e3", "2026-11-26T07:00:03", "ActionEvent")])
            .to_string()
            .as_bytes(),
    ));
    let first = ok(w.admin().deliver_due(&Share::all()));
    assert_eq!((first.attempted, first.delivered), (2, 0));
    assert!(
        first
            .next_due_ms
            .is_some_and(|ms| (400..=1600).contains(&ms)),
        "{first:?}"
    );
    assert_eq!(
        ok(w.admin().deliver_due(&Share::all())).attempted,
        0,
        "not due yet"
    );
    for _ in 0..20 {
        w.env.advance_secs(400);
        ok(w.admin().deliver_due(&Share::all()));
    }
    let (log, _) = ok(w.alice().callback_deliveries(&actions.id, None, 100));
    assert_eq!(log.iter().filter(|a| a.event_id == "e3").count(), 10);
    assert_eq!(log[0].state, "failed");
    assert!(log[0].error.as_deref().unwrap_or_default().contains("503"));
    assert_eq!(
        ok(w.admin().deliver_due(&Share::all())).next_due_ms,
        None,
        "nothing left pending"
    );
}

#[test]
fn deleting_a_callback_drops_what_it_was_owed() {
    let w = World::new();
    let (_, _, key) = sandbox_with_agent(&w, None);
    let cb = ok(w
        .admin()
        .create_callback("cb4", &format!("{HOOKS_URL}/x"), None, None));
    ok(w.admin().ingest_events(
        &key,
        CONV_A,
        json!([event("e1", "2026-11-26T07:00:01", "M")])
            .to_string()
            .as_bytes(),
    ));
    ok(w.admin().delete_callback(&cb.id));
    assert_eq!(ok(w.admin().deliver_due(&Share::all())).attempted, 0);
    assert!(w.hooks.borrow().is_empty());
    assert!(matches!(
        w.admin().get_callback(&cb.id),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn callback_input_is_validated() {
    let w = World::new();
    for bad in ["", "ftp://x", "http://", "http:// space", "hooks.test/x"] {
        assert!(
            matches!(
                w.admin().create_callback("cb5", bad, None, None),
                Err(Error::InvalidInput(_))
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        w.admin()
            .create_callback("cb6", "http://h/x", Some("not/an/id"), None),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        w.admin()
            .create_callback("cb7", "http://h/x", None, Some(vec![String::new()])),
        Err(Error::InvalidInput(_))
    ));
    let cb = ok(w
        .alice()
        .create_callback("cb8", "https://h.example/x", Some(CONV_A), None));
    assert_eq!(ok(w.alice().list_callbacks()).len(), 1);
    assert!(ok(w.bob().list_callbacks()).is_empty());
    assert_eq!(ok(w.admin().list_callbacks()).len(), 1);
    assert!(matches!(
        w.bob().delete_callback(&cb.id),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn callback_ids_come_from_the_host_and_are_unique() {
    let w = World::new();
    ok(w.alice()
        .create_callback("cb-1", "https://h.example/x", None, None));
    assert!(matches!(
        w.bob()
            .create_callback("cb-1", "https://h.example/y", None, None),
        Err(Error::Conflict(_))
    ));
    for bad in ["", "a/b", "x y", &"x".repeat(65)] {
        assert!(
            matches!(
                w.alice()
                    .create_callback(bad, "https://h.example/x", None, None),
                Err(Error::InvalidInput(_))
            ),
            "{bad}"
        );
    }
}

/// Every stored delivery, as stored.
fn deliveries(w: &World) -> Vec<crate::schema::callbacks::DeliveryRecord> {
    w.store
        .rows_with_prefix(crate::schema::callbacks::DELIVERIES, b"")
        .iter()
        .map(|(_, v)| ok(crate::schema::callbacks::DeliveryRecord::decode(v)))
        .collect()
}

#[test]
fn a_claimed_delivery_is_sent_once_and_again_only_after_its_claim_runs_out() {
    let w = World::new();
    let (_, _, key) = sandbox_with_agent(&w, None);
    ok(w.admin()
        .create_callback("cb-claims", &format!("{HOOKS_URL}/x"), None, None));
    ok(w.admin().ingest_events(
        &key,
        CONV_A,
        json!([event("e1", "2026-11-26T07:00:01", "M")])
            .to_string()
            .as_bytes(),
    ));
    let owed = deliveries(&w);
    assert_eq!(owed.len(), 1);
    // Host A claims it, then dies before sending (its claim stays).
    let now = crate::ports::Env::now_micros(&w.env);
    assert_eq!(ok(w.admin().claim(owed.clone(), now)).len(), 1);
    // The same claim by host B, from what it read before A's, loses.
    assert!(ok(w.admin().claim(owed, now)).is_empty());
    // Host B finds nothing to send while the claim holds.
    assert_eq!(ok(w.admin().deliver_due(&Share::all())).attempted, 0);
    assert!(w.hooks.borrow().is_empty());
    // Once it runs out, B sends it: the one case of a second sending.
    w.env.advance_secs(61);
    assert_eq!(ok(w.admin().deliver_due(&Share::all())).delivered, 1);
    assert_eq!(w.hooks.borrow().len(), 1);
    assert!(deliveries(&w).is_empty());
}

#[test]
fn hosts_with_disjoint_shares_send_each_delivery_once_between_them() {
    let w = World::new();
    let (_, _, key) = sandbox_with_agent(&w, None);
    ok(w.admin()
        .create_callback("cb-shares", &format!("{HOOKS_URL}/x"), None, None));
    let batch: Vec<Value> = (0..40)
        .map(|i| event(&format!("e{i:02}"), "2026-11-26T07:00:01", "M"))
        .collect();
    ok(w.admin()
        .ingest_events(&key, CONV_A, json!(batch).to_string().as_bytes()));
    assert_eq!(deliveries(&w).len(), 40);
    let a = Share::new(4, &[0, 3]);
    let b = Share::new(4, &[1, 2]);
    let sent_a = ok(w.admin().deliver_due(&a)).delivered;
    let sent_b = ok(w.admin().deliver_due(&b)).delivered;
    assert!(sent_a > 0 && sent_b > 0, "{sent_a} + {sent_b}");
    assert_eq!(sent_a + sent_b, 40);
    let mut ids: Vec<String> = w
        .hooks
        .borrow()
        .iter()
        .filter_map(|r| {
            r.headers
                .iter()
                .find(|(k, _)| k == "x-sandboxd-delivery-id")
                .map(|(_, v)| v.clone())
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "every delivery once");
}
