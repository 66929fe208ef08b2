//! Searches: paging through every page in every order, filters, out-of-order events.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::super::FakeAgentServer;
use super::{Client, ids_of, query};

/// `n` conversations with `created_at` / `updated_at` in the given minute offsets
/// (in creation order); returns their ids.
fn conversations(fake: &FakeAgentServer, prefix: &str, minutes: &[(u32, u32)]) -> Vec<String> {
    minutes
        .iter()
        .map(|(created, updated)| {
            fake.add_conversation(
                prefix,
                json!({
                    "created_at": format!("2025-06-01T10:{created:02}:00Z"),
                    "updated_at": format!("2025-06-01T10:{updated:02}:00.000001+00:00"),
                }),
            )
        })
        .collect()
}

#[tokio::test]
async fn conversation_search_pages_through_every_sort_order() {
    let fake = FakeAgentServer::start();
    fake.add_agent("sb", "key");
    // Created at minutes 3, 1, 2, 1 (a tie), 5; updated in another order.
    let ids = conversations(&fake, "sb", &[(3, 9), (1, 4), (2, 7), (1, 8), (5, 5)]);
    let client = Client::new(&fake, "sb");
    let path = "/api/conversations/search";
    let pick = |order: &[usize]| order.iter().map(|&i| ids[i].clone()).collect::<Vec<_>>();

    // Ties keep creation order in both directions (Python's stable sort).
    let expected = [
        (None, pick(&[4, 0, 2, 1, 3])),
        (Some("CREATED_AT_DESC"), pick(&[4, 0, 2, 1, 3])),
        (Some("CREATED_AT"), pick(&[1, 3, 2, 0, 4])),
        (Some("UPDATED_AT"), pick(&[1, 4, 2, 3, 0])),
        (Some("UPDATED_AT_DESC"), pick(&[0, 3, 2, 4, 1])),
    ];
    for (order, expected) in expected {
        let params: Vec<(&str, &str)> = order
            .map(|order| ("sort_order", order))
            .into_iter()
            .collect();
        for limit in [1, 2, 3, 5, 100] {
            let seen = client.all_pages(path, &params, limit).await;
            assert_eq!(seen, expected, "{order:?} limit {limit}");
        }
    }

    // Page ids are the undashed ids of the next page's first item; either spelling
    // is accepted back, and an unknown one starts over (as the real server does).
    let (_, first) = client.get(&format!("{path}?limit=2")).await;
    let next = first["next_page_id"]
        .as_str()
        .expect("a next page")
        .to_owned();
    assert_eq!(next, ids[2].replace('-', ""));
    for page_id in [next.as_str(), ids[2].as_str()] {
        let (_, page) = client
            .get(&format!("{path}?limit=2&page_id={page_id}"))
            .await;
        assert_eq!(ids_of(&page), pick(&[2, 1]));
    }
    for page_id in ["00000000000040008000000000000000", "garbage", ""] {
        let (status, page) = client
            .get(&format!("{path}?limit=2&page_id={page_id}"))
            .await;
        assert_eq!((status, ids_of(&page)), (200, pick(&[4, 0])), "{page_id:?}");
    }

    // The status filter.
    fake.update_conversation("sb", &ids[1], json!({"execution_status": "running"}));
    fake.update_conversation("sb", &ids[3], json!({"execution_status": "running"}));
    let running = client.all_pages(path, &[("status", "running")], 1).await;
    assert_eq!(running, pick(&[1, 3]));
    let (_, none) = client.get(&format!("{path}?status=stuck")).await;
    assert_eq!(none, json!({"items": [], "next_page_id": null}));
}

/// Events inserted far from timestamp order, in every timestamp spelling.
fn out_of_order_events(
    fake: &FakeAgentServer,
    prefix: &str,
    conversation: &str,
) -> Vec<(String, String)> {
    // Seconds 0..30 of a minute, inserted in a scrambled order (7 is coprime to 30).
    let mut stored = Vec::new();
    for step in 0..30u32 {
        let second = (step * 7 + 11) % 30;
        let timestamp = match step % 4 {
            0 => format!("2025-06-01T12:00:{second:02}.123456"),
            1 => format!("2025-06-01T12:00:{second:02}.123456Z"),
            2 => format!("2025-06-01T14:00:{second:02}.123456+02:00"),
            _ => format!("2025-06-01T07:00:{second:02}.123456-05:00"),
        };
        let kind = if second % 3 == 0 {
            "ActionEvent"
        } else {
            "MessageEvent"
        };
        let source = ["agent", "user", "environment"][(second % 3) as usize];
        let id = fake.add_event(
            prefix,
            conversation,
            json!({"timestamp": timestamp, "kind": kind, "source": source, "second": second}),
        );
        stored.push((id, format!("{second:02}")));
    }
    stored
}

#[tokio::test]
async fn event_search_pages_in_timestamp_order_whatever_the_insertion_order() {
    let fake = FakeAgentServer::start();
    fake.add_agent("sb", "key");
    let conversation = fake.add_conversation("sb", Value::Null);
    let stored = out_of_order_events(&fake, "sb", &conversation);
    let client = Client::new(&fake, "sb");
    let path = format!("/api/conversations/{conversation}/events/search");

    // Stored in insertion order, served in timestamp order.
    let inserted: Vec<String> = fake
        .events("sb", &conversation)
        .iter()
        .map(|event| event["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        inserted,
        stored.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>()
    );
    let mut by_time = stored.clone();
    by_time.sort_by(|a, b| a.1.cmp(&b.1));
    let ascending: Vec<String> = by_time.into_iter().map(|(id, _)| id).collect();
    let descending: Vec<String> = ascending.iter().rev().cloned().collect();
    assert_ne!(inserted, ascending);

    for limit in [1, 4, 7, 29, 30, 100] {
        assert_eq!(
            client.all_pages(&path, &[], limit).await,
            ascending,
            "limit {limit}"
        );
        let asc = client
            .all_pages(&path, &[("sort_order", "TIMESTAMP")], limit)
            .await;
        assert_eq!(asc, ascending);
        let desc = client
            .all_pages(&path, &[("sort_order", "TIMESTAMP_DESC")], limit)
            .await;
        assert_eq!(desc, descending, "limit {limit}");
    }

    // next_page_id is the id of the next page's first event.
    let (_, page) = client.get(&format!("{path}?limit=4")).await;
    assert_eq!(page["next_page_id"], ascending[4]);
    let (_, page) = client
        .get(&format!("{path}?limit=4&page_id={}", ascending[4]))
        .await;
    assert_eq!(ids_of(&page), ascending[4..8]);
    // Events are served as stored, extra fields included, timestamps as written.
    let (_, page) = client.get(&format!("{path}?limit=1")).await;
    assert_eq!(page["items"][0]["second"], 0);
    assert_eq!(
        page["items"][0]["timestamp"],
        "2025-06-01T07:00:00.123456-05:00"
    );

    // The default limit is 100.
    let more: Vec<Value> = (0..120).map(|_| json!({})).collect();
    fake.add_events("sb", &conversation, more);
    let (_, page) = client.get(&path).await;
    assert_eq!(page["items"].as_array().map(Vec::len), Some(100));
    assert!(page["next_page_id"].is_string());
    assert_eq!(client.all_pages(&path, &[], 100).await.len(), 150);
}

#[tokio::test]
async fn timestamp_filters_compare_as_utc_with_or_without_timezone() {
    let fake = FakeAgentServer::start();
    fake.add_agent("sb", "key");
    let conversation = fake.add_conversation("sb", Value::Null);
    let stored = out_of_order_events(&fake, "sb", &conversation);
    fake.add_event(
        "sb",
        &conversation,
        json!({"timestamp": "not a time", "second": -1}),
    );
    let client = Client::new(&fake, "sb");
    let path = format!("/api/conversations/{conversation}/events/search");
    let seconds = |ids: &[String]| -> Vec<String> {
        let by_id: HashMap<&String, &String> =
            stored.iter().map(|(id, second)| (id, second)).collect();
        ids.iter()
            .map(|id| {
                by_id
                    .get(id)
                    .map_or("??".to_owned(), |second| (*second).clone())
            })
            .collect()
    };
    let range = |from: u32, to: u32| (from..to).map(|s| format!("{s:02}")).collect::<Vec<_>>();

    // [10, 20) in five spellings of the same instants.
    for (gte, lt) in [
        ("2025-06-01T12:00:10", "2025-06-01T12:00:20"),
        ("2025-06-01T12:00:10Z", "2025-06-01T12:00:20.000000"),
        ("2025-06-01T14:00:10+02:00", "2025-06-01T09:00:20-03:00"),
        ("2025-06-01 12:00:10+00:00", "2025-06-01T12:00:20+0000"),
        ("2025-06-01T12:00:09.123457", "2025-06-01T12:00:19.123457"),
    ] {
        for order in ["TIMESTAMP", "TIMESTAMP_DESC"] {
            let params = [
                ("timestamp__gte", gte),
                ("timestamp__lt", lt),
                ("sort_order", order),
            ];
            let ids = client.all_pages(&path, &params, 3).await;
            let mut expected = range(10, 20);
            if order == "TIMESTAMP_DESC" {
                expected.reverse();
            }
            assert_eq!(seconds(&ids), expected, "{gte} .. {lt} {order}");
        }
    }
    // One bound at a time; the unparseable timestamp passes no filter.
    let ids = client
        .all_pages(&path, &[("timestamp__gte", "2025-06-01T12:00:25.5")], 100)
        .await;
    assert_eq!(seconds(&ids), range(26, 30));
    let ids = client
        .all_pages(&path, &[("timestamp__lt", "2025-06-01T12:00:02Z")], 100)
        .await;
    assert_eq!(seconds(&ids), range(0, 2));
    // Without filters it comes first; an empty or inverted range is empty.
    let (_, page) = client.get(&format!("{path}?limit=1")).await;
    assert_eq!(page["items"][0]["second"], -1);
    for params in [
        [
            ("timestamp__gte", "2025-06-01T12:00:05"),
            ("timestamp__lt", "2025-06-01T12:00:05"),
        ],
        [
            ("timestamp__gte", "2025-06-01T12:00:06"),
            ("timestamp__lt", "2025-06-01T12:00:05"),
        ],
    ] {
        let (status, page) = client.get(&format!("{path}?{}", query(&params))).await;
        assert_eq!(
            (status, page),
            (200, json!({"items": [], "next_page_id": null}))
        );
    }
    // A page id the filters leave out starts over.
    let outside = &stored
        .iter()
        .find(|(_, second)| second == "00")
        .expect("stored")
        .0;
    let params = [
        ("timestamp__gte", "2025-06-01T12:00:28"),
        ("page_id", outside.as_str()),
    ];
    let (_, page) = client.get(&format!("{path}?{}", query(&params))).await;
    assert_eq!(seconds(&ids_of(&page)), range(28, 30));
}

#[tokio::test]
async fn kind_and_source_filters_page_too() {
    let fake = FakeAgentServer::start();
    fake.add_agent("sb", "key");
    let conversation = fake.add_conversation("sb", Value::Null);
    let stored = out_of_order_events(&fake, "sb", &conversation);
    let client = Client::new(&fake, "sb");
    let path = format!("/api/conversations/{conversation}/events/search");
    let mut actions: Vec<(String, String)> = stored
        .iter()
        .filter(|(_, second)| second.parse::<u32>().is_ok_and(|s| s % 3 == 0))
        .cloned()
        .collect();
    actions.sort_by(|a, b| a.1.cmp(&b.1));
    let actions: Vec<String> = actions.into_iter().map(|(id, _)| id).collect();
    assert_eq!(actions.len(), 10);

    for kind in [
        "ActionEvent",
        "openhands.sdk.event.llm_convertible.action.ActionEvent",
    ] {
        let ids = client.all_pages(&path, &[("kind", kind)], 3).await;
        assert_eq!(ids, actions, "{kind}");
    }
    let reversed: Vec<String> = actions.iter().rev().cloned().collect();
    let params = [("kind", "ActionEvent"), ("sort_order", "TIMESTAMP_DESC")];
    assert_eq!(client.all_pages(&path, &params, 4).await, reversed);
    // `source` "agent" is exactly the seconds divisible by 3 too.
    assert_eq!(
        client.all_pages(&path, &[("source", "agent")], 7).await,
        actions
    );
    let params = [("kind", "MessageEvent"), ("source", "agent")];
    assert!(client.all_pages(&path, &params, 5).await.is_empty());
    for kind in ["", "Action", "xActionEvent", "ActionEvent.x"] {
        assert!(
            client
                .all_pages(&path, &[("kind", kind)], 5)
                .await
                .is_empty(),
            "{kind:?}"
        );
    }
    assert_eq!(
        client
            .all_pages(&path, &[("kind", "MessageEvent")], 6)
            .await
            .len(),
        20
    );
}

#[tokio::test]
async fn added_events_get_the_missing_fields_like_the_real_server_writes_them() {
    let fake = FakeAgentServer::start();
    fake.add_agent("sb", "key");
    let conversation = fake.add_conversation("sb", Value::Null);
    let custom = json!({
        "id": "custom-id",
        "kind": "ObservationEvent",
        "source": "environment",
        "timestamp": null,
        "x": [1],
    });
    let given = fake.add_events("sb", &conversation, [json!({}), custom.clone()]);
    assert_eq!(given[1], "custom-id");
    let events = fake.events("sb", &conversation);
    let filled = &events[0];
    assert_eq!(filled["id"], given[0]);
    assert_eq!(filled["id"].as_str().map(str::len), Some(36));
    assert_eq!(filled["kind"], "MessageEvent");
    assert_eq!(filled["source"], "agent");
    let timestamp = filled["timestamp"].as_str().expect("a timestamp");
    assert_eq!(timestamp.len(), 26, "naive, microseconds: {timestamp}");
    assert!(
        !timestamp.ends_with('Z') && !timestamp.contains('+'),
        "{timestamp}"
    );
    assert_eq!(events[1], custom);

    // The API serves exactly what is stored; a null timestamp sorts first.
    let client = Client::new(&fake, "sb");
    let (_, page) = client
        .get(&format!("/api/conversations/{conversation}/events/search"))
        .await;
    assert_eq!(page["items"], json!([events[1], events[0]]));
}

#[test]
#[should_panic(expected = "already has an event \"x\"")]
fn duplicate_event_ids_are_a_test_bug() {
    let fake = FakeAgentServer::start();
    fake.add_agent("sb", "key");
    let conversation = fake.add_conversation("sb", Value::Null);
    fake.add_events(
        "sb",
        &conversation,
        [json!({"id": "x"}), json!({"id": "x"})],
    );
}
