//! Event callbacks: subscriptions, and the log of their deliveries.
//!
//! A callback belongs to the user who made it and receives only events of that
//! user's conversations (an admin's receives everyone's). Its secret is never
//! stored: the host derives it from the callback id with a key of its own, and
//! signs each delivery with it (see `deliver`).

mod deliver;

use crate::error::{Error, Result};
use crate::paging::{self, PageStart};
use crate::ports::{Bound, Scan, StoreError};
use crate::schema::callbacks::{
    self as schema_cb, AttemptRecord, CALLBACKS, CallbackRecord, DELIVERY_ATTEMPTS,
};
use crate::schema::conversations as conv;
use crate::schema::{self, encode};
use crate::service::Service;

pub use deliver::DeliverySummary;

/// Longest callback URL accepted.
const MAX_URL: usize = 2048;
/// Most event kinds one callback may name.
const MAX_KINDS: usize = 100;
/// Longest callback id.
const MAX_ID: usize = 64;

impl Service<'_> {
    /// Subscribe the caller. The host chooses `id` (it records the URL's
    /// origin in its egress policy first); a taken one is a conflict.
    pub fn create_callback(
        &self,
        id: &str,
        url: &str,
        conversation_id: Option<&str>,
        event_kinds: Option<Vec<String>>,
    ) -> Result<CallbackRecord> {
        if !is_valid_callback_id(id) {
            return Err(Error::InvalidInput(format!(
                "invalid callback id '{}': use 1 to {MAX_ID} letters, digits, '-' or '_'",
                id.chars().take(80).collect::<String>()
            )));
        }
        let url = url.trim();
        validate_url(url)?;
        let conversation_key =
            match conversation_id.map(str::trim).filter(|c| !c.is_empty()) {
                Some(id) => Some(conv::key_of(id).ok_or_else(|| {
                    Error::InvalidInput(format!("'{id}' is not a conversation id"))
                })?),
                None => None,
            };
        if let Some(kinds) = &event_kinds
            && (kinds.len() > MAX_KINDS
                || kinds.iter().any(|k| k.trim().is_empty() || k.len() > 128))
        {
            return Err(Error::InvalidInput(format!(
                "event_kinds must be at most {MAX_KINDS} non-empty names of up to 128 characters"
            )));
        }
        let record = CallbackRecord {
            id: id.to_owned(),
            url: url.to_owned(),
            conversation_key,
            event_kinds,
            created_by_user_id: self.caller.clone(),
            created_at_us: self.env.now_micros(),
        };
        let created = self.store.commit(vec![
            crate::ports::Op::RequireAbsent {
                table: CALLBACKS,
                key: record.id.as_bytes().to_vec(),
            },
            crate::ports::Op::Put {
                table: CALLBACKS,
                key: record.id.as_bytes().to_vec(),
                value: encode(&record),
            },
        ]);
        match created {
            Ok(()) => Ok(record),
            Err(StoreError::Conflict(_)) => Err(Error::Conflict(format!(
                "an event callback with id '{id}' already exists"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub fn list_callbacks(&self) -> Result<Vec<CallbackRecord>> {
        let mut all = self.load_callbacks()?;
        all.retain(|c| c.visible_to(self.caller()));
        all.sort_by(|a, b| (a.created_at_us, &a.id).cmp(&(b.created_at_us, &b.id)));
        Ok(all)
    }

    pub fn get_callback(&self, id: &str) -> Result<CallbackRecord> {
        let not_found = || Error::NotFound(format!("event callback '{id}' not found"));
        if !is_valid_callback_id(id) {
            return Err(not_found());
        }
        match self.store.get(CALLBACKS, id.as_bytes())? {
            Some(bytes) => Some(CallbackRecord::decode(&bytes)?)
                .filter(|c| c.visible_to(self.caller()))
                .ok_or_else(not_found),
            None => Err(not_found()),
        }
    }

    /// Remove a callback; deliveries still queued for it are dropped when due.
    pub fn delete_callback(&self, id: &str) -> Result<()> {
        let record = self.get_callback(id)?;
        self.store.commit(vec![
            crate::ports::Op::RequireValue {
                table: CALLBACKS,
                key: record.id.as_bytes().to_vec(),
                value: encode(&record),
            },
            crate::ports::Op::Delete {
                table: CALLBACKS,
                key: record.id.as_bytes().to_vec(),
            },
        ])?;
        Ok(())
    }

    /// The delivery log of one callback, newest attempt first.
    pub fn callback_deliveries(
        &self,
        id: &str,
        page_id: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<AttemptRecord>, Option<String>)> {
        let record = self.get_callback(id)?;
        let limit = limit.clamp(1, 100) as usize;
        let prefix = schema_cb::attempts_prefix(&record.id);
        let (start, skip) = match paging::parse(page_id) {
            PageStart::After(k) => (Bound::Excluded([prefix.as_slice(), &k].concat()), 0),
            PageStart::First => (Bound::Included(prefix.clone()), 0),
            PageStart::Offset(n) => (
                Bound::Included(prefix.clone()),
                usize::try_from(n).unwrap_or(usize::MAX),
            ),
        };
        let end = schema::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        let rows = self.store.scan(Scan {
            table: DELIVERY_ATTEMPTS,
            start,
            end,
            reverse: false,
            limit: u32::try_from(skip.saturating_add(limit + 1)).unwrap_or(u32::MAX),
        })?;
        let rows = &rows[skip.min(rows.len())..];
        let has_more = rows.len() > limit;
        let page = &rows[..rows.len().min(limit)];
        let items = page
            .iter()
            .map(|(_, v)| AttemptRecord::decode(v))
            .collect::<Result<Vec<_>>>()?;
        let next = has_more
            .then(|| page.last().map(|(k, _)| paging::cursor(&k[prefix.len()..])))
            .flatten();
        Ok((items, next))
    }
}

/// Callback ids are path segments and storage keys: 1 to [`MAX_ID`] ASCII
/// letters, digits, `-` and `_` (the host makes base62 ones).
fn is_valid_callback_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// An absolute `http` or `https` URL with a host.
fn validate_url(url: &str) -> Result<()> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "url must start with http:// or https://, got '{}'",
                url.chars().take(80).collect::<String>()
            ))
        })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || host.starts_with('@') || host.starts_with(':') {
        return Err(Error::InvalidInput("url has no host".into()));
    }
    if url.len() > MAX_URL || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::InvalidInput(format!(
            "url must be at most {MAX_URL} characters without spaces"
        )));
    }
    Ok(())
}
