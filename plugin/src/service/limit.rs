//! The per-user cap on running sandboxes (`max_num_sandboxes`).
//!
//! Before a start or a resume, the caller's running sandboxes beyond `max - 1` are
//! paused, oldest first, to make room. Only the caller's *active* sandboxes
//! (see `schema::sandboxes`) are counted, and only when there are more than
//! `max - 1` of them is the runtime asked which really run: the cost follows
//! what runs, not what is stored. This is housekeeping for the call it guards:
//! any failure in it is logged and never fails the start or resume.

use super::Service;
use crate::error::Result;
use crate::model::{Cause, Status};
use crate::ports::{Bound, Level, Scan};
use crate::schema::{self, SandboxRecord};
use crate::status;

/// Active-index entries read per scan.
const PAGE: usize = 1_000;
/// Ids per runtime batch request (its URL stays short).
const BATCH: usize = 100;

impl Service<'_> {
    /// Make room for one more running sandbox of the caller. `except` is the
    /// sandbox about to be resumed, which must not be paused to make room for
    /// itself.
    pub(super) fn enforce_limit(&self, except: Option<&str>) {
        match self.pause_oldest_over_limit(except) {
            Ok(paused) if !paused.is_empty() => {
                let list = paused.join(",");
                self.log(
                    Level::Info,
                    "paused the oldest sandboxes to stay within max_num_sandboxes",
                    &[("paused", &list)],
                );
            }
            Ok(_) => {}
            Err(e) => self.log(
                Level::Warn,
                "could not enforce max_num_sandboxes",
                &[("error", &e.to_string())],
            ),
        }
    }

    fn pause_oldest_over_limit(&self, except: Option<&str>) -> Result<Vec<String>> {
        let keep = self.settings.max_num_sandboxes.saturating_sub(1) as usize;
        // Count the caller's active sandboxes (a superset of what runs, see
        // `schema::sandboxes`), not every sandbox they keep: no more than
        // `keep` of them, and nothing can be over the limit.
        let active = self.active_ids(keep + 1)?;
        if active.len() <= keep {
            return Ok(Vec::new());
        }
        let active = self.active_ids(usize::MAX)?;
        let ids: Vec<&str> = active
            .iter()
            .map(String::as_str)
            .filter(|id| Some(*id) != except && super::is_valid_id(id))
            .collect();
        let mut runtimes = std::collections::HashMap::new();
        for chunk in ids.chunks(BATCH) {
            runtimes.extend(
                self.runtime()
                    .batch(chunk)
                    .map_err(|e| crate::error::Error::Upstream(e.to_string()))?,
            );
        }
        let running: Vec<&str> = ids
            .into_iter()
            .filter(|id| {
                matches!(
                    status::from_runtime(runtimes.get(*id)),
                    Status::Running | Status::Starting
                )
            })
            .collect();
        if running.len() <= keep {
            return Ok(Vec::new());
        }
        let mut mine: Vec<SandboxRecord> = self.load_many(&running)?;
        if mine.len() <= keep {
            return Ok(Vec::new());
        }
        mine.sort_by_key(|r| (r.created_at_us, r.id.clone()));
        let excess = mine.len() - keep;
        let mut paused = Vec::new();
        for record in mine.into_iter().take(excess) {
            match self.pause_as(&record, Cause::Limit) {
                Ok(()) => paused.push(record.id),
                Err(e) => self.log(
                    Level::Warn,
                    "could not pause a sandbox over the limit",
                    &[("sandbox_id", &record.id), ("error", &e.to_string())],
                ),
            }
        }
        Ok(paused)
    }

    /// The ids in the caller's part of the active index (everyone's for a
    /// caller who sees all), at most `limit` of them.
    fn active_ids(&self, limit: usize) -> Result<Vec<String>> {
        let prefix = match self.caller() {
            None => Vec::new(),
            Some(user) => schema::owner_prefix(Some(user)),
        };
        let end = schema::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        let mut ids = Vec::new();
        let mut start = Bound::Included(prefix);
        while ids.len() < limit {
            let want = (limit - ids.len()).min(PAGE);
            let page = self.store.scan(Scan {
                table: schema::ACTIVE_BY_OWNER,
                start,
                end: end.clone(),
                reverse: false,
                limit: u32::try_from(want).unwrap_or(u32::MAX),
            })?;
            let full = page.len() == want;
            let Some(last) = page.last().map(|(key, _)| key.clone()) else {
                break;
            };
            ids.extend(
                page.into_iter()
                    .filter_map(|(_, id)| String::from_utf8(id).ok()),
            );
            if !full {
                break;
            }
            start = Bound::Excluded(last);
        }
        Ok(ids)
    }
}
