//! Event callbacks: subscriptions, and the log of their deliveries.
//!
//! A callback belongs to the user who made it and receives only events of that
//! user's conversations (an admin's receives everyone's). Its secret is never
//! stored: the host derives it from the callback id with a key of its own, and
//! signs each delivery with it (see `deliver`).

mod deliver;

use crate::error::{Error, Result};
use crate::paging::{self, PageStart};
use crate::ports::{Bound, Scan};
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

impl Service<'_> {
    pub fn create_callback(
        &self,
        url: &str,
        conversation_id: Option<&str>,
        event_kinds: Option<Vec<String>>,
    ) -> Result<CallbackRecord> {
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
            id: base62::encode(u128::from_be_bytes(self.env.random_16())),
            url: url.to_owned(),
            conversation_key,
            event_kinds,
            created_by_user_id: self.caller.clone(),
            created_at_us: self.env.now_micros(),
        };
        self.store.commit(vec![
            crate::ports::Op::RequireAbsent {
                table: CALLBACKS,
                key: record.id.as_bytes().to_vec(),
            },
            crate::ports::Op::Put {
                table: CALLBACKS,
                key: record.id.as_bytes().to_vec(),
                value: encode(&record),
            },
        ])?;
        Ok(record)
    }

    pub fn list_callbacks(&self) -> Result<Vec<CallbackRecord>> {
        let mut all = self.load_callbacks()?;
        all.retain(|c| c.visible_to(self.caller()));
        all.sort_by(|a, b| (a.created_at_us, &a.id).cmp(&(b.created_at_us, &b.id)));
        Ok(all)
    }

    pub fn get_callback(&self, id: &str) -> Result<CallbackRecord> {
        let not_found = || Error::NotFound(format!("event callback '{id}' not found"));
        if id.is_empty() || id.len() > 64 {
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
        let start = match paging::parse(page_id).map_err(Error::InvalidInput)? {
            PageStart::After(k) => Bound::Excluded([prefix.as_slice(), &k].concat()),
            PageStart::First => Bound::Included(prefix.clone()),
            PageStart::Offset(_) => {
                return Err(Error::InvalidInput(
                    "delivery pages take the next_page_id of the previous page, not an offset"
                        .into(),
                ));
            }
        };
        let end = schema::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        let rows = self.store.scan(Scan {
            table: DELIVERY_ATTEMPTS,
            start,
            end,
            reverse: false,
            limit: (limit + 1) as u32,
        })?;
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
