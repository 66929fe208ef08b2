//! Reconciliation: the runtime API's `/list` against the store, repaired.
//!
//! Two kinds of disagreement can outlive a crash or a lost answer:
//! - an orphan: a runtime the runtime API lists that no record claims (a start
//!   whose failure was reported but which the runtime carried out later, a
//!   record lost to a bug). It is stopped, adopted, or only reported, by policy.
//! - a half-way start: a record still in phase `starting` although the call that
//!   wrote it is surely over (its process died, or its deadline passed). If the
//!   runtime exists, the start is completed (phase `started`, key hash stored);
//!   if the runtime API does not know it, the record goes; if that cannot be
//!   known, it stays for the next pass.
//!
//! Ordering invariant: `/list` is read *before* the store. A start writes its
//! record before asking the runtime, so any runtime in the list that came from a
//! start has its record in the store by the time the store is read; a runtime
//! is never taken for an orphan because its start was still in flight.
//!
//! A pass also records in the history what `/list` says that sandboxd did not
//! do (a sandbox that stopped by itself), through `Service::observe`, which
//! leaves alone a sandbox changed in the last seconds (the older `/list` may
//! not show that change yet).

use std::collections::HashMap;

use super::{Durability, Service};
use crate::error::{Error, Result};
use crate::model::{Cause, Status};
use crate::ports::{Bound, Level, Scan};
use crate::runtime::Runtime;
use crate::runtime::client::Action;
use crate::schema::{self, Phase, SandboxRecord};
use crate::share::Share;
use crate::{session_key, status};

/// Records read from the store per scan.
const SCAN_PAGE: u32 = 1_000;

/// What to do with a runtime no record claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanPolicy {
    /// Stop it: sandboxd owns every runtime of its runtime API key.
    Stop,
    /// Record it as a sandbox owned by no user (admins see it).
    Adopt,
    /// Only report it.
    Keep,
}

/// What one pass found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileSummary {
    pub runtimes: u32,
    pub records: u32,
    pub orphans: u32,
    pub stopped: u32,
    pub adopted: u32,
    pub completed: u32,
    pub removed: u32,
    /// Sandbox (or session) id and what went wrong.
    pub failures: Vec<(String, String)>,
    /// The stored sandboxes by status after the pass, as `/list` showed them.
    pub statuses: StatusCounts,
}

/// How many sandboxes are in each status.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StatusCounts {
    pub starting: u32,
    pub running: u32,
    pub paused: u32,
    pub error: u32,
    pub missing: u32,
}

impl StatusCounts {
    fn count(&mut self, status: Status) {
        let n = match status {
            Status::Starting => &mut self.starting,
            Status::Running => &mut self.running,
            Status::Paused => &mut self.paused,
            Status::Error => &mut self.error,
            Status::Missing => &mut self.missing,
        };
        *n += 1;
    }
}

/// The spec id recorded for an adopted runtime (its real spec is unknown).
pub const ADOPTED_SPEC: &str = "adopted";

impl Service<'_> {
    /// One pass over the runtimes and records in `share`. Records in phase
    /// `starting` whose start began before `stuck_before_us` are taken as
    /// half-way starts. Acts for everyone: the host calls it with no user.
    pub fn reconcile(
        &self,
        orphans: OrphanPolicy,
        stuck_before_us: i64,
        share: &Share,
    ) -> Result<ReconcileSummary> {
        if self.caller().is_some() {
            return Err(Error::Unauthorized(
                "reconciliation is for the host and admins".into(),
            ));
        }
        let listed = self
            .runtime()
            .list()
            .map_err(|e| Error::Upstream(format!("cannot reconcile: {e}")))?;
        let records = self.all_records()?;
        let mut summary = ReconcileSummary {
            runtimes: u32::try_from(listed.len()).unwrap_or(u32::MAX),
            records: u32::try_from(records.len()).unwrap_or(u32::MAX),
            ..ReconcileSummary::default()
        };
        let by_session: HashMap<&str, &Runtime> = listed
            .iter()
            .filter_map(|rt| Some((rt.session_id.as_deref()?, rt)))
            .collect();

        for runtime in &listed {
            let Some(session_id) = runtime.session_id.as_deref() else {
                continue;
            };
            if records.contains_key(session_id)
                || runtime.status.as_deref() == Some("stopped")
                || !share.holds(session_id)
            {
                continue;
            }
            summary.orphans += 1;
            self.orphan(runtime, session_id, orphans, &mut summary);
        }

        for record in records.values().filter(|r| share.holds(&r.id)) {
            let listed = by_session.get(record.id.as_str()).copied();
            let kept = !(record.phase == Phase::Starting
                && record.started_at_us < stuck_before_us
                && !self.half_way(record, listed, &mut summary));
            if kept {
                summary.statuses.count(self.to_info(record, listed).status);
                // `/list` is the runtime's word on every sandbox: what changed
                // without sandboxd goes into the history (cause `runtime`).
                if let Err(e) = self.observe(record, listed) {
                    summary.failures.push((record.id.clone(), e.to_string()));
                }
            }
        }
        self.repair_active_index(&records, share, &mut summary);
        if summary.orphans + summary.completed + summary.removed > 0 || !summary.failures.is_empty()
        {
            let counts = format!(
                "orphans={} stopped={} adopted={} completed={} removed={} failures={}",
                summary.orphans,
                summary.stopped,
                summary.adopted,
                summary.completed,
                summary.removed,
                summary.failures.len()
            );
            self.log(
                Level::Warn,
                "reconciliation repaired the store or the runtimes",
                &[("counts", &counts)],
            );
        }
        Ok(summary)
    }

    fn orphan(
        &self,
        runtime: &Runtime,
        session_id: &str,
        policy: OrphanPolicy,
        summary: &mut ReconcileSummary,
    ) {
        let runtime_id = runtime.runtime_id.as_deref().unwrap_or("unknown");
        match policy {
            OrphanPolicy::Keep => {
                self.log(
                    Level::Warn,
                    "a runtime has no sandbox record (kept, by policy)",
                    &[("session_id", session_id), ("runtime_id", runtime_id)],
                );
            }
            OrphanPolicy::Stop => {
                let Some(id) = runtime.runtime_id.as_deref() else {
                    summary.failures.push((
                        session_id.into(),
                        "the runtime API listed it without a runtime_id".into(),
                    ));
                    return;
                };
                match self.runtime().stop(id) {
                    Ok(Action::Done(_) | Action::NotFound) => {
                        summary.stopped += 1;
                        self.log(
                            Level::Warn,
                            "stopped a runtime that had no sandbox record",
                            &[("session_id", session_id), ("runtime_id", runtime_id)],
                        );
                    }
                    Err(e) => summary.failures.push((session_id.into(), e.to_string())),
                }
            }
            OrphanPolicy::Adopt => {
                if !super::is_valid_id(session_id) {
                    summary.failures.push((
                        session_id.into(),
                        "not a valid sandbox id; cannot adopt".into(),
                    ));
                    return;
                }
                let now = self.env.now_micros();
                let mut record = SandboxRecord {
                    id: session_id.to_owned(),
                    created_by_user_id: None,
                    sandbox_spec_id: ADOPTED_SPEC.into(),
                    session_api_key_hash: runtime.session_api_key.as_deref().map(session_key::hash),
                    created_at_us: now,
                    started_at_us: now,
                    phase: Phase::Started,
                    status: None,
                    status_at_us: 0,
                    retired_key: None,
                    acted: None,
                    warm: None,
                };
                let status = self.live_status(&record, Some(runtime)).0;
                let recorded = self.change_ops(
                    &mut record,
                    status,
                    Cause::Reconcile,
                    Some("adopted a runtime that had no sandbox record".into()),
                );
                let ops = recorded.map(|extra| {
                    let mut ops = record.insert_ops();
                    ops.extend(extra);
                    ops
                });
                let committed = match ops {
                    Ok(ops) => self.store.commit(ops),
                    Err(e) => {
                        summary.failures.push((session_id.into(), e.to_string()));
                        return;
                    }
                };
                match committed {
                    Ok(()) => {
                        summary.adopted += 1;
                        summary.statuses.count(status::from_runtime(Some(runtime)));
                        self.log(
                            Level::Warn,
                            "adopted a runtime that had no sandbox record",
                            &[("sandbox_id", session_id), ("runtime_id", runtime_id)],
                        );
                    }
                    // A start claimed it meanwhile: not an orphan after all.
                    Err(crate::ports::StoreError::Conflict(_)) => summary.orphans -= 1,
                    Err(e) => summary.failures.push((session_id.into(), format!("{e:?}"))),
                }
            }
        }
    }

    /// Finish or undo a start whose call is over; false when the record went.
    fn half_way(
        &self,
        record: &SandboxRecord,
        listed: Option<&Runtime>,
        summary: &mut ReconcileSummary,
    ) -> bool {
        let found = match listed {
            Some(runtime) => Ok(Some(runtime.clone())),
            None => self.runtime().get(&record.id),
        };
        match found {
            Ok(Some(runtime)) => {
                let hash = runtime.session_api_key.as_deref().map(session_key::hash);
                match self.update_with(&record.id, Durability::Immediate, |r| {
                    if r.phase != Phase::Starting {
                        return Ok(Vec::new());
                    }
                    r.phase = Phase::Started;
                    r.session_api_key_hash = hash.clone();
                    let status = self.live_status(r, Some(&runtime)).0;
                    self.change_ops(
                        r,
                        status,
                        Cause::Reconcile,
                        Some("completed a start that was left half-way".into()),
                    )
                }) {
                    Ok(_) => {
                        summary.completed += 1;
                        self.log(
                            Level::Warn,
                            "completed a start that was left half-way",
                            &[("sandbox_id", &record.id)],
                        );
                    }
                    Err(e) => summary.failures.push((record.id.clone(), e.to_string())),
                }
            }
            Ok(None) => match self.store.commit(record.delete_ops()) {
                Ok(()) => {
                    summary.removed += 1;
                    self.log(
                        Level::Warn,
                        "removed a start that was left half-way and never reached the runtime",
                        &[("sandbox_id", &record.id)],
                    );
                    return false;
                }
                // Changed meanwhile (a delete, a late completion): next pass.
                Err(crate::ports::StoreError::Conflict(_)) => {}
                Err(e) => summary.failures.push((record.id.clone(), format!("{e:?}"))),
            },
            Err(e) => summary.failures.push((record.id.clone(), e.to_string())),
        }
        true
    }

    /// Make the active index (`schema::sandboxes`) match the records in
    /// `share`: an entry for an active record stored before the index existed,
    /// none for one no longer active. Each fix is conditional on the record
    /// being as this pass read it, so a start, pause or delete racing the pass
    /// wins; an entry whose record this pass did not see is left alone (a start
    /// that began after the records were read). Relaxed writes: the next pass
    /// repeats whatever a crash loses.
    fn repair_active_index(
        &self,
        records: &HashMap<String, SandboxRecord>,
        share: &Share,
        summary: &mut ReconcileSummary,
    ) {
        let indexed = match self.scan_all(schema::ACTIVE_BY_OWNER) {
            Ok(entries) => entries,
            Err(e) => {
                summary
                    .failures
                    .push(("active index".into(), e.to_string()));
                return;
            }
        };
        let mut fixes: Vec<(&SandboxRecord, crate::ports::Op)> = Vec::new();
        let mut present = std::collections::HashSet::new();
        for (key, id) in indexed {
            let Some(record) = std::str::from_utf8(&id).ok().and_then(|id| records.get(id)) else {
                continue;
            };
            if record.is_active() && record.owner_key() == key {
                present.insert(record.id.as_str());
            } else if share.holds(&record.id) {
                let stale = crate::ports::Op::Delete {
                    table: schema::ACTIVE_BY_OWNER,
                    key,
                };
                fixes.push((record, stale));
            }
        }
        fixes.extend(
            records
                .values()
                .filter(|r| r.is_active() && share.holds(&r.id) && !present.contains(r.id.as_str()))
                .map(|r| (r, r.active_entry())),
        );
        for (record, fix) in fixes {
            let unchanged = crate::ports::Op::RequireValue {
                table: schema::SANDBOXES,
                key: record.id.as_bytes().to_vec(),
                value: record.encode(),
            };
            match self.store.commit_relaxed(vec![unchanged, fix]) {
                Ok(()) | Err(crate::ports::StoreError::Conflict(_)) => {}
                Err(e) => summary.failures.push((record.id.clone(), format!("{e:?}"))),
            }
        }
    }

    /// Every entry of `table`, in key order.
    pub(super) fn scan_all(&self, table: &'static str) -> Result<Vec<crate::ports::Entry>> {
        let mut all = Vec::new();
        let mut start = Bound::Unbounded;
        loop {
            let page = self.store.scan(Scan {
                table,
                start,
                end: Bound::Unbounded,
                reverse: false,
                limit: SCAN_PAGE,
            })?;
            let full = page.len() == SCAN_PAGE as usize;
            let last = page.last().map(|(key, _)| key.clone());
            all.extend(page);
            match (full, last) {
                (true, Some(key)) => start = Bound::Excluded(key),
                _ => return Ok(all),
            }
        }
    }

    /// Every sandbox record, by id (an unreadable one is logged and left out).
    pub(super) fn all_records(&self) -> Result<HashMap<String, SandboxRecord>> {
        let mut all = HashMap::new();
        for (key, value) in self.scan_all(schema::SANDBOXES)? {
            match SandboxRecord::decode(&value) {
                Ok(record) => {
                    all.insert(record.id.clone(), record);
                }
                Err(e) => self.log(
                    Level::Error,
                    "unreadable sandbox record",
                    &[
                        ("key", &String::from_utf8_lossy(&key)),
                        ("error", &e.to_string()),
                    ],
                ),
            }
        }
        Ok(all)
    }
}
