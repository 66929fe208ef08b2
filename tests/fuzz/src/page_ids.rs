//! Page ids: the input is a page id and the rest of an event search, as parts
//! joined by NUL bytes: `page_id \0 after_event_id \0 kind \0 timestamp__gte \0
//! timestamp__lt \0 flags` (flags: byte 0 bit 0 = descending, byte 1 = limit).
//! The `after_event_id` is where an event stream resumes (`stream-events`).
//!
//! Sandbox, conversation and delivery pages take opaque cursors
//! (`plugin/src/paging.rs`); event pages take event ids
//! (`plugin/src/conversations.rs`).
//!
//! Asserts:
//! - a cursor that decodes is the canonical cursor of what it decodes to (up to
//!   the case of its hex digits), a numeric page id is its offset, and every
//!   key the service pages by comes back from its cursor;
//! - a page id, whatever it is, is served: one this service cannot read (not a
//!   cursor it issued, not an offset) starts from the first page, and none is
//!   a fault (a 500);
//! - following `next_page_id` from the first page visits every sandbox and
//!   every conversation exactly once, newest first;
//! - an event search answers exactly the stored events that its filters and
//!   its page ids select, in order, and following `next_page_id` visits each of
//!   them once; only an unreadable timestamp is refused.

use crate::world::{NOW_US, World, is_input_error, ok, parts};
use sandboxd_plugin::conversations::EventQuery;
use sandboxd_plugin::error::Error;
use sandboxd_plugin::paging::{self, PageStart};
use sandboxd_plugin::schema::{self, conversations as conv, events};
use sandboxd_plugin::time;

const CONVERSATION: &str = "a1b2c3d4-0000-4000-8000-00000000000f";

/// The events of the conversation searched: ids, timestamps (some equal, some
/// missing or with a timezone) and kinds.
const EVENTS: &str = r#"[
  {"id": "e01", "kind": "MessageEvent", "timestamp": "2026-11-26T07:00:00.000000", "source": "user"},
  {"id": "e02", "kind": "ActionEvent", "timestamp": "2026-11-26T07:00:01.000000", "source": "agent"},
  {"id": "e03", "kind": "ObservationEvent", "timestamp": "2026-11-26T07:00:01.000000", "source": "environment"},
  {"id": "e04", "kind": "ActionEvent", "timestamp": "2026-11-26T09:00:02.5+02:00", "source": "agent"},
  {"id": "e05", "kind": "ConversationStateUpdateEvent", "timestamp": "2026-11-26T07:00:03", "key": "execution_status", "value": "running"},
  {"id": "e06", "kind": "MessageEvent", "timestamp": "2026-11-26 07:00:04.000001", "source": "agent"},
  {"kind": "ObservationEvent", "timestamp": "2026-11-26T07:00:05.000000", "source": "environment"},
  {"id": "e08", "kind": "ActionEvent", "source": "agent"},
  {"id": "e09", "kind": "ConversationStateUpdateEvent", "timestamp": "2026-11-26T07:00:06Z", "key": "execution_status", "value": "finished"},
  {"id": "e10", "timestamp": "2026-11-26T07:00:06Z"},
  {"id": "e11", "kind": "", "timestamp": "1970-01-01T00:00:00"}
]"#;

/// One input, checked.
pub fn run(data: &[u8]) {
    let [page_id, after, kind, gte, lt, flags] = parts::<6>(data);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let page_id = text(page_id);
    check_cursor(&page_id);
    check_key_round_trip(data);

    WORLD.with(|world| search(world, &page_id, [after, kind, gte, lt, flags]));
}

/// Alice's sandboxes and when each was created (two at the same time); the
/// last one's agent server posts the events of `CONVERSATION`.
const ALICES_SANDBOXES: [(&str, i64); 8] = [
    ("sb-0", NOW_US - 5),
    ("sb-1", NOW_US - 1),
    ("sb-2", NOW_US - 3),
    ("sb-3", NOW_US - 3),
    ("sb-4", NOW_US - 2),
    ("sb-5", NOW_US - 4),
    ("sb-6", NOW_US),
    ("sb-hook", NOW_US + 1),
];

thread_local! {
    /// The world every run searches (searches write nothing), built once.
    static WORLD: World<'static> = world();
}

/// Alice's sandboxes (two created at the same time) and one of Bob's, Alice's
/// conversations and one of Bob's, and the events of `CONVERSATION`.
fn world() -> World<'static> {
    let world = World::new(|_| ok(b"[]"));
    for (id, at) in ALICES_SANDBOXES {
        world.put_sandbox(id, Some("alice"), &format!("key-{id}"), at);
    }
    world.put_sandbox("sb-bob", Some("bob"), "k-bob", NOW_US - 9);
    for (i, at) in [3, 1, 1, 2, 0].into_iter().enumerate() {
        let id = format!("c0000000-0000-4000-8000-00000000000{i}");
        world.put_conversation(&id, "sb-0", Some("alice"), NOW_US - at);
    }
    world.put_conversation("conv-bob", "sb-bob", Some("bob"), NOW_US - 9);
    world
        .service(None)
        .ingest_events("key-sb-hook", CONVERSATION, EVENTS.as_bytes())
        .unwrap_or_else(|e| panic!("storing the events failed: {e}"));
    world
}

fn search(world: &World<'_>, page_id: &str, [after, kind, gte, lt, flags]: [&[u8]; 5]) {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let limit = u32::from(flags.get(1).copied().unwrap_or(3));
    let alice = world.service(Some("alice"));
    let admin = world.service(None);

    // Sandboxes, newest first (ties by id): a page id is where the page starts
    // (after a cursor's key, past an offset, or at the first page).
    let mut ordered: Vec<(Vec<u8>, String)> = ALICES_SANDBOXES
        .iter()
        .map(|(id, at)| (schema::order_key(*at, id), (*id).to_owned()))
        .collect();
    ordered.sort();
    let want: Vec<String> = ordered.iter().map(|(_, id)| id.clone()).collect();
    let start = paging::parse(Some(page_id));
    let page_size = limit.clamp(1, 100) as usize;
    for service in [&alice, &admin] {
        match (service.search(Some(page_id), limit), &start) {
            (Ok(page), start) if service.caller.is_some() => {
                let rest: Vec<&String> = match start {
                    PageStart::First => want.iter().collect(),
                    PageStart::Offset(n) => want
                        .iter()
                        .skip(usize::try_from(*n).unwrap_or(usize::MAX))
                        .collect(),
                    PageStart::After(k) => ordered
                        .iter()
                        .filter(|(key, _)| key > k)
                        .map(|(_, id)| id)
                        .collect(),
                };
                let got: Vec<&String> = page.items.iter().map(|i| &i.id).collect();
                assert_eq!(
                    got,
                    rest[..rest.len().min(page_size)],
                    "page at {page_id:?}"
                );
                assert_eq!(page.next_page_id.is_some(), rest.len() > page_size);
            }
            (Ok(_), _) => {}
            (Err(e), _) => panic!("a sandbox search failed on page id {page_id:?}: {e:?}"),
        }
    }
    let got = walk(|p| {
        let page = alice.search(p, limit).unwrap_or_else(|e| panic!("{e}"));
        (
            page.items.into_iter().map(|i| i.id).collect(),
            page.next_page_id,
        )
    });
    assert_eq!(got, want, "sandbox pages");

    // Conversations, the caller's and a sandbox's.
    for sandbox in [None, Some("sb-0"), Some("sb-bob")] {
        if let Err(e) = alice.search_conversations(sandbox, Some(page_id), limit) {
            panic!("a conversation search failed on page id {page_id:?}: {e:?}");
        }
    }
    let of_sb0: Vec<String> = [4, 1, 2, 3, 0]
        .into_iter()
        .map(|i| format!("c0000000-0000-4000-8000-00000000000{i}"))
        .collect();
    let all: Vec<String> = std::iter::once(CONVERSATION.to_owned())
        .chain(of_sb0.iter().cloned())
        .collect();
    for (sandbox, want) in [(None, &all), (Some("sb-0"), &of_sb0)] {
        let got = walk(|p| {
            let page = alice
                .search_conversations(sandbox, p, limit)
                .unwrap_or_else(|e| panic!("{e}"));
            (page.ids, page.next_page_id)
        });
        assert_eq!(&got, want, "conversation pages of {sandbox:?}");
    }

    // Events.
    let non_empty = |b: &[u8]| Some(text(b)).filter(|s| !s.is_empty());
    let query = EventQuery {
        page_id: Some(page_id.to_owned()).filter(|s| !s.is_empty()),
        limit,
        kind: non_empty(kind),
        timestamp_gte: non_empty(gte),
        timestamp_lt: non_empty(lt),
        descending: flags.first().is_some_and(|f| f & 1 == 1),
    };
    check_events(world, &query);
    check_stream(world, non_empty(after).as_deref(), limit);
}

/// A stream resumed after `after` sends the stored events that came after it,
/// in the order they came (the batch's order, as stored), from the first when
/// `after` is not an event of the conversation. Whitespace around `after` is
/// not part of it, as around a `Last-Event-ID` header's value.
fn check_stream(world: &World<'_>, after: Option<&str>, limit: u32) {
    let service = world.service(Some("alice"));
    let stored = service
        .stream_events(CONVERSATION, None, 100)
        .unwrap_or_else(|e| panic!("a stream from the first failed: {e}"));
    let arrived: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(EVENTS)
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.get("id").and_then(|id| id.as_str()).map(str::to_owned))
        .collect();
    let with_ids: Vec<&String> = stored
        .ids
        .iter()
        .filter(|id| arrived.contains(id))
        .collect();
    assert_eq!(
        with_ids,
        arrived.iter().collect::<Vec<_>>(),
        "events stream in the order they came"
    );
    let from = after
        .map(str::trim)
        .and_then(|a| stored.ids.iter().position(|id| id == a))
        .map_or(0, |i| i + 1);
    let page = service
        .stream_events(CONVERSATION, after, limit)
        .unwrap_or_else(|e| panic!("a stream after {after:?} failed: {e}"));
    let want = &stored.ids[from..stored.ids.len().min(from + limit.clamp(1, 100) as usize)];
    assert_eq!(page.ids, want, "a stream after {after:?}");
}

/// Follow `next_page_id` from the first page; every id seen, in order.
fn walk(mut page: impl FnMut(Option<&str>) -> (Vec<String>, Option<String>)) -> Vec<String> {
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..100 {
        let (ids, following) = page(next.as_deref());
        seen.extend(ids);
        match following {
            Some(p) => next = Some(p),
            None => return seen,
        }
    }
    panic!("paging does not end: {seen:?}");
}

fn check_cursor(page_id: &str) {
    match paging::parse(Some(page_id)) {
        // Empty, zero, or anything this service cannot read: the first page.
        PageStart::First => {
            let t = page_id.trim();
            let offset = t.parse::<u64>().is_ok_and(|n| n > 0);
            let cursor = t
                .strip_prefix('c')
                .and_then(|digits| hex::decode(digits).ok())
                .is_some_and(|key| !key.is_empty() && key.len() <= paging::MAX_CURSOR_BYTES);
            assert!(
                !offset && !cursor,
                "{page_id:?} is read as the start, though it is a cursor or an offset"
            );
        }
        PageStart::After(key) => {
            assert!(!key.is_empty());
            let canonical = paging::cursor(&key);
            assert!(
                canonical.eq_ignore_ascii_case(page_id.trim()),
                "{page_id:?} decodes to the cursor {canonical:?}"
            );
            assert_eq!(paging::parse(Some(&canonical)), PageStart::After(key));
        }
        PageStart::Offset(n) => {
            assert!(n > 0);
            assert_eq!(page_id.trim().parse::<u64>(), Ok(n));
        }
    }
}

/// Any order key of an id of up to 128 bytes (the longest sandbox id or
/// conversation key) comes back from its cursor.
fn check_key_round_trip(data: &[u8]) {
    let (time, id) = data.split_at(data.len().min(8));
    let mut t = [0u8; 8];
    t[..time.len()].copy_from_slice(time);
    let mut id = String::from_utf8_lossy(id).into_owned();
    let mut end = id.len().min(128);
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    id.truncate(end);
    let key = schema::order_key(i64::from_be_bytes(t), &id);
    assert_eq!(schema::id_of_order_key(&key), Some(&*id));
    assert_eq!(schema::time_of_key(&key).map(|_| ()), Some(()));
    assert_eq!(
        paging::parse(Some(&paging::cursor(&key))),
        PageStart::After(key)
    );
}

/// An event search against the events stored for `CONVERSATION`, and the walk
/// through all its pages.
fn check_events(world: &World<'_>, query: &EventQuery) {
    let service = world.service(Some("alice"));
    let gte = query.timestamp_gte.as_deref().map(time::parse);
    let lt = query.timestamp_lt.as_deref().map(time::parse);
    let first = service.search_events(CONVERSATION, query);
    if gte.is_some_and(|t| t.is_none()) || lt.is_some_and(|t| t.is_none()) {
        assert!(
            matches!(first, Err(Error::InvalidInput(_))),
            "an unreadable timestamp was taken: {first:?}"
        );
        return;
    }
    let first = first.unwrap_or_else(|e| {
        assert!(is_input_error(&e), "an event search failed: {e:?}");
        panic!("an event search with readable timestamps was refused: {e}");
    });

    // What the search should select, from the stored rows themselves.
    let key = conv::key_of(CONVERSATION).unwrap_or_default();
    let prefix = events::conversation_prefix(&key);
    let rows = world.store.rows_with_prefix(events::EVENTS, &prefix);
    let position = |id: &str| {
        rows.iter()
            .map(|(k, _)| &k[prefix.len()..])
            .find(|k| &k[8..] == id.as_bytes())
            .map(<[u8]>::to_vec)
    };
    let page_at = query.page_id.as_deref().and_then(position);
    let mut want: Vec<(Vec<u8>, String)> = rows
        .iter()
        .map(|(k, raw)| {
            (
                k[prefix.len()..].to_vec(),
                String::from_utf8_lossy(raw).into_owned(),
            )
        })
        .filter(|(k, raw)| {
            let t = schema::time_of_key(k).unwrap_or_default();
            let kind_ok = query.kind.as_deref().is_none_or(|kind| {
                serde_json::from_str::<serde_json::Value>(raw)
                    .ok()
                    .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_owned))
                    .as_deref()
                    == Some(kind)
            });
            let at_ok = if query.descending {
                page_at.as_ref().is_none_or(|p| k <= p)
            } else {
                page_at.as_ref().is_none_or(|p| k >= p)
            };
            kind_ok
                && gte.flatten().is_none_or(|g| t >= g)
                && lt.flatten().is_none_or(|l| t < l)
                && at_ok
        })
        .collect();
    if query.descending {
        want.reverse();
    }
    let want_ids: Vec<String> = want
        .iter()
        .map(|(k, _)| String::from_utf8_lossy(&k[8..]).into_owned())
        .collect();
    let limit = query.limit.clamp(1, 100) as usize;
    assert_eq!(
        first.ids,
        want_ids[..want_ids.len().min(limit)],
        "first page of {query:?}"
    );
    let want_items: Vec<&str> = want
        .iter()
        .take(limit)
        .map(|(_, raw)| raw.as_str())
        .collect();
    assert_eq!(first.items, want_items);
    assert_eq!(first.next_page_id.as_ref(), want_ids.get(limit));

    // The walk: the same query, page after page.
    let got = walk(|p| {
        let q = EventQuery {
            page_id: p.map(str::to_owned).or_else(|| query.page_id.clone()),
            ..query.clone()
        };
        let page = service
            .search_events(CONVERSATION, &q)
            .unwrap_or_else(|e| panic!("{e}"));
        (page.ids, page.next_page_id)
    });
    assert_eq!(got, want_ids, "event pages of {query:?}");
}
