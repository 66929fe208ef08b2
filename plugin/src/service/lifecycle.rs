//! The write operations: start, pause, resume, delete.
//!
//! Ordering is what keeps the promises:
//! - start hands out a running sandbox of the spec's warm pool if it has one
//!   (`warm`); otherwise it records the sandbox (phase `starting`) before
//!   asking the runtime, and
//!   removes the record again only when the runtime surely did not start it;
//!   that intent is visible at once but durable only with the result's commit
//!   (one fsync per start): a crash in between leaves no answered start, and
//!   at most an orphaned runtime, which reconciliation stops or adopts;
//! - pause retires the session-key hash before asking the runtime: the old key
//!   authenticates only the agent server's final webhooks, for the teardown
//!   grace, even if the pause itself fails;
//! - delete revokes the session key first, then asks the runtime to stop, and
//!   removes the record only after `/stop` succeeded or answered 404; a stop
//!   that may work later leaves the sandbox kept, its key revoked, and the
//!   caller told to retry (503 with `Retry-After`);
//! - each status change is recorded in the history in the commit that makes
//!   it, with its cause (a user, the limit, a policy, a wake).

use super::{Durability, Service};
use crate::error::{Error, Result};
use crate::model::{Cause, SandboxInfo, SandboxSpec, Status};
use crate::ports::{Level, StoreError};
use crate::runtime::client::Action;
use crate::runtime::start::StartRequest;
use crate::runtime::{Runtime, RuntimeError};
use crate::schema::{self, Phase, RetiredKey, SandboxRecord, Warm};
use crate::{session_key, specs};

impl Service<'_> {
    pub fn start(&self, spec_id: Option<&str>, sandbox_id: Option<&str>) -> Result<SandboxInfo> {
        let spec = specs::resolve(self.settings, spec_id)?;
        let requested = match sandbox_id {
            Some(id) if super::is_valid_id(id) => Some(id),
            Some(id) => {
                return Err(Error::InvalidInput(format!(
                    "invalid sandbox id '{}': use 1 to 128 letters, digits, '-', '_' or '.'",
                    id.chars().take(140).collect::<String>()
                )));
            }
            None => None,
        };
        // A taken id is refused before the limit is enforced, so that a start
        // that cannot happen pauses nothing. (The insert below still checks, for
        // a start racing this one.)
        if let Some(id) = requested
            && self.store.get(schema::SANDBOXES, id.as_bytes())?.is_some()
        {
            return Err(taken(id));
        }
        self.enforce_limit(None);
        if requested.is_none()
            && let Some(info) = self.take_warm(&spec.id)?
        {
            return Ok(info);
        }
        let id = requested.map_or_else(|| self.new_id(), str::to_owned);
        let (stored, runtime) = self.launch(spec, id, None)?;
        Ok(self.to_info(&stored, runtime.as_ref()))
    }

    /// Start a sandbox of `spec` with id `id`: for the caller, or for the
    /// spec's warm pool when `warm` is `Pooled`. Returns the record as stored
    /// and the runtime's answer.
    pub(super) fn launch(
        &self,
        spec: &SandboxSpec,
        id: String,
        warm: Option<Warm>,
    ) -> Result<(SandboxRecord, Option<Runtime>)> {
        let now = self.env.now_micros();
        let record = SandboxRecord {
            id: id.clone(),
            created_by_user_id: if warm.is_some() {
                None
            } else {
                self.caller.clone()
            },
            sandbox_spec_id: spec.id.clone(),
            session_api_key_hash: None,
            created_at_us: now,
            started_at_us: now,
            phase: Phase::Starting,
            status: None,
            status_at_us: 0,
            retired_key: None,
            acted: None,
            warm,
        };
        // Relaxed: the intent must be visible before the runtime is asked (to
        // reconciliation, to a racing start of the same id), but need not be
        // on disk. If a crash loses it, the start was never answered, and the
        // runtime it may have made is an orphan that reconciliation settles by
        // policy; the durable commit of the result below persists it otherwise.
        match self.store.commit_relaxed(record.insert_ops()) {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => return Err(taken(&id)),
            Err(e) => return Err(e.into()),
        }

        let runtime = match self
            .runtime()
            .start(&StartRequest::new(spec, self.settings, &id))
        {
            Ok(runtime) => Some(runtime),
            Err(e) => self.recover_failed_start(&record, e)?,
        };
        let key_hash = runtime
            .as_ref()
            .and_then(|r| r.session_api_key.as_deref())
            .map(session_key::hash);
        let stored = self
            .update_with(&id, Durability::Immediate, |r| {
                r.phase = Phase::Started;
                r.session_api_key_hash = key_hash.clone();
                let (status, detail) = self.live_status(r, runtime.as_ref());
                self.change_ops(r, status, Cause::User, detail)
            })?
            .unwrap_or(record);
        let runtime_id = runtime
            .as_ref()
            .and_then(|r| r.runtime_id.as_deref())
            .unwrap_or("unknown");
        self.log(
            Level::Info,
            if warm.is_some() {
                "warm sandbox started"
            } else {
                "sandbox started"
            },
            &[
                ("sandbox_id", &id),
                ("runtime_id", runtime_id),
                ("spec", &spec.id),
            ],
        );
        Ok((stored, runtime))
    }

    /// After `/start` failed: find out whether the runtime exists anyway (the
    /// request may have been carried out before the answer was lost). If it does,
    /// the start succeeded; if it surely does not, the record goes; if that cannot
    /// be known, the record stays (reported `MISSING` until the runtime shows up)
    /// so that a runtime is never left without one.
    fn recover_failed_start(
        &self,
        record: &SandboxRecord,
        error: RuntimeError,
    ) -> Result<Option<Runtime>> {
        let id = record.id.as_str();
        if error.may_have_happened() {
            match self.runtime().get(id) {
                Ok(Some(runtime)) => {
                    self.log(
                        Level::Warn,
                        "start answer lost but the runtime exists; keeping it",
                        &[("sandbox_id", id), ("error", &error.to_string())],
                    );
                    return Ok(Some(runtime));
                }
                Ok(None) => {}
                Err(check) => {
                    self.log(
                        Level::Error,
                        "start failed and the runtime state is unknown; keeping the record",
                        &[
                            ("sandbox_id", id),
                            ("error", &error.to_string()),
                            ("check", &check.to_string()),
                        ],
                    );
                    return Err(Error::Upstream(format!(
                        "failed to start sandbox '{id}': {error}; whether the runtime started is unknown ({check}), so the sandbox is kept and shows MISSING until the runtime reports it"
                    )));
                }
            }
        }
        if let Err(e) = self.store.commit(record.delete_ops()) {
            self.log(
                Level::Error,
                "could not remove the record of a failed start",
                &[("sandbox_id", id), ("error", &format!("{e:?}"))],
            );
        }
        Err(Error::Upstream(format!("failed to start sandbox: {error}")))
    }

    pub fn pause(&self, id: &str) -> Result<()> {
        let record = self.load_visible(id)?;
        self.pause_as(&record, Cause::User)
    }

    /// Pause `record`'s sandbox because of `cause` (a user, the limit, a
    /// policy). The key is retired first (security first: whatever happens to
    /// the pause, the key works for the teardown grace only, and only for the
    /// agent server's webhooks); the status change is recorded once the
    /// runtime paused it.
    pub(super) fn pause_as(&self, record: &SandboxRecord, cause: Cause) -> Result<()> {
        let id = record.id.as_str();
        let grace_us = i64::from(self.settings.teardown_grace_secs) * 1_000_000;
        let until_us = self.env.now_micros().saturating_add(grace_us);
        let acted = is_policy(cause).then_some(cause);
        self.update_with(id, Durability::Immediate, |r| {
            if let Some(hash) = r.session_api_key_hash.take() {
                r.retired_key = (grace_us > 0).then_some(RetiredKey { hash, until_us });
            }
            if acted.is_some() {
                r.acted = acted;
            }
            Ok(Vec::new())
        })?;
        let runtime_id = self.runtime_id_of(id)?;
        match self.runtime().pause(&runtime_id).map_err(upstream)? {
            Action::Done(_) => {
                self.update_with(id, Durability::Immediate, |r| {
                    self.change_ops(r, Status::Paused, cause, None)
                })?;
                self.log(
                    Level::Info,
                    "sandbox paused",
                    &[("sandbox_id", id), ("cause", cause_name(cause))],
                );
                Ok(())
            }
            Action::NotFound => Err(Error::sandbox_not_found(id)),
        }
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        let record = self.load_visible(id)?;
        self.resume_as(&record, Cause::User).map(|_| ())
    }

    /// Resume paused sandbox `id` because a request reached one of its URLs.
    /// For the host only; a sandbox that is not paused is returned as it is.
    pub fn wake(&self, id: &str) -> Result<SandboxInfo> {
        if self.caller().is_some() {
            return Err(Error::Unauthorized(
                "waking a sandbox is for the host".into(),
            ));
        }
        let record = self.load_visible(id)?;
        let lookup = self.runtime_of(&record.id);
        let info = lookup.info(self, &record);
        if info.status != Status::Paused {
            return Ok(info);
        }
        // On the owner's behalf: the owner's limit on running sandboxes is the
        // one that applies, not everyone's.
        let owner = Service {
            caller: record.created_by_user_id.clone(),
            ..*self
        };
        let resumed = owner.resume_as(&record, Cause::Wake)?;
        Ok(owner.runtime_of(&resumed.id).info(&owner, &resumed))
    }

    /// Resume `record`'s sandbox because of `cause`; returns the record as
    /// stored afterwards.
    fn resume_as(&self, record: &SandboxRecord, cause: Cause) -> Result<SandboxRecord> {
        let id = record.id.as_str();
        self.enforce_limit(Some(id));
        let runtime_id = self.runtime_id_of(id)?;
        let answered = match self.runtime().resume(&runtime_id).map_err(upstream)? {
            Action::Done(runtime) => runtime,
            Action::NotFound => return Err(Error::sandbox_not_found(id)),
        };
        // Keys rotate on resume. If the answer does not carry the new key, read it
        // back, so that webhooks from the resumed sandbox authenticate.
        let runtime = match answered {
            Some(runtime) if runtime.session_api_key.is_some() => Some(runtime),
            answered => self.runtime().get(id).ok().flatten().or(answered),
        };
        let hash = runtime
            .as_ref()
            .and_then(|r| r.session_api_key.as_deref())
            .map(session_key::hash);
        let now = self.env.now_micros();
        let stored = self.update_with(id, Durability::Immediate, |r| {
            r.session_api_key_hash = hash.clone();
            r.retired_key = None;
            r.started_at_us = now;
            r.acted = None;
            let status = match runtime.as_ref() {
                Some(rt) => self.live_status(r, Some(rt)).0,
                None => Status::Running,
            };
            self.change_ops(r, status, cause, None)
        })?;
        self.log(
            Level::Info,
            "sandbox resumed",
            &[("sandbox_id", id), ("cause", cause_name(cause))],
        );
        Ok(stored.unwrap_or_else(|| record.clone()))
    }

    pub fn delete(&self, id: &str) -> Result<()> {
        let record = self.load_visible(id)?;
        self.delete_as(&record, Cause::User)
    }

    /// Delete `record`'s sandbox because of `cause` (a user, the ttl policy).
    pub(super) fn delete_as(&self, record: &SandboxRecord, cause: Cause) -> Result<()> {
        let id = record.id.as_str();
        // Revoke first: from here on no key of this sandbox authenticates,
        // whatever the runtime does. Relaxed: visible at once, durable with
        // the delete's own commit (a crash before it loses an unanswered
        // delete, which the caller repeats).
        let revoked = if record.key_hashes().next().is_some() {
            self.update_with(id, Durability::Relaxed, |r| {
                r.session_api_key_hash = None;
                r.retired_key = None;
                Ok(Vec::new())
            })?
            .unwrap_or_else(|| record.clone())
        } else {
            record.clone()
        };
        let not_deleted = |what: &str, e: RuntimeError| {
            let detail = format!("could not {what} of sandbox '{id}', so it was not deleted: {e}");
            if e.is_transient() {
                Error::Unavailable(
                    format!("{detail}; its session key is revoked; retry the delete"),
                    RETRY_AFTER_SECS,
                )
            } else {
                Error::Upstream(detail)
            }
        };
        let runtime = self
            .runtime()
            .get(id)
            .map_err(|e| not_deleted("look up the runtime", e))?;
        if let Some(runtime) = runtime {
            let runtime_id = runtime.runtime_id.ok_or_else(|| {
                Error::Upstream(format!(
                    "the runtime API described sandbox '{id}' without a runtime_id, so it was not deleted"
                ))
            })?;
            self.runtime()
                .stop(&runtime_id)
                .map_err(|e| not_deleted("stop the runtime", e))?;
        }
        // The runtime is gone: forget the sandbox (and its key hashes) for
        // good; its history stays for the retention.
        let mut current = revoked;
        for _ in 0..2 {
            let mut ops = current.delete_ops();
            ops.extend(self.deletion_ops(&current, cause)?);
            match self.store.commit(ops) {
                Ok(()) => {
                    self.log(
                        Level::Info,
                        "sandbox deleted",
                        &[("sandbox_id", id), ("cause", cause_name(cause))],
                    );
                    return Ok(());
                }
                // Changed since we read it (e.g. a concurrent pause): delete
                // what is stored now.
                Err(StoreError::Conflict(_)) => match self.find_visible(id)? {
                    Some(now) => current = now,
                    None => return Ok(()),
                },
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict(format!(
            "sandbox '{id}' is being changed by other calls; retry"
        )))
    }

    /// The runtime id of sandbox `id`, for the runtime API's actions.
    fn runtime_id_of(&self, id: &str) -> Result<String> {
        match self.runtime().get(id).map_err(upstream)? {
            None => Err(Error::sandbox_not_found(id)),
            Some(runtime) => runtime.runtime_id.ok_or_else(|| no_runtime_id(id)),
        }
    }

    /// A fresh id: base62 of 16 random bytes, as the upstream service makes them.
    pub(super) fn new_id(&self) -> String {
        base62::encode(u128::from_be_bytes(self.env.random_16()))
    }
}

/// What a caller is told to wait before retrying a delete the runtime could
/// not carry out yet.
const RETRY_AFTER_SECS: u32 = 5;

/// Whether `cause` is a pausing policy's (which then acts once per start or
/// resume).
fn is_policy(cause: Cause) -> bool {
    matches!(cause, Cause::Idle | Cause::MaxRunning)
}

/// The cause as the history spells it, for logs.
pub(crate) fn cause_name(cause: Cause) -> &'static str {
    match cause {
        Cause::User => "user",
        Cause::Limit => "limit",
        Cause::Idle => "idle",
        Cause::MaxRunning => "max_running",
        Cause::Ttl => "ttl",
        Cause::StartTimeout => "start_timeout",
        Cause::Runtime => "runtime",
        Cause::Reconcile => "reconcile",
        Cause::Wake => "wake",
    }
}

fn taken(id: &str) -> Error {
    Error::Conflict(format!("a sandbox with id '{id}' already exists"))
}

pub(super) fn upstream(e: RuntimeError) -> Error {
    Error::Upstream(e.to_string())
}

pub(super) fn no_runtime_id(id: &str) -> Error {
    Error::Upstream(format!(
        "the runtime API described sandbox '{id}' without a runtime_id"
    ))
}
