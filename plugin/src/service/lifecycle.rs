//! The write operations: start, pause, resume, delete.
//!
//! Ordering is what keeps the promises:
//! - start records the sandbox (phase `starting`) before asking the runtime, and
//!   removes the record again only when the runtime surely did not start it;
//!   that intent is visible at once but durable only with the result's commit
//!   (one fsync per start): a crash in between leaves no answered start, and
//!   at most an orphaned runtime, which reconciliation stops or adopts;
//! - pause clears the session-key hash before asking the runtime, so a leaked key
//!   stops working even if the pause itself fails;
//! - delete removes the record only after `/stop` succeeded or answered 404.

use super::Service;
use crate::error::{Error, Result};
use crate::model::SandboxInfo;
use crate::ports::{Level, StoreError};
use crate::runtime::client::Action;
use crate::runtime::start::StartRequest;
use crate::runtime::{Runtime, RuntimeError};
use crate::schema::{self, Phase, SandboxRecord};
use crate::{session_key, specs};

impl Service<'_> {
    pub fn start(&self, spec_id: Option<&str>, sandbox_id: Option<&str>) -> Result<SandboxInfo> {
        let spec = specs::resolve(self.settings, spec_id)?;
        let id = match sandbox_id {
            Some(id) if super::is_valid_id(id) => id.to_owned(),
            Some(id) => {
                return Err(Error::InvalidInput(format!(
                    "invalid sandbox id '{}': use 1 to 128 letters, digits, '-', '_' or '.'",
                    id.chars().take(140).collect::<String>()
                )));
            }
            None => self.new_id(),
        };
        // A taken id is refused before the limit is enforced, so that a start
        // that cannot happen pauses nothing. (The insert below still checks, for
        // a start racing this one.)
        if self.store.get(schema::SANDBOXES, id.as_bytes())?.is_some() {
            return Err(taken(&id));
        }
        self.enforce_limit(None);

        let now = self.env.now_micros();
        let record = SandboxRecord {
            id: id.clone(),
            created_by_user_id: self.caller.clone(),
            sandbox_spec_id: spec.id.clone(),
            session_api_key_hash: None,
            created_at_us: now,
            started_at_us: now,
            phase: Phase::Starting,
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
            .update(&id, |r| {
                r.phase = Phase::Started;
                r.session_api_key_hash = key_hash.clone();
            })?
            .unwrap_or(record);
        let runtime_id = runtime
            .as_ref()
            .and_then(|r| r.runtime_id.as_deref())
            .unwrap_or("unknown");
        self.log(
            Level::Info,
            "sandbox started",
            &[
                ("sandbox_id", &id),
                ("runtime_id", runtime_id),
                ("spec", &spec.id),
            ],
        );
        Ok(self.to_info(&stored, runtime.as_ref()))
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
        // Security first: a leaked key must not work while the sandbox is paused,
        // whatever happens to the pause itself.
        if record.session_api_key_hash.is_some() {
            self.update(&record.id, |r| r.session_api_key_hash = None)?;
        }
        let runtime_id = self.runtime_id_of(&record.id)?;
        match self.runtime().pause(&runtime_id).map_err(upstream)? {
            Action::Done(_) => {
                self.log(Level::Info, "sandbox paused", &[("sandbox_id", id)]);
                Ok(())
            }
            Action::NotFound => Err(Error::sandbox_not_found(id)),
        }
    }

    pub fn resume(&self, id: &str) -> Result<()> {
        let record = self.load_visible(id)?;
        self.enforce_limit(Some(&record.id));
        let runtime_id = self.runtime_id_of(&record.id)?;
        let answered = match self.runtime().resume(&runtime_id).map_err(upstream)? {
            Action::Done(runtime) => runtime,
            Action::NotFound => return Err(Error::sandbox_not_found(id)),
        };
        // Keys rotate on resume. If the answer does not carry the new key, read it
        // back, so that webhooks from the resumed sandbox authenticate.
        let key = match answered.and_then(|r| r.session_api_key) {
            Some(key) => Some(key),
            None => self
                .runtime()
                .get(&record.id)
                .ok()
                .flatten()
                .and_then(|r| r.session_api_key),
        };
        let hash = key.as_deref().map(session_key::hash);
        let now = self.env.now_micros();
        self.update(&record.id, |r| {
            r.session_api_key_hash = hash.clone();
            r.started_at_us = now;
        })?;
        self.log(Level::Info, "sandbox resumed", &[("sandbox_id", id)]);
        Ok(())
    }

    pub fn delete(&self, id: &str) -> Result<()> {
        let record = self.load_visible(id)?;
        let runtime = self.runtime().get(&record.id).map_err(|e| {
            Error::Upstream(format!(
                "could not look up the runtime of sandbox '{id}', so it was not deleted: {e}"
            ))
        })?;
        if let Some(runtime) = runtime {
            let runtime_id = runtime.runtime_id.ok_or_else(|| {
                Error::Upstream(format!(
                    "the runtime API described sandbox '{id}' without a runtime_id, so it was not deleted"
                ))
            })?;
            self.runtime().stop(&runtime_id).map_err(|e| {
                Error::Upstream(format!(
                    "could not stop the runtime of sandbox '{id}', so it was not deleted: {e}"
                ))
            })?;
        }
        // The runtime is gone: forget the sandbox (and its key hash) for good.
        match self.store.commit(record.delete_ops()) {
            Ok(()) => {}
            // Changed since we read it (e.g. a concurrent pause): delete what is
            // stored now.
            Err(StoreError::Conflict(_)) => {
                if let Some(current) = self.find_visible(&record.id)? {
                    self.store.commit(current.delete_ops())?;
                }
            }
            Err(e) => return Err(e.into()),
        }
        self.log(Level::Info, "sandbox deleted", &[("sandbox_id", id)]);
        Ok(())
    }

    /// The runtime id of sandbox `id`, for the runtime API's actions.
    fn runtime_id_of(&self, id: &str) -> Result<String> {
        match self.runtime().get(id).map_err(upstream)? {
            None => Err(Error::sandbox_not_found(id)),
            Some(runtime) => runtime.runtime_id.ok_or_else(|| no_runtime_id(id)),
        }
    }

    /// A fresh id: base62 of 16 random bytes, as the upstream service makes them.
    fn new_id(&self) -> String {
        base62::encode(u128::from_be_bytes(self.env.random_16()))
    }
}

fn taken(id: &str) -> Error {
    Error::Conflict(format!("a sandbox with id '{id}' already exists"))
}

fn upstream(e: RuntimeError) -> Error {
    Error::Upstream(e.to_string())
}

fn no_runtime_id(id: &str) -> Error {
    Error::Upstream(format!(
        "the runtime API described sandbox '{id}' without a runtime_id"
    ))
}
