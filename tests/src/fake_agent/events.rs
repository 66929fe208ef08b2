//! One conversation's events: stored in insertion order, searched in timestamp order.
//!
//! Invariants:
//! - `events` is the insertion order and only ever grows; `by_time` and `by_id` hold
//!   indices into it, so they stay valid.
//! - `by_time` groups events by the UTC instant of their `timestamp`; inside a group
//!   the indices are in insertion order. Both sort orders keep ties in insertion
//!   order, as the real server's stable Python sort does (`reverse=True` does not
//!   reverse ties).
//! - Event ids are unique within a conversation (page ids are event ids).
//! - A search costs O(log n + page + skipped by the `kind`/`source` filters), never a
//!   scan of the whole log.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound::{self, Excluded, Included, Unbounded};

use bytes::Bytes;
use serde_json::{Map, Value};

use super::ids::{dashed, new_uuid};
use super::time::{self, Instant, SortKey};

/// The `kind` an event gets when the test leaves it out.
pub(crate) const DEFAULT_KIND: &str = "MessageEvent";
/// The `source` an event gets when the test leaves it out.
pub(crate) const DEFAULT_SOURCE: &str = "agent";

/// One stored event.
pub(crate) struct StoredEvent {
    /// The event as the test gave it, completed.
    pub value: Map<String, Value>,
    /// `value` serialized once, so a page is a copy of bytes, not a re-encoding.
    pub json: Bytes,
    pub id: String,
    kind: Option<String>,
    source: Option<String>,
    key: SortKey,
}

/// What `GET …/events/search` asked for, already validated.
#[derive(Debug, Default)]
pub(crate) struct EventQuery<'a> {
    /// The id of the first event of the page; unknown or filtered-out ids start from
    /// the beginning, as on the real server.
    pub page_id: Option<&'a str>,
    pub limit: usize,
    pub kind: Option<&'a str>,
    pub source: Option<&'a str>,
    pub descending: bool,
    pub gte: Option<Instant>,
    pub lt: Option<Instant>,
}

/// A page of events and the id of the first event of the next page.
pub(crate) struct EventPage<'a> {
    pub items: Vec<&'a StoredEvent>,
    pub next_page_id: Option<&'a str>,
}

#[derive(Default)]
pub(crate) struct EventLog {
    events: Vec<StoredEvent>,
    by_time: BTreeMap<SortKey, Vec<usize>>,
    by_id: HashMap<String, usize>,
}

/// Fills in `id` (random UUID), `timestamp` (now, naive UTC), `kind` and `source` when
/// the event has no such key. Keys present with any value, `null` included, are kept.
pub(crate) fn complete(event: Value) -> Result<Map<String, Value>, String> {
    let mut event = match event {
        Value::Object(event) => event,
        Value::Null => Map::new(),
        other => return Err(format!("an event must be a JSON object, not {other}")),
    };
    event
        .entry("id")
        .or_insert_with(|| Value::String(dashed(new_uuid())));
    event
        .entry("timestamp")
        .or_insert_with(|| Value::String(time::naive_now()));
    event
        .entry("kind")
        .or_insert_with(|| Value::String(DEFAULT_KIND.to_owned()));
    event
        .entry("source")
        .or_insert_with(|| Value::String(DEFAULT_SOURCE.to_owned()));
    Ok(event)
}

impl EventLog {
    /// Stores a completed event; returns its id. Refuses an id that is not a string or
    /// that the conversation already has.
    pub fn insert(&mut self, event: Map<String, Value>) -> Result<String, String> {
        let id = match event.get("id") {
            Some(Value::String(id)) => id.clone(),
            other => return Err(format!("an event id must be a string, not {other:?}")),
        };
        if self.by_id.contains_key(&id) {
            return Err(format!("the conversation already has an event {id:?}"));
        }
        let json = serde_json::to_vec(&event)
            .map_err(|error| format!("cannot encode the event: {error}"))?;
        let key = time::sort_key(event.get("timestamp"));
        let text = |name: &str| event.get(name).and_then(Value::as_str).map(str::to_owned);
        let stored = StoredEvent {
            kind: text("kind"),
            source: text("source"),
            id: id.clone(),
            key,
            json: Bytes::from(json),
            value: event,
        };
        let index = self.events.len();
        self.events.push(stored);
        self.by_time.entry(key).or_default().push(index);
        self.by_id.insert(id.clone(), index);
        Ok(id)
    }

    /// The events in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = &StoredEvent> {
        self.events.iter()
    }

    /// One page of the search, in timestamp order (ties in insertion order).
    pub fn search<'a>(&'a self, query: &EventQuery<'_>) -> EventPage<'a> {
        let empty = EventPage {
            items: Vec::new(),
            next_page_id: None,
        };
        if let (Some(gte), Some(lt)) = (query.gte, query.lt)
            && gte >= lt
        {
            // Also keeps `BTreeMap::range` from panicking on an inverted range.
            return empty;
        }
        let lower: Bound<SortKey> = match query.gte {
            Some(gte) => Included(Some(gte)),
            // Any timestamp filter leaves out timestamps that do not parse.
            None if query.lt.is_some() => Excluded(None),
            None => Unbounded,
        };
        let upper: Bound<SortKey> = query.lt.map_or(Unbounded, |lt| Excluded(Some(lt)));

        // Where the page starts: the page id's event, if it is one the search lists.
        let start = query
            .page_id
            .filter(|id| !id.is_empty())
            .and_then(|id| self.by_id.get(id))
            .map(|&index| (index, &self.events[index]))
            .filter(|(_, event)| self.listed(event, query))
            .and_then(|(index, event)| {
                let group = self.by_time.get(&event.key)?;
                let position = group.iter().position(|&other| other == index)?;
                Some((event.key, position))
            });

        // Bounds stay ordered: a listed start event lies inside [lower, upper).
        match (query.descending, start) {
            (false, None) => self.page(self.by_time.range((lower, upper)), None, query),
            (false, Some((key, position))) => self.page(
                self.by_time.range((Included(key), upper)),
                Some((key, position)),
                query,
            ),
            (true, None) => self.page(self.by_time.range((lower, upper)).rev(), None, query),
            (true, Some((key, position))) => self.page(
                self.by_time.range((lower, Included(key))).rev(),
                Some((key, position)),
                query,
            ),
        }
    }

    /// Walks groups in order, skipping `start`'s predecessors in its group, and takes
    /// `limit` events plus one to name the next page.
    fn page<'a>(
        &'a self,
        groups: impl Iterator<Item = (&'a SortKey, &'a Vec<usize>)>,
        start: Option<(SortKey, usize)>,
        query: &EventQuery<'_>,
    ) -> EventPage<'a> {
        let mut items = Vec::with_capacity(query.limit.min(self.events.len()));
        for (key, group) in groups {
            let skip = match start {
                Some((start_key, position)) if start_key == *key => position,
                _ => 0,
            };
            for &index in group.iter().skip(skip) {
                let event = &self.events[index];
                if !self.matches_fields(event, query) {
                    continue;
                }
                if items.len() == query.limit {
                    return EventPage {
                        items,
                        next_page_id: Some(&event.id),
                    };
                }
                items.push(event);
            }
        }
        EventPage {
            items,
            next_page_id: None,
        }
    }

    /// Whether the search lists this event at all (every filter).
    fn listed(&self, event: &StoredEvent, query: &EventQuery<'_>) -> bool {
        let in_time = match (query.gte.is_some() || query.lt.is_some(), event.key) {
            (false, _) => true,
            (true, None) => false,
            (true, Some(at)) => {
                query.gte.is_none_or(|gte| at >= gte) && query.lt.is_none_or(|lt| at < lt)
            }
        };
        in_time && self.matches_fields(event, query)
    }

    /// The `kind` and `source` filters. `kind` matches the event's `kind` or, as the
    /// real server compares, a dotted name ending in it
    /// (`openhands.sdk.event.llm_convertible.message.MessageEvent`).
    fn matches_fields(&self, event: &StoredEvent, query: &EventQuery<'_>) -> bool {
        let kind_ok = query.kind.is_none_or(|wanted| {
            event.kind.as_deref().is_some_and(|kind| {
                wanted == kind
                    || wanted
                        .strip_suffix(kind)
                        .is_some_and(|module| module.ends_with('.'))
            })
        });
        kind_ok
            && query
                .source
                .is_none_or(|wanted| event.source.as_deref() == Some(wanted))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn log(events: &[(&str, &str)]) -> EventLog {
        let mut log = EventLog::default();
        for (id, timestamp) in events {
            let event = complete(json!({"id": id, "timestamp": timestamp})).expect("object");
            log.insert(event).expect("new id");
        }
        log
    }

    fn ids(page: &EventPage<'_>) -> Vec<String> {
        page.items.iter().map(|event| event.id.clone()).collect()
    }

    #[test]
    fn ties_keep_insertion_order_in_both_directions_and_paging_splits_groups() {
        let log = log(&[
            ("c", "2025-01-01T00:00:02"),
            ("a", "2025-01-01T00:00:01"),
            ("b1", "2025-01-01T00:00:01.5"),
            ("b2", "2025-01-01T00:00:01.500"),
            ("b3", "2025-01-01T01:00:01.5+01:00"),
            ("junk", "not a time"),
        ]);
        let mut query = EventQuery {
            limit: 100,
            ..Default::default()
        };
        assert_eq!(
            ids(&log.search(&query)),
            ["junk", "a", "b1", "b2", "b3", "c"]
        );
        query.descending = true;
        assert_eq!(
            ids(&log.search(&query)),
            ["c", "b1", "b2", "b3", "a", "junk"]
        );

        // A page boundary inside a group of equal timestamps.
        query.limit = 2;
        let page = log.search(&query);
        assert_eq!(
            (ids(&page), page.next_page_id),
            (vec!["c".into(), "b1".into()], Some("b2"))
        );
        query.page_id = Some("b2");
        let page = log.search(&query);
        assert_eq!(
            (ids(&page), page.next_page_id),
            (vec!["b2".into(), "b3".into()], Some("a"))
        );
        query.descending = false;
        let page = log.search(&query);
        assert_eq!(
            (ids(&page), page.next_page_id),
            (vec!["b2".into(), "b3".into()], Some("c"))
        );

        // Filters leave out unparseable timestamps; an inverted range is empty.
        let query = EventQuery {
            limit: 100,
            lt: time::parse("2025-01-01T00:00:02"),
            ..Default::default()
        };
        assert_eq!(ids(&log.search(&query)), ["a", "b1", "b2", "b3"]);
        let query = EventQuery {
            limit: 100,
            gte: time::parse("2025-01-01T00:00:02"),
            lt: time::parse("2025-01-01T00:00:01"),
            ..Default::default()
        };
        assert!(log.search(&query).items.is_empty());
    }

    #[test]
    fn ids_must_be_unique_strings() {
        let mut log = log(&[("a", "2025-01-01T00:00:00")]);
        let duplicate = complete(json!({"id": "a"})).expect("object");
        assert!(log.insert(duplicate).is_err());
        let numeric = complete(json!({"id": 5})).expect("object");
        assert!(log.insert(numeric).is_err());
        assert!(complete(json!([1])).is_err());
        assert_eq!(log.iter().count(), 1);
    }
}
