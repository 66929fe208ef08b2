//! The per-user cap on running sandboxes (`max_num_sandboxes`).
//!
//! Before a start or a resume, the caller's running sandboxes beyond `max - 1` are
//! paused, oldest first, to make room. This is housekeeping for the call it
//! guards: any failure in it is logged and never fails the start or resume.

use super::Service;
use crate::error::Result;
use crate::model::Status;
use crate::ports::{Bound, Level, Scan};
use crate::schema::{self, SandboxRecord};
use crate::status;

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
        // A caller with no more than `keep` sandboxes at all cannot be over the
        // limit: skip the runtime API's `/list` (one small index scan instead).
        let (table, prefix) = self.scope_index();
        let end = schema::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        let stored = self.store.scan(Scan {
            table,
            start: Bound::Included(prefix),
            end,
            reverse: false,
            limit: u32::try_from(keep + 1).unwrap_or(u32::MAX),
        })?;
        if stored.len() <= keep {
            return Ok(Vec::new());
        }
        let runtimes = self
            .runtime()
            .list()
            .map_err(|e| crate::error::Error::Upstream(e.to_string()))?;
        let mut running: Vec<&str> = runtimes
            .iter()
            .filter(|r| {
                matches!(
                    status::from_runtime(Some(r)),
                    Status::Running | Status::Starting
                )
            })
            .filter_map(|r| r.session_id.as_deref())
            .filter(|id| Some(*id) != except && super::is_valid_id(id))
            .collect();
        running.sort_unstable();
        running.dedup();
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
            match self.pause(&record.id) {
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
}
