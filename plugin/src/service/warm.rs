//! The warm pools: sandboxes of a spec started ahead of any request
//! (`Settings::warm_pools`), so that a start is answered `RUNNING` at once.
//!
//! - Taking: a start that asks for no particular id takes a sandbox of its
//!   spec's pool that the runtime reports running ([`Service::take_warm`]). One
//!   durable commit, conditional on the record being as read, makes it the
//!   caller's: owner, creation time, active index, first history entry. Two
//!   starts racing for one warm sandbox cannot both get it; the loser tries
//!   the next, and with none left starts one as if there were no pool.
//! - Keeping: the policy pass tops each pool up to its size
//!   ([`Service::keep_warm_pools`]) and removes the warm sandboxes the
//!   runtime reports failed (or paused, or gone), those past the start timeout,
//!   and those beyond the pool's size. One host keeps each pool: the one whose
//!   share holds the spec id.
//! - Removing: a warm sandbox is first marked `leaving` (no start takes it from
//!   then on), then its runtime is stopped, then its record goes; a failure in
//!   between leaves it `leaving`, and the next pass finishes the job. No
//!   runtime is left without a record.
//!
//! What a user gets is fresh: the session key was made by the runtime for that
//! sandbox when the pool started it, and is shown to no one before the start
//! that takes it (sandboxd stores only its hash, as for any sandbox); nothing
//! but the agent server's own start-up ran in its workspace. A warm sandbox has
//! no owner, is visible to no caller, is in no listing and counts against no
//! limit until it is taken (`schema::sandboxes`).

use std::collections::{BTreeMap, HashMap};

use super::policy::PassSummary;
use super::{Durability, Service};
use crate::error::{Error, Result};
use crate::model::{Cause, SandboxInfo, Status};
use crate::ports::{Bound, Level, Scan, StoreError};
use crate::runtime::Runtime;
use crate::schema::{self, Phase, SandboxRecord, WARM, Warm};
use crate::session_key;
use crate::share::Share;

/// Warm sandboxes a start considers (the oldest first).
const TAKE_CANDIDATES: u32 = 8;
/// Sandboxes per runtime batch request.
const BATCH: usize = 100;
/// Most warm sandboxes one pass starts for one pool: a large pool fills over
/// a few passes instead of stalling one.
const STARTS_PER_PASS: usize = 10;

impl Service<'_> {
    /// A running sandbox of `spec_id`'s warm pool, handed to the caller; none
    /// if the pool has none running (or the runtime cannot say).
    pub(super) fn take_warm(&self, spec_id: &str) -> Result<Option<SandboxInfo>> {
        if self.settings.warm_of(spec_id) == 0 {
            return Ok(None);
        }
        let pooled = self.pooled(spec_id)?;
        if pooled.is_empty() {
            return Ok(None);
        }
        let ids: Vec<&str> = pooled.iter().map(|r| r.id.as_str()).collect();
        let runtimes = match self.runtime().batch(&ids) {
            Ok(runtimes) => runtimes,
            Err(e) => {
                self.log(
                    Level::Warn,
                    "could not ask the runtime about the warm pool; starting a sandbox instead",
                    &[("spec", spec_id), ("error", &e.to_string())],
                );
                return Ok(None);
            }
        };
        for record in &pooled {
            let Some(runtime) = runtimes.get(&record.id) else {
                continue;
            };
            let Some(key) = runtime.session_api_key.as_deref() else {
                continue;
            };
            if self.live_status(record, Some(runtime)).0 != Status::Running {
                continue;
            }
            let now = self.env.now_micros();
            let mut taken = record.clone();
            taken.warm = None;
            taken.created_by_user_id = self.caller.clone();
            taken.created_at_us = now;
            taken.started_at_us = now;
            taken.session_api_key_hash = Some(session_key::hash(key));
            let history = self.change_ops(&mut taken, Status::Running, Cause::User, None)?;
            let mut ops = taken.update_ops(record);
            ops.extend(history);
            match self.store.commit(ops) {
                Ok(()) => {
                    self.log(
                        Level::Info,
                        "warm sandbox handed out",
                        &[("sandbox_id", &taken.id), ("spec", spec_id)],
                    );
                    return Ok(Some(self.to_info(&taken, Some(runtime))));
                }
                // Taken by a racing start, or leaving: the next one.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// The first [`TAKE_CANDIDATES`] sandboxes of `spec_id`'s pool that a
    /// start may take (started, not leaving), the oldest first.
    fn pooled(&self, spec_id: &str) -> Result<Vec<SandboxRecord>> {
        let prefix = schema::warm_prefix(spec_id);
        let entries = self.store.scan(Scan {
            table: WARM,
            start: Bound::Included(prefix.clone()),
            end: schema::prefix_end(&prefix).map_or(Bound::Unbounded, Bound::Excluded),
            reverse: true,
            limit: TAKE_CANDIDATES,
        })?;
        let mut records = Vec::with_capacity(entries.len());
        for (_, id) in entries {
            if let Some(bytes) = self.store.get(schema::SANDBOXES, &id)? {
                let record = SandboxRecord::decode(&bytes)?;
                if record.phase == Phase::Started && record.warm == Some(Warm::Pooled) {
                    records.push(record);
                }
            }
        }
        Ok(records)
    }

    /// Keep every warm pool whose spec id `share` holds at its size; `warm`
    /// are all the stored warm sandboxes. Failures go into the summary.
    pub(super) fn keep_warm_pools(
        &self,
        share: &Share,
        warm: Vec<SandboxRecord>,
        summary: &mut PassSummary,
    ) {
        let mut pools: BTreeMap<String, Vec<SandboxRecord>> = BTreeMap::new();
        for (spec_id, size) in &self.settings.warm_pools {
            if *size > 0 {
                pools.entry(spec_id.clone()).or_default();
            }
        }
        for record in warm {
            pools
                .entry(record.sandbox_spec_id.clone())
                .or_default()
                .push(record);
        }
        for (spec_id, records) in pools {
            if !share.holds(&spec_id) {
                continue;
            }
            if let Err(e) = self.keep_pool(&spec_id, records, summary) {
                summary
                    .failures
                    .push((format!("warm pool {spec_id}"), e.to_string()));
            }
        }
    }

    fn keep_pool(
        &self,
        spec_id: &str,
        records: Vec<SandboxRecord>,
        summary: &mut PassSummary,
    ) -> Result<()> {
        let size = self.settings.warm_of(spec_id) as usize;
        // A start of the pool still in flight (or cut off by a crash, which
        // reconciliation settles) counts as coming.
        let (started, in_flight): (Vec<SandboxRecord>, Vec<SandboxRecord>) =
            records.into_iter().partition(|r| r.phase == Phase::Started);
        let mut runtimes: HashMap<String, Runtime> = HashMap::new();
        for chunk in started.chunks(BATCH) {
            let ids: Vec<&str> = chunk.iter().map(|r| r.id.as_str()).collect();
            runtimes.extend(
                self.runtime()
                    .batch(&ids)
                    .map_err(|e| Error::Upstream(format!("cannot see the warm pool: {e}")))?,
            );
        }
        let (mut ready, mut coming, mut leaving) = (Vec::new(), Vec::new(), Vec::new());
        for record in started {
            if record.warm == Some(Warm::Leaving) {
                leaving.push(record);
                continue;
            }
            match self.live_status(&record, runtimes.get(&record.id)).0 {
                Status::Running => ready.push(record),
                Status::Starting => coming.push(record),
                Status::Paused | Status::Error | Status::Missing => leaving.push(record),
            }
        }
        // Beyond the size (it shrank): those still starting go first.
        while ready.len() + coming.len() + in_flight.len() > size {
            match coming.pop().or_else(|| ready.pop()) {
                Some(extra) => leaving.push(extra),
                None => break,
            }
        }
        for record in &leaving {
            if let Err(e) = self.remove_warm(record) {
                summary.failures.push((record.id.clone(), e.to_string()));
            }
        }
        summary.warm_ready += u32::try_from(ready.len()).unwrap_or(u32::MAX);
        let have = ready.len() + coming.len() + in_flight.len();
        let Some(spec) = self.settings.specs.iter().find(|s| s.id == spec_id) else {
            return Ok(());
        };
        for _ in 0..size.saturating_sub(have).min(STARTS_PER_PASS) {
            let (stored, runtime) = self.launch(spec, self.new_id(), Some(Warm::Pooled))?;
            summary.warm_started += 1;
            if self.live_status(&stored, runtime.as_ref()).0 == Status::Running {
                summary.warm_ready += 1;
            }
        }
        Ok(())
    }

    /// Take `record` out of its pool for good: out of reach of any start
    /// first, then its runtime stopped, then the record forgotten.
    fn remove_warm(&self, record: &SandboxRecord) -> Result<()> {
        let leaving = if record.warm == Some(Warm::Leaving) {
            record.clone()
        } else {
            // Relaxed: if a crash loses the mark, the next pass marks it again.
            let marked = self.update_with(&record.id, Durability::Relaxed, |r| {
                if r.warm.is_some() {
                    r.warm = Some(Warm::Leaving);
                }
                Ok(Vec::new())
            })?;
            match marked {
                Some(r) if r.warm == Some(Warm::Leaving) => r,
                // Taken by a start meanwhile, or gone: not the pool's any more.
                _ => return Ok(()),
            }
        };
        let id = leaving.id.as_str();
        let runtime = self.runtime().get(id).map_err(super::lifecycle::upstream)?;
        if let Some(runtime) = runtime {
            let runtime_id = runtime
                .runtime_id
                .ok_or_else(|| super::lifecycle::no_runtime_id(id))?;
            self.runtime()
                .stop(&runtime_id)
                .map_err(super::lifecycle::upstream)?;
        }
        match self.store.commit(leaving.delete_ops()) {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.log(
            Level::Info,
            "warm sandbox removed",
            &[("sandbox_id", id), ("spec", &leaving.sandbox_spec_id)],
        );
        Ok(())
    }
}
