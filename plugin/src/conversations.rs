//! The stored conversations and events, as the app reads them.
//!
//! Scoped like sandboxes: a user reads only conversations of their own
//! sandboxes, and another user's conversation is `not-found`. Event pages mean
//! what the agent server's mean: `next-page-id` is the id of the first event of
//! the next page.

use crate::error::{Error, Result};
use crate::paging::{self, PageStart};
use crate::ports::{Bound, Scan};
use crate::schema::conversations::{self as conv, ConversationRecord};
use crate::schema::events::{self, EVENT_ARRIVALS, EVENT_IDS, EVENTS};
use crate::schema::{self, time_key};
use crate::service::Service;
use crate::time;

/// Rows read per storage scan while filling a (possibly filtered) page. A kind
/// filter reads on until the page is full or the events end; the call's deadline
/// bounds it.
const SCAN_BATCH: u32 = 256;

/// A page of JSON documents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonPage {
    pub items: Vec<String>,
    /// The stored id of each item.
    pub ids: Vec<String>,
    pub next_page_id: Option<String>,
}

/// An event search, as the agent server's `events/search` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EventQuery {
    pub page_id: Option<String>,
    pub limit: u32,
    pub kind: Option<String>,
    pub timestamp_gte: Option<String>,
    pub timestamp_lt: Option<String>,
    pub descending: bool,
}

/// Where a live event stream starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStart {
    /// The conversation's id as sync reports it among changed conversations.
    pub conversation_id: String,
    /// Send the events after this one; none: from the first.
    pub after_event_id: Option<String>,
}

impl Service<'_> {
    /// Where a stream of `id` starts: after `last_event_id` when the client
    /// resumes, otherwise after the event stored last (so a new stream carries
    /// what arrives from then on, not the history).
    pub fn stream_start(&self, id: &str, last_event_id: Option<&str>) -> Result<StreamStart> {
        let conversation = self.visible_conversation(id)?;
        let after_event_id = match last_event_id.map(str::trim).filter(|l| !l.is_empty()) {
            Some(last) => Some(last.to_owned()),
            None => {
                let prefix = events::conversation_prefix(&conversation.key());
                let end = schema::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
                let last = self.store.scan(Scan {
                    table: EVENT_ARRIVALS,
                    start: Bound::Included(prefix.clone()),
                    end,
                    reverse: true,
                    limit: 1,
                })?;
                last.first()
                    .and_then(|(_, at)| std::str::from_utf8(at.get(8..)?).ok().map(str::to_owned))
            }
        };
        Ok(StreamStart {
            conversation_id: conversation.id,
            after_event_id,
        })
    }

    /// The conversation `id` if the caller may see it.
    pub(crate) fn visible_conversation(&self, id: &str) -> Result<ConversationRecord> {
        let not_found = || Error::NotFound(format!("conversation '{id}' not found"));
        let key = conv::key_of(id).ok_or_else(not_found)?;
        match self.load_conversation(&key)? {
            Some(c) if c.visible_to(self.caller()) => Ok(c),
            _ => Err(not_found()),
        }
    }

    pub fn get_conversation(&self, id: &str) -> Result<String> {
        Ok(self.visible_conversation(id)?.to_json().to_string())
    }

    /// Conversations newest first (of one sandbox, if given).
    pub fn search_conversations(
        &self,
        sandbox_id: Option<&str>,
        page_id: Option<&str>,
        limit: u32,
    ) -> Result<JsonPage> {
        let limit = limit.clamp(1, 100) as usize;
        let (table, prefix) = match sandbox_id {
            // No sandbox has such an id (its index key would not even fit).
            Some(sandbox) if !crate::service::is_valid_id(sandbox) => {
                return Ok(JsonPage::default());
            }
            Some(sandbox) => {
                // All conversations of a sandbox belong to its owner: another
                // user's sandbox lists nothing, without reading any of them.
                if let Some(bytes) = self.store.get(schema::SANDBOXES, sandbox.as_bytes())?
                    && !schema::SandboxRecord::decode(&bytes)?.visible_to(self.caller())
                {
                    return Ok(JsonPage::default());
                }
                (conv::BY_SANDBOX, conv::sandbox_prefix(sandbox))
            }
            None => match self.caller() {
                None => (conv::BY_CREATED, Vec::new()),
                Some(user) => (conv::BY_OWNER, schema::owner_prefix(Some(user))),
            },
        };
        let (start, skip) = match paging::parse(page_id) {
            PageStart::First => (Bound::Included(prefix.clone()), 0),
            PageStart::After(k) => (Bound::Excluded([prefix.as_slice(), &k].concat()), 0),
            PageStart::Offset(n) => (
                Bound::Included(prefix.clone()),
                usize::try_from(n).unwrap_or(usize::MAX),
            ),
        };
        let end = schema::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        // Only conversations the caller may see count, for the page, the offset
        // and the cursor: an index range can hold other users' entries (a deleted
        // sandbox's id reused, or a sandbox filter on someone else's old id), and
        // a cursor taken from one of them would name their conversation.
        let mut low = start;
        let mut skip_left = skip;
        let mut items = Vec::with_capacity(limit);
        let mut ids = Vec::with_capacity(limit);
        let mut last_key: Option<Vec<u8>> = None;
        let mut has_more = false;
        let batch = u32::try_from(limit + 1).unwrap_or(u32::MAX);
        'scan: loop {
            let rows = self.store.scan(Scan {
                table,
                start: low.clone(),
                end: end.clone(),
                reverse: false,
                limit: batch,
            })?;
            let Some((last_row, _)) = rows.last() else {
                break;
            };
            low = Bound::Excluded(last_row.clone());
            let full = rows.len() == batch as usize;
            let order_keys: Vec<&[u8]> = rows
                .iter()
                .map(|(k, _)| &k[prefix.len().min(k.len())..])
                .collect();
            let keys: Vec<Vec<u8>> = order_keys
                .iter()
                .map(|k| {
                    schema::id_of_order_key(k)
                        .unwrap_or_default()
                        .as_bytes()
                        .to_vec()
                })
                .collect();
            let values = self.store.get_many(conv::CONVERSATIONS, &keys)?;
            for (order_key, bytes) in order_keys.iter().zip(values) {
                let Some(bytes) = bytes else { continue };
                let record = ConversationRecord::decode(&bytes)?;
                if !record.visible_to(self.caller()) {
                    continue;
                }
                if skip_left > 0 {
                    skip_left -= 1;
                    continue;
                }
                if items.len() == limit {
                    has_more = true;
                    break 'scan;
                }
                items.push(record.to_json().to_string());
                ids.push(record.id);
                last_key = Some(order_key.to_vec());
            }
            if !full {
                break;
            }
        }
        Ok(JsonPage {
            items,
            ids,
            next_page_id: if has_more {
                last_key.as_deref().map(paging::cursor)
            } else {
                None
            },
        })
    }

    /// Events of one conversation, each exactly as received.
    pub fn search_events(&self, conversation_id: &str, q: &EventQuery) -> Result<JsonPage> {
        let conversation = self.visible_conversation(conversation_id)?;
        let key = conversation.key();
        let prefix = events::conversation_prefix(&key);
        let limit = q.limit.clamp(1, 100) as usize;

        let mut low = Bound::Included(prefix.clone());
        let mut high = schema::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        if let Some(t) = q.timestamp_gte.as_deref() {
            let us = time::parse(t).ok_or_else(|| bad_time("timestamp__gte", t))?;
            low = tighter_low(
                low,
                Bound::Included([prefix.as_slice(), &time_key(us)].concat()),
            );
        }
        if let Some(t) = q.timestamp_lt.as_deref() {
            let us = time::parse(t).ok_or_else(|| bad_time("timestamp__lt", t))?;
            high = tighter_high(
                high,
                Bound::Excluded([prefix.as_slice(), &time_key(us)].concat()),
            );
        }
        // Where the page starts: at an event (its `events` key), inclusive.
        if let Some(id) = q.page_id.as_deref().filter(|i| !i.is_empty())
            && let Some((time, _)) = self.stored_event(&key, id)?
        {
            let at = Bound::Included([prefix.as_slice(), &time, id.as_bytes()].concat());
            if q.descending {
                high = tighter_high(high, at);
            } else {
                low = tighter_low(low, at);
            }
        }

        let mut items = Vec::with_capacity(limit);
        let mut ids = Vec::with_capacity(limit);
        let mut next_page_id = None;
        'scan: loop {
            let rows = self.store.scan(Scan {
                table: EVENTS,
                start: low.clone(),
                end: high.clone(),
                reverse: q.descending,
                limit: SCAN_BATCH,
            })?;
            let Some(last) = rows.last().map(|(k, _)| k.clone()) else {
                break;
            };
            let full = rows.len() == SCAN_BATCH as usize;
            for (k, raw) in rows {
                if let Some(kind) = q.kind.as_deref()
                    && !kind_matches(&raw, kind)
                {
                    continue;
                }
                if items.len() == limit {
                    next_page_id =
                        events::split_event_key(&k, prefix.len()).map(|(_, id)| id.to_owned());
                    break 'scan;
                }
                items.push(String::from_utf8_lossy(&raw).into_owned());
                ids.push(
                    events::split_event_key(&k, prefix.len())
                        .map(|(_, id)| id.to_owned())
                        .unwrap_or_default(),
                );
            }
            if !full {
                break;
            }
            if q.descending {
                high = Bound::Excluded(last);
            } else {
                low = Bound::Excluded(last);
            }
        }
        Ok(JsonPage {
            items,
            ids,
            next_page_id,
        })
    }
}

impl Service<'_> {
    /// Where event `event_id` of conversation `key` is: its time key and its
    /// arrival number (none for one stored before arrival numbers existed).
    fn stored_event(&self, key: &str, event_id: &str) -> Result<Option<([u8; 8], Option<u64>)>> {
        // No stored event has a longer id (longer ones are kept by digest),
        // and its lookup key would exceed the store's key limit.
        if event_id.len() > events::MAX_EVENT_ID {
            return Ok(None);
        }
        Ok(self
            .store
            .get(EVENT_IDS, &events::event_id_key(key, event_id))?
            .as_deref()
            .and_then(events::split_id_value))
    }

    /// The events of conversation `id` stored after `after_event_id` (none:
    /// from the first), in the order they were stored: what an event stream
    /// sends. An event stored later with an older timestamp still comes next.
    pub fn stream_events(
        &self,
        id: &str,
        after_event_id: Option<&str>,
        limit: u32,
    ) -> Result<JsonPage> {
        let conversation = self.visible_conversation(id)?;
        let key = conversation.key();
        let prefix = events::conversation_prefix(&key);
        let start = match after_event_id.map(str::trim).filter(|a| !a.is_empty()) {
            Some(after) => match self.stored_event(&key, after)? {
                Some((_, Some(seq))) => Bound::Excluded(events::arrival_key(&key, seq)),
                // Unknown, or stored before arrival numbers: from the first
                // event that has one.
                _ => Bound::Included(prefix.clone()),
            },
            None => Bound::Included(prefix.clone()),
        };
        let end = schema::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        let arrivals = self.store.scan(Scan {
            table: EVENT_ARRIVALS,
            start,
            end,
            reverse: false,
            limit: limit.clamp(1, 100),
        })?;
        let event_keys: Vec<Vec<u8>> = arrivals
            .iter()
            .map(|(_, at)| [prefix.as_slice(), at].concat())
            .collect();
        let bodies = self.store.get_many(EVENTS, &event_keys)?;
        let mut page = JsonPage::default();
        for ((_, at), body) in arrivals.iter().zip(bodies) {
            // An arrival whose event is gone (it cannot be, but a page must
            // not fail on one) is passed over.
            let Some(body) = body else { continue };
            page.ids
                .push(String::from_utf8_lossy(at.get(8..).unwrap_or_default()).into_owned());
            page.items.push(String::from_utf8_lossy(&body).into_owned());
        }
        Ok(page)
    }
}

fn bad_time(param: &str, value: &str) -> Error {
    Error::InvalidInput(format!(
        "{param} must be an ISO-8601 timestamp, got '{}'",
        value.chars().take(60).collect::<String>()
    ))
}

fn kind_matches(raw: &[u8], kind: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Kind<'a> {
        #[serde(borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Kind<'_>>(raw).is_ok_and(|k| k.kind.as_deref() == Some(kind))
}

fn key_of(b: &Bound) -> Option<&[u8]> {
    match b {
        Bound::Included(k) | Bound::Excluded(k) => Some(k),
        Bound::Unbounded => None,
    }
}

/// The higher of two lower bounds.
fn tighter_low(a: Bound, b: Bound) -> Bound {
    match (key_of(&a), key_of(&b)) {
        (Some(x), Some(y)) if x > y || (x == y && matches!(a, Bound::Excluded(_))) => a,
        (None, _) | (Some(_), Some(_)) => b,
        (Some(_), None) => a,
    }
}

/// The lower of two upper bounds.
fn tighter_high(a: Bound, b: Bound) -> Bound {
    match (key_of(&a), key_of(&b)) {
        (Some(x), Some(y)) if x < y || (x == y && matches!(a, Bound::Excluded(_))) => a,
        (None, _) | (Some(_), Some(_)) => b,
        (Some(_), None) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::EventQuery;
    use crate::testing::World;

    const CONV: &str = "aaaaaaaa-0000-4000-8000-000000000001";

    #[test]
    fn event_page_ids_longer_than_any_event_id_are_unknown_ids() {
        // Caught by the page_ids fuzz target: the lookup of a 2,000-character
        // page id went to storage with a key past its limit, a 500.
        let w = World::new();
        let sandbox = w
            .alice()
            .start(None, None)
            .map(|s| s.id)
            .unwrap_or_default();
        let key = w.runtime.key_of(&sandbox).unwrap_or_default();
        let batch = r#"[{"id": "e1", "kind": "MessageEvent", "timestamp": "2026-11-26T07:00:01"},
                        {"id": "e2", "kind": "MessageEvent", "timestamp": "2026-11-26T07:00:02"}]"#;
        let stored = w.admin().ingest_events(&key, CONV, batch.as_bytes());
        assert_eq!(stored.map(|s| s.new_events), Ok(2));
        let long = "e".repeat(2000);
        let page = w.alice().search_events(
            CONV,
            &EventQuery {
                page_id: Some(long.clone()),
                limit: 10,
                ..EventQuery::default()
            },
        );
        assert_eq!(page.map(|p| p.ids), Ok(vec!["e1".into(), "e2".into()]));
        let streamed = w.alice().stream_events(CONV, Some(&long), 10);
        assert_eq!(streamed.map(|p| p.ids), Ok(vec!["e1".into(), "e2".into()]));
    }
}
