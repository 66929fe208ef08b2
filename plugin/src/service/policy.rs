//! The policy pass: what the host runs every `[lifecycle] interval`.
//!
//! One pass reads every stored sandbox in the share. For those whose spec has
//! a policy on, it asks the runtime about them in batches of [`BATCH`], and for
//! each one:
//! 1. records a status the runtime reports that the history does not have yet
//!    ([`Service::observe`]);
//! 2. applies the sandbox's policy (its spec's, see `Settings::policy_of`):
//!    `max_running` and `idle_pause` pause a running sandbox, and
//!    `delete_paused_after` deletes one paused or in error. A policy acts at
//!    most once per start or resume (`SandboxRecord::acted`), so a pause the
//!    runtime is slow to show is not asked for again;
//! 3. drops an old session key whose teardown grace ended (for every sandbox:
//!    this needs no runtime).
//!
//! With no policy on, the pass asks the runtime nothing: what the runtime does
//! on its own is recorded by reconciliation, which reads `/list` anyway.
//!
//! Then it purges the histories of sandboxes deleted longer ago than the
//! retention, and keeps the warm pools full (`warm`; warm sandboxes are no
//! policy's business until a start takes them). A failure on one sandbox is reported in the summary and the pass
//! goes on; a runtime batch that fails skips its sandboxes (their status is
//! unknown, and unknown is not a reason to act).

use super::read::Lookup;
use super::{Durability, Service};
use crate::error::{Error, Result};
use crate::model::{Cause, LifecyclePolicy, Status};
use crate::ports::{Bound, Op, Scan, StoreError};
use crate::runtime::Runtime;
use crate::schema::conversations::{CONVERSATIONS, ConversationRecord};
use crate::schema::history::{self, HISTORY, HISTORY_EXPIRY};
use crate::schema::{self, Phase, SandboxRecord, time_of_key};
use crate::share::Share;

/// Sandboxes per runtime batch request.
const BATCH: usize = 100;
/// How old the last recorded change must be before a different status the
/// runtime reports is recorded as the runtime's.
pub const SETTLE_US: i64 = 15_000_000;
/// Expired histories purged per pass (the rest wait for the next).
const PURGE_PER_PASS: u32 = 100;
/// The execution status of a conversation whose agent is working.
const RUNNING_EXECUTION: &str = "running";

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PassSummary {
    pub sandboxes: u32,
    pub observed: u32,
    pub paused: u32,
    pub deleted: u32,
    pub keys_retired: u32,
    pub histories_purged: u32,
    pub warm_started: u32,
    pub warm_ready: u32,
    pub failures: Vec<(String, String)>,
}

impl Service<'_> {
    pub fn lifecycle_pass(&self, share: &Share) -> Result<PassSummary> {
        if self.caller().is_some() {
            return Err(Error::Unauthorized(
                "the policy pass is for the host".into(),
            ));
        }
        let (warm, records): (Vec<SandboxRecord>, Vec<SandboxRecord>) = self
            .all_records()?
            .into_values()
            .partition(|r| r.warm.is_some());
        let mut records: Vec<SandboxRecord> = records
            .into_iter()
            .filter(|r| share.holds(&r.id) && r.phase == Phase::Started)
            .collect();
        records.sort_by(|a, b| a.id.cmp(&b.id));
        let mut summary = PassSummary {
            sandboxes: u32::try_from(records.len()).unwrap_or(u32::MAX),
            ..PassSummary::default()
        };
        let (policed, unpoliced): (Vec<SandboxRecord>, Vec<SandboxRecord>) = records
            .into_iter()
            .partition(|r| self.settings.policy_of(&r.sandbox_spec_id).any());
        let now = self.env.now_micros();
        for record in &unpoliced {
            if let Err(e) = self.retire_expired_key(record, now, &mut summary) {
                summary.failures.push((record.id.clone(), e.to_string()));
            }
        }
        for chunk in policed.chunks(BATCH) {
            let lookup = self.runtimes_of(chunk);
            if let Some(why) = &lookup.failure {
                for r in chunk {
                    summary.failures.push((r.id.clone(), why.clone()));
                }
                continue;
            }
            for record in chunk {
                if let Err(e) = self.apply_policy(record, &lookup, &mut summary) {
                    summary.failures.push((record.id.clone(), e.to_string()));
                }
            }
        }
        match self.purge_histories() {
            Ok(n) => summary.histories_purged = n,
            Err(e) => summary.failures.push(("history".into(), e.to_string())),
        }
        self.keep_warm_pools(share, warm, &mut summary);
        Ok(summary)
    }

    fn apply_policy(
        &self,
        record: &SandboxRecord,
        lookup: &Lookup,
        summary: &mut PassSummary,
    ) -> Result<()> {
        let now = self.env.now_micros();
        let record = self.retire_expired_key(record, now, summary)?;
        let runtime = lookup.runtimes.get(&record.id);
        let info = lookup.info(self, &record);
        let record = match self.observe(&record, runtime)? {
            Some(stored) => {
                summary.observed += 1;
                stored
            }
            None => record,
        };

        let policy = self.settings.policy_of(&record.sandbox_spec_id);
        match info.status {
            Status::Running => {
                if let Some(cause) = self.pause_reason(&record, &policy, now)? {
                    self.pause_as(&record, cause)?;
                    summary.paused += 1;
                }
            }
            Status::Paused | Status::Error => {
                // A delete that fails is tried again next pass: the sandbox is
                // still there, so nothing was done twice.
                if let Some(after) = policy.delete_paused_after_secs
                    && record.status == Some(info.status)
                    && now.saturating_sub(record.status_at_us) >= secs(after)
                {
                    self.delete_as(&record, Cause::Ttl)?;
                    summary.deleted += 1;
                }
            }
            Status::Starting | Status::Missing => {}
        }
        Ok(())
    }

    /// Drop `record`'s old session key if its teardown grace ended; the record
    /// as stored afterwards.
    fn retire_expired_key(
        &self,
        record: &SandboxRecord,
        now: i64,
        summary: &mut PassSummary,
    ) -> Result<SandboxRecord> {
        if record.retired_key.as_ref().is_none_or(|k| k.until_us > now) {
            return Ok(record.clone());
        }
        let stored = self.update_with(&record.id, Durability::Relaxed, |r| {
            r.retired_key = r.retired_key.take().filter(|k| k.until_us > now);
            Ok(Vec::new())
        })?;
        summary.keys_retired += 1;
        Ok(stored.unwrap_or_else(|| record.clone()))
    }

    /// Record the status `runtime` shows for `record` if the history does not
    /// have it yet (cause `runtime`, or `start_timeout` for a start that ran
    /// out of time), once the last recorded change is [`SETTLE_US`] old: a
    /// pause or resume sandboxd just asked for may not show in every runtime's
    /// answer yet, and must not be recorded as undone. The record as stored
    /// afterwards, if this recorded anything. For the policy pass and
    /// reconciliation, which have the runtime's answer at hand.
    pub(super) fn observe(
        &self,
        record: &SandboxRecord,
        runtime: Option<&Runtime>,
    ) -> Result<Option<SandboxRecord>> {
        if record.phase != Phase::Started || record.warm.is_some() {
            return Ok(None);
        }
        let (status, detail) = self.live_status(record, runtime);
        let now = self.env.now_micros();
        let settled = now.saturating_sub(record.status_at_us) >= SETTLE_US;
        if record.status == Some(status) || (record.status.is_some() && !settled) {
            return Ok(None);
        }
        let cause = if detail.is_some() {
            Cause::StartTimeout
        } else {
            Cause::Runtime
        };
        let detail = detail.or_else(|| runtime.and_then(|r| r.status_detail.clone()));
        // Only if the record is still as read (the update's precondition): a
        // change made meanwhile (a pause, a resume) is newer news than this
        // runtime answer.
        let mut changed = record.clone();
        let extra = self.change_ops(&mut changed, status, cause, detail)?;
        let mut ops = changed.update_ops(record);
        ops.extend(extra);
        // Relaxed: a crash that loses it loses nothing, the next pass sees the
        // same difference and records it (with its deliveries) again.
        match self.store.commit_relaxed(ops) {
            Ok(()) => Ok(Some(changed)),
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Why `record`'s running sandbox is to be paused now, if it is.
    fn pause_reason(
        &self,
        record: &SandboxRecord,
        policy: &LifecyclePolicy,
        now: i64,
    ) -> Result<Option<Cause>> {
        if let Some(max) = policy.max_running_secs
            && record.acted != Some(Cause::MaxRunning)
            && now.saturating_sub(record.started_at_us) >= secs(max)
        {
            return Ok(Some(Cause::MaxRunning));
        }
        if let Some(idle) = policy.idle_pause_secs
            && record.acted != Some(Cause::Idle)
            && now.saturating_sub(record.started_at_us) >= secs(idle)
        {
            let last = self.last_activity_us(record)?;
            if last.is_some_and(|at| now.saturating_sub(at) >= secs(idle)) {
                return Ok(Some(Cause::Idle));
            }
        }
        Ok(None)
    }

    /// When the agent in `record`'s sandbox was last seen working: its start
    /// or resume, a conversation's last status change, its newest event. None
    /// while a conversation is running: a working agent is never idle.
    fn last_activity_us(&self, record: &SandboxRecord) -> Result<Option<i64>> {
        let keys: Vec<Vec<u8>> = self
            .conversation_keys_of(&record.id)?
            .into_iter()
            .map(String::into_bytes)
            .collect();
        let mut last = record.started_at_us;
        for bytes in self
            .store
            .get_many(CONVERSATIONS, &keys)?
            .into_iter()
            .flatten()
        {
            let conversation = ConversationRecord::decode(&bytes)?;
            if conversation.execution_status.as_deref() == Some(RUNNING_EXECUTION) {
                return Ok(None);
            }
            last = last
                .max(conversation.status_at_us)
                .max(conversation.max_event_us.unwrap_or(i64::MIN));
        }
        Ok(Some(last))
    }

    /// Remove the histories whose retention ended; how many.
    fn purge_histories(&self) -> Result<u32> {
        let now = self.env.now_micros();
        let expired = self.store.scan(Scan {
            table: HISTORY_EXPIRY,
            start: Bound::Unbounded,
            end: Bound::Excluded(schema::time_key(now).to_vec()),
            reverse: false,
            limit: PURGE_PER_PASS,
        })?;
        let mut purged = 0;
        for (key, _) in expired {
            let (Some(_), Some(id)) = (time_of_key(&key), key.get(8..)) else {
                continue;
            };
            let prefix = history::prefix(&String::from_utf8_lossy(id));
            let entries = self.scan_all_under(HISTORY, &prefix)?;
            let mut ops: Vec<Op> = entries
                .into_iter()
                .map(|(key, _)| Op::Delete {
                    table: HISTORY,
                    key,
                })
                .collect();
            ops.push(Op::Delete {
                table: HISTORY_EXPIRY,
                key,
            });
            self.store.commit_relaxed(ops)?;
            purged += 1;
        }
        Ok(purged)
    }

    /// Every entry of `table` under `prefix`.
    fn scan_all_under(
        &self,
        table: &'static str,
        prefix: &[u8],
    ) -> Result<Vec<crate::ports::Entry>> {
        let end = schema::prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded);
        let mut all = Vec::new();
        let mut start = Bound::Included(prefix.to_vec());
        loop {
            let page = self.store.scan(Scan {
                table,
                start,
                end: end.clone(),
                reverse: false,
                limit: 1_000,
            })?;
            let full = page.len() == 1_000;
            let last = page.last().map(|(k, _)| k.clone());
            all.extend(page);
            match (full, last) {
                (true, Some(k)) => start = Bound::Excluded(k),
                _ => return Ok(all),
            }
        }
    }
}

fn secs(s: u32) -> i64 {
    i64::from(s) * 1_000_000
}
