//! The status history: recording each change with its cause, and reading it.
//!
//! [`Service::change_ops`] is the one way a change is recorded: it updates the
//! record's last status and returns the history entry and the lifecycle event's
//! deliveries, for the caller to commit with the change itself. Nothing is
//! recorded when the status did not change, so a change is recorded once
//! whichever road (an API call, the policy pass, reconciliation) saw it first.

use super::Service;
use super::read::MAX_PAGE;
use crate::error::{Error, Result};
use crate::model::{Cause, HistoryPage, Status, StatusChange};
use crate::paging;
use crate::ports::{Bound, Op, Scan};
use crate::schema::callbacks::DeliveryRecord;
use crate::schema::history::{self, HistoryRecord};
use crate::schema::{self, SandboxRecord};
use crate::time;

impl Service<'_> {
    /// Record that `record` (as it is about to be stored) is now `status`,
    /// because of `cause`. Sets its last status; returns the entry and one
    /// delivery per callback of the owner that asked for `SandboxStatusEvent`
    /// (none when the status is unchanged, or for a warm sandbox nobody was
    /// handed yet).
    pub(crate) fn change_ops(
        &self,
        record: &mut SandboxRecord,
        status: Status,
        cause: Cause,
        detail: Option<String>,
    ) -> Result<Vec<Op>> {
        // A warm sandbox's history begins when a start hands it out.
        if record.status == Some(status) || record.warm.is_some() {
            return Ok(Vec::new());
        }
        let now = self.env.now_micros();
        let entry = HistoryRecord {
            id: hex::encode(&self.env.random_16()[..8]),
            sandbox_id: record.id.clone(),
            owner: record.created_by_user_id.clone(),
            at_us: now,
            status,
            previous_status: record.status,
            cause,
            detail,
        };
        record.status = Some(status);
        record.status_at_us = now;
        let mut ops = vec![entry.put()];
        for callback in self.load_callbacks()? {
            if callback.wants_status_of(entry.owner.as_deref()) {
                ops.extend(
                    DeliveryRecord::for_status_change(&callback.id, &entry, now).insert_ops(),
                );
            }
        }
        Ok(ops)
    }

    /// The ops that end a deleted sandbox's history: its last entry, and its
    /// purge after `history_retention_secs`.
    pub(crate) fn deletion_ops(&self, record: &SandboxRecord, cause: Cause) -> Result<Vec<Op>> {
        if record.warm.is_some() {
            return Ok(Vec::new());
        }
        let mut gone = record.clone();
        let mut ops = self.change_ops(&mut gone, Status::Missing, cause, Some("deleted".into()))?;
        let retention = i64::from(self.settings.history_retention_secs) * 1_000_000;
        ops.push(history::expiry_put(
            &record.id,
            self.env.now_micros().saturating_add(retention),
        ));
        Ok(ops)
    }

    /// Sandbox `id`'s status changes, newest first; scoped like `get`, and
    /// readable after the sandbox was deleted until its history is purged.
    pub fn history(&self, id: &str, page_id: Option<&str>, limit: u32) -> Result<HistoryPage> {
        if !super::is_valid_id(id) {
            return Err(Error::sandbox_not_found(id));
        }
        let limit = limit.clamp(1, MAX_PAGE);
        let prefix = history::prefix(id);
        let (rows, next_page_id) =
            paging::read_page(self.store, history::HISTORY, &prefix, page_id, limit)?;
        let mut items = Vec::with_capacity(rows.len());
        for (_, value) in rows {
            let entry = HistoryRecord::decode(&value)?;
            if !entry.visible_to(self.caller()) {
                return Err(Error::sandbox_not_found(id));
            }
            items.push(StatusChange {
                at: time::iso8601(entry.at_us),
                status: entry.status,
                previous_status: entry.previous_status,
                cause: entry.cause,
                detail: entry.detail,
            });
        }
        // No entry (a sandbox stored before histories were kept, or a page past
        // the end): the sandbox itself decides between an empty page and 404.
        if items.is_empty() && self.find_visible(id)?.is_none() && !self.history_visible(id)? {
            return Err(Error::sandbox_not_found(id));
        }
        Ok(HistoryPage {
            items,
            next_page_id,
        })
    }

    /// Whether sandbox `id` has a history entry the caller may read.
    fn history_visible(&self, id: &str) -> Result<bool> {
        let prefix = history::prefix(id);
        let first = self.store.scan(Scan {
            table: history::HISTORY,
            start: Bound::Included(prefix.clone()),
            end: schema::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded),
            reverse: false,
            limit: 1,
        })?;
        match first.first() {
            Some((_, value)) => Ok(HistoryRecord::decode(value)?.visible_to(self.caller())),
            None => Ok(false),
        }
    }
}
