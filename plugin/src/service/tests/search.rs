//! Search and paging, and batch get.

use super::*;

#[test]
fn search_pages_newest_first_with_cursors_and_one_batch_call_each() {
    let mut w = World::new();
    w.settings.max_num_sandboxes = 1000;
    let mut ids = start_many(&w, Some("alice"), 250);
    start_many(&w, Some("bob"), 5);
    ids.reverse();
    w.runtime.clear_requests();
    let mut seen = Vec::new();
    let mut page_id: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = ok(w.alice().search(page_id.as_deref(), 100));
        pages += 1;
        seen.extend(page.items.iter().map(|i| i.id.clone()));
        assert!(page.items.iter().all(|i| i.status == Status::Running));
        match page.next_page_id {
            Some(next) => page_id = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);
    assert_eq!(w.runtime.count("GET /sessions/batch"), 3);
    assert_eq!(w.runtime.count(""), 3);
}

#[test]
fn a_deep_page_scans_no_more_than_the_first() {
    let w = World::new();
    start_many(&w, None, 300);
    w.store.rows_scanned.set(0);
    let first = ok(w.admin().search(None, 10));
    let scanned_first = w.store.rows_scanned.replace(0);
    let mut page = first;
    for _ in 0..25 {
        page = ok(w.admin().search(page.next_page_id.as_deref(), 10));
    }
    let per_deep_page = w.store.rows_scanned.get() / 25;
    assert_eq!(scanned_first, 11);
    assert_eq!(per_deep_page, 11);
}

#[test]
fn numeric_page_ids_are_offsets_and_garbage_starts_over() {
    let w = World::new();
    let mut ids = start_many(&w, Some("alice"), 30);
    ids.reverse();
    let page = ok(w.alice().search(Some("10"), 5));
    let got: Vec<_> = page.items.iter().map(|i| i.id.clone()).collect();
    assert_eq!(got, ids[10..15].to_vec());
    assert!(page.next_page_id.is_some());
    let first: Vec<_> = ok(w.alice().search(None, 5))
        .items
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(first, ids[..5].to_vec());
    for junk in ["-3", "abc", "c0", "czzzz", "😀", "c"] {
        let got: Vec<_> = ok(w.alice().search(Some(junk), 5))
            .items
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(got, first, "{junk} starts from the first page");
    }
    assert!(ok(w.alice().search(Some("1000"), 5)).items.is_empty());
}

#[test]
fn an_empty_page_makes_no_runtime_call() {
    let w = World::new();
    let page = ok(w.alice().search(None, 100));
    assert!(page.items.is_empty() && page.next_page_id.is_none());
    assert_eq!(w.runtime.count(""), 0);
}

#[test]
fn a_failing_batch_call_reports_missing_instead_of_failing() {
    let w = World::new();
    start_many(&w, None, 3);
    w.runtime
        .fault_times("GET /sessions/batch", Fault::Status(502, "bad gateway"), 3);
    let page = ok(w.admin().search(None, 100));
    assert_eq!(page.items.len(), 3);
    assert!(page.items.iter().all(|i| {
        i.status == Status::Missing
            && i.session_api_key.is_none()
            && i.status_detail
                .as_deref()
                .is_some_and(|d| d.contains("HTTP 502") && d.contains("after 3 attempts"))
    }));
    for body in ["null", "[null, 3]", "{}", "garbage"] {
        w.runtime.fault("GET /sessions/batch", Fault::Body(body));
        let page = ok(w.admin().search(None, 100));
        assert!(
            page.items.iter().all(|i| i.status == Status::Missing),
            "{body}"
        );
    }
}

#[test]
fn batch_get_answers_in_order_with_nulls_in_one_call() {
    let w = World::new();
    let ids = start_many(&w, Some("alice"), 3);
    let bobs = start(&w, Some("bob"));
    w.runtime.clear_requests();
    let ask = vec![
        ids[2].clone(),
        "unknown".into(),
        ids[0].clone(),
        bobs.clone(),
        ids[2].clone(),
        "bad/id".into(),
    ];
    let got = ok(w.alice().batch_get(&ask));
    let got_ids: Vec<_> = got
        .iter()
        .map(|i| i.as_ref().map(|i| i.id.clone()))
        .collect();
    assert_eq!(
        got_ids,
        vec![
            Some(ids[2].clone()),
            None,
            Some(ids[0].clone()),
            None,
            Some(ids[2].clone()),
            None
        ]
    );
    assert_eq!(w.runtime.count(""), 1);
    assert!(ok(w.alice().batch_get(&[])).is_empty());
    let too_many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    assert!(matches!(
        w.alice().batch_get(&too_many),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn batch_get_survives_a_failing_runtime() {
    let w = World::new();
    let id = start(&w, None);
    w.runtime.down.set(true);
    let got = ok(w.admin().batch_get(std::slice::from_ref(&id)));
    assert_eq!(got[0].as_ref().map(|i| i.status), Some(Status::Missing));
}
