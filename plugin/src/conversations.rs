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
use crate::schema::events::{self, EVENT_IDS, EVENTS};
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
    pub after_event_id: Option<String>,
    pub limit: u32,
    pub kind: Option<String>,
    pub timestamp_gte: Option<String>,
    pub timestamp_lt: Option<String>,
    pub descending: bool,
}

impl Service<'_> {
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
        let (start, skip) = match paging::parse(page_id).map_err(Error::InvalidInput)? {
            PageStart::First => (Bound::Included(prefix.clone()), 0),
            PageStart::After(k) => (Bound::Excluded([prefix.as_slice(), &k].concat()), 0),
            PageStart::Offset(n) => (
                Bound::Included(prefix.clone()),
                usize::try_from(n).unwrap_or(usize::MAX),
            ),
        };
        let end = schema::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        let rows = self.store.scan(Scan {
            table,
            start,
            end,
            reverse: false,
            limit: u32::try_from(skip.saturating_add(limit + 1)).unwrap_or(u32::MAX),
        })?;
        let order_keys: Vec<&[u8]> = rows
            .iter()
            .skip(skip)
            .map(|(k, _)| &k[prefix.len().min(k.len())..])
            .collect();
        let has_more = order_keys.len() > limit;
        let page_keys = &order_keys[..order_keys.len().min(limit)];
        let keys: Vec<Vec<u8>> = page_keys
            .iter()
            .filter_map(|k| schema::id_of_order_key(k))
            .map(|k| k.as_bytes().to_vec())
            .collect();
        let values = if keys.is_empty() {
            Vec::new()
        } else {
            self.store.get_many(conv::CONVERSATIONS, &keys)?
        };
        let mut items = Vec::with_capacity(values.len());
        let mut ids = Vec::with_capacity(values.len());
        for bytes in values.into_iter().flatten() {
            let record = ConversationRecord::decode(&bytes)?;
            if record.visible_to(self.caller()) {
                items.push(record.to_json().to_string());
                ids.push(record.id);
            }
        }
        Ok(JsonPage {
            items,
            ids,
            next_page_id: has_more
                .then(|| page_keys.last().map(|k| paging::cursor(k)))
                .flatten(),
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
        // Where the page starts: at an event (inclusive) or after one.
        let position = |event_id: &str| -> Result<Option<Vec<u8>>> {
            let Some(time) = self
                .store
                .get(EVENT_IDS, &events::event_id_key(&key, event_id))?
            else {
                return Ok(None);
            };
            Ok(Some(
                [prefix.as_slice(), &time, event_id.as_bytes()].concat(),
            ))
        };
        for (id, inclusive) in [
            (q.page_id.as_deref(), true),
            (q.after_event_id.as_deref(), false),
        ] {
            let Some(id) = id.filter(|i| !i.is_empty()) else {
                continue;
            };
            if let Some(pos) = position(id)? {
                let bound = if inclusive {
                    Bound::Included(pos)
                } else {
                    Bound::Excluded(pos)
                };
                if q.descending {
                    high = tighter_high(high, bound);
                } else {
                    low = tighter_low(low, bound);
                }
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
