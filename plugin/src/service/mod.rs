//! The sandbox service: the operations of the app-facing API.
//!
//! A [`Service`] lives for one call. It sees the world through the ports (store,
//! HTTP, environment) and acts for one caller.
//!
//! Invariants kept here:
//! - Scoping: every lookup goes through [`Service::load_visible`] or filters with
//!   [`SandboxRecord::visible_to`]; another user's sandbox is `not-found`, exactly
//!   like a missing one.
//! - The session key is never stored, only its hash, and the hash is retired on
//!   pause (valid for the teardown grace only), replaced on resume and revoked
//!   before a delete asks the runtime to stop.
//! - Every status change sandboxd makes or observes is in the sandbox's
//!   history, committed with the change (`history`).
//! - A record disappears only after its runtime is known to be gone.
//! - A warm sandbox (started ahead for a spec's pool) belongs to no one and
//!   is seen by no caller until a start takes it (`warm`).

mod history;
mod lifecycle;
mod limit;
mod policy;
mod read;
mod reconcile;
mod warm;

pub use policy::PassSummary;
pub use reconcile::{ADOPTED_SPEC, OrphanPolicy, ReconcileSummary};

/// Whether a commit must be on disk before it returns (see `ports::Store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    Immediate,
    Relaxed,
}

use crate::error::{Error, Result};
use crate::model::{SandboxInfo, Settings, Status};
use crate::ports::{Env, Http, Level, Op, Store, StoreError};
use crate::runtime::{Runtime, RuntimeApi};
use crate::schema::{self, SandboxRecord};
use crate::{status, time, urls};

/// Longest sandbox id accepted from a caller.
const MAX_ID_LEN: usize = 128;

/// How often an update retries after losing a race with another call.
const UPDATE_ATTEMPTS: usize = 3;

pub struct Service<'a> {
    pub store: &'a dyn Store,
    pub http: &'a dyn Http,
    pub env: &'a dyn Env,
    pub settings: &'a Settings,
    /// The user this call acts for; none sees everything.
    pub caller: Option<String>,
}

impl<'a> Service<'a> {
    pub(crate) fn runtime(&self) -> RuntimeApi<'a> {
        RuntimeApi::new(self.http, self.env, &self.settings.runtime_api_url)
    }

    pub(crate) fn caller(&self) -> Option<&str> {
        self.caller.as_deref()
    }

    /// The index listing the caller's sandboxes newest first, and the key
    /// prefix of the caller's entries in it (empty for a caller who sees all).
    fn scope_index(&self) -> (&'static str, Vec<u8>) {
        match self.caller() {
            None => (schema::BY_CREATED, Vec::new()),
            Some(user) => (schema::BY_OWNER, schema::owner_prefix(Some(user))),
        }
    }

    pub(crate) fn log(&self, level: Level, message: &str, fields: &[(&str, &str)]) {
        self.env.log(level, message, fields);
    }

    /// The stored record of sandbox `id` if the caller may see it.
    pub(crate) fn load_visible(&self, id: &str) -> Result<SandboxRecord> {
        self.find_visible(id)?
            .ok_or_else(|| Error::sandbox_not_found(id))
    }

    pub(crate) fn find_visible(&self, id: &str) -> Result<Option<SandboxRecord>> {
        if !is_valid_id(id) {
            return Ok(None);
        }
        let Some(bytes) = self.store.get(schema::SANDBOXES, id.as_bytes())? else {
            return Ok(None);
        };
        let record = SandboxRecord::decode(&bytes)?;
        Ok(record.visible_to(self.caller()).then_some(record))
    }

    /// Apply `change` to the stored record of `id` and commit it with the ops
    /// `change` returns (a history entry: see [`Self::change_ops`]), retrying
    /// if another call changed the record in between. Returns the record as
    /// stored afterwards, or none if it no longer exists.
    fn update_with(
        &self,
        id: &str,
        durability: Durability,
        change: impl Fn(&mut SandboxRecord) -> Result<Vec<Op>>,
    ) -> Result<Option<SandboxRecord>> {
        for _ in 0..UPDATE_ATTEMPTS {
            let Some(bytes) = self.store.get(schema::SANDBOXES, id.as_bytes())? else {
                return Ok(None);
            };
            let old = SandboxRecord::decode(&bytes)?;
            let mut new = old.clone();
            let extra = change(&mut new)?;
            if new == old {
                return Ok(Some(old));
            }
            let mut ops = new.update_ops(&old);
            ops.extend(extra);
            let committed = match durability {
                Durability::Immediate => self.store.commit(ops),
                Durability::Relaxed => self.store.commit_relaxed(ops),
            };
            match committed {
                Ok(()) => return Ok(Some(new)),
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Conflict(format!(
            "sandbox '{id}' is being changed by other calls; retry"
        )))
    }

    /// The status the app sees for `record` given what its runtime said, and
    /// the start timeout's detail if that is why it is an error.
    fn live_status(
        &self,
        record: &SandboxRecord,
        runtime: Option<&Runtime>,
    ) -> (Status, Option<String>) {
        status::apply_start_timeout(
            status::from_runtime(runtime),
            record.started_at_us,
            self.env.now_micros(),
            self.settings.start_sandbox_timeout_secs,
        )
    }

    /// The app's view of a stored sandbox and what its runtime said.
    fn to_info(&self, record: &SandboxRecord, runtime: Option<&Runtime>) -> SandboxInfo {
        let (status, timeout_detail) = self.live_status(record, runtime);
        SandboxInfo {
            id: record.id.clone(),
            created_by_user_id: record.created_by_user_id.clone(),
            sandbox_spec_id: record.sandbox_spec_id.clone(),
            status,
            session_api_key: runtime.and_then(|r| r.session_api_key.clone()),
            exposed_urls: urls::exposed_urls(status, runtime),
            created_at: time::iso8601(record.created_at_us),
            status_detail: timeout_detail
                .or_else(|| runtime.and_then(|r| r.status_detail.clone()))
                .or_else(|| status::unknown_status_detail(runtime)),
        }
    }
}

/// Sandbox ids are URL path segments and storage keys: 1 to 128 characters of
/// ASCII letters, digits, `-`, `_` and `.`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests;
