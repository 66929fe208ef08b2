//! The typed door into the plugin: one method per export.
//!
//! Everything outside `plugin/` reaches the component through these methods,
//! `plugin.sandboxes(&caller).get(id)`, so the wasmtime `Store`, the call's
//! `HostState` and the closures that drive an instance stay in this module and
//! [`super::call`]. Each method is one call on a fresh instance of the current
//! plugin, within the limits of its [`Caller`], and is counted in
//! `sandboxd_plugin_calls_total{export,outcome}` under the export's WIT name.

use std::future::Future;

use wasmtime::Store;

use super::PluginInstance;
use super::{CallError, Caller, PluginHost};
use crate::bindings::callbacks::{AttemptPage, Callback, DeliverySummary};
use crate::bindings::conversations::{EventQuery, JsonPage, StreamPosition};
use crate::bindings::exports::sandboxd::plugin::info::PluginInfo;
use crate::bindings::lifecycle::{HistoryPage, PassSummary};
use crate::bindings::sandboxes::{OrphanPolicy, ReconcileSummary};
use crate::bindings::sync::{CycleSummary, IngestSummary};
use crate::bindings::types::{
    Error as PluginError, SandboxInfo, SandboxPage, SandboxSpec, Share, SpecPage,
};
use crate::imports::HostState;
use crate::metrics;

/// Why an export gave no value: the plugin said no (an error the caller is
/// meant to see), or the call itself failed (a trap, a deadline, a limit).
#[derive(Debug)]
pub enum ExportError {
    Plugin(PluginError),
    Call(CallError),
}

impl std::fmt::Display for ExportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportError::Plugin(e) => write!(f, "{e:?}"),
            ExportError::Call(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ExportError {}

/// One caller's view of the plugin.
#[derive(Clone, Copy)]
struct Door<'a> {
    host: &'a PluginHost,
    caller: &'a Caller,
}

impl Door<'_> {
    async fn call<R, F, Fut>(self, export: &'static str, f: F) -> Result<R, ExportError>
    where
        F: FnOnce(PluginInstance, Store<HostState>) -> Fut,
        Fut: Future<Output = wasmtime::Result<Result<R, PluginError>>>,
    {
        let limits = match self.caller {
            Caller::Host => self.host.background,
            Caller::All | Caller::User(_) => self.host.runner.api,
        };
        let result = match self
            .host
            .call_within(limits, self.caller.user_id(), f)
            .await
        {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(ExportError::Plugin(e)),
            Err(e) => Err(ExportError::Call(e)),
        };
        metrics::plugin_call(export, outcome(&result));
        result
    }
}

/// The `outcome` label of a call: what operators tell apart.
fn outcome<R>(result: &Result<R, ExportError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(ExportError::Plugin(_)) => "error",
        Err(ExportError::Call(CallError::Trap { .. })) => "trap",
        Err(ExportError::Call(CallError::Timeout(_))) => "deadline",
        Err(ExportError::Call(CallError::Limit { .. })) => "budget",
    }
}

impl PluginHost {
    pub fn sandboxes<'a>(&'a self, caller: &'a Caller) -> Sandboxes<'a> {
        Sandboxes(Door { host: self, caller })
    }

    pub fn specs<'a>(&'a self, caller: &'a Caller) -> Specs<'a> {
        Specs(Door { host: self, caller })
    }

    pub fn conversations<'a>(&'a self, caller: &'a Caller) -> Conversations<'a> {
        Conversations(Door { host: self, caller })
    }

    pub fn callbacks<'a>(&'a self, caller: &'a Caller) -> Callbacks<'a> {
        Callbacks(Door { host: self, caller })
    }

    pub fn sync<'a>(&'a self, caller: &'a Caller) -> Sync<'a> {
        Sync(Door { host: self, caller })
    }

    pub fn lifecycle<'a>(&'a self, caller: &'a Caller) -> Lifecycle<'a> {
        Lifecycle(Door { host: self, caller })
    }

    /// `info`, on a fresh instance with the API limits (what `plugin bench`
    /// measures: every call pays this much before the plugin does any work).
    pub async fn info(&self) -> Result<PluginInfo, CallError> {
        let result = self
            .call_within(self.runner.api, None, |p, mut store| async move {
                p.info(&mut store)?.call_info(&mut store).await
            })
            .await;
        metrics::plugin_call(
            "info.info",
            match &result {
                Ok(_) => "ok",
                Err(CallError::Trap { .. }) => "trap",
                Err(CallError::Timeout(_)) => "deadline",
                Err(CallError::Limit { .. }) => "budget",
            },
        );
        result
    }
}

/// `sandboxd:plugin/sandboxes`.
pub struct Sandboxes<'a>(Door<'a>);

impl Sandboxes<'_> {
    pub async fn search(
        &self,
        page_id: Option<&str>,
        limit: u32,
    ) -> Result<SandboxPage, ExportError> {
        self.0
            .call("sandboxes.search", |p, mut s| async move {
                p.sandboxes(&mut s)?
                    .call_search(&mut s, page_id, limit)
                    .await
            })
            .await
    }

    pub async fn get(&self, id: &str) -> Result<SandboxInfo, ExportError> {
        self.0
            .call("sandboxes.get", |p, mut s| async move {
                p.sandboxes(&mut s)?.call_get(&mut s, id).await
            })
            .await
    }

    pub async fn batch_get(&self, ids: &[String]) -> Result<Vec<Option<SandboxInfo>>, ExportError> {
        self.0
            .call("sandboxes.batch-get", |p, mut s| async move {
                p.sandboxes(&mut s)?.call_batch_get(&mut s, ids).await
            })
            .await
    }

    pub async fn start(
        &self,
        spec_id: Option<&str>,
        sandbox_id: Option<&str>,
    ) -> Result<SandboxInfo, ExportError> {
        self.0
            .call("sandboxes.start", |p, mut s| async move {
                p.sandboxes(&mut s)?
                    .call_start(&mut s, spec_id, sandbox_id)
                    .await
            })
            .await
    }

    pub async fn pause(&self, id: &str) -> Result<(), ExportError> {
        self.0
            .call("sandboxes.pause", |p, mut s| async move {
                p.sandboxes(&mut s)?.call_pause(&mut s, id).await
            })
            .await
    }

    pub async fn resume(&self, id: &str) -> Result<(), ExportError> {
        self.0
            .call("sandboxes.resume", |p, mut s| async move {
                p.sandboxes(&mut s)?.call_resume(&mut s, id).await
            })
            .await
    }

    pub async fn delete(&self, id: &str) -> Result<(), ExportError> {
        self.0
            .call("sandboxes.delete", |p, mut s| async move {
                p.sandboxes(&mut s)?.call_delete(&mut s, id).await
            })
            .await
    }

    pub async fn get_by_session_key(&self, key: &str) -> Result<Option<SandboxInfo>, ExportError> {
        self.0
            .call("sandboxes.get-by-session-key", |p, mut s| async move {
                p.sandboxes(&mut s)?
                    .call_get_by_session_key(&mut s, key)
                    .await
            })
            .await
    }

    pub async fn reconcile(
        &self,
        orphans: OrphanPolicy,
        stuck_before_us: i64,
        share: &Share,
    ) -> Result<ReconcileSummary, ExportError> {
        self.0
            .call("sandboxes.reconcile", |p, mut s| async move {
                p.sandboxes(&mut s)?
                    .call_reconcile(&mut s, orphans, stuck_before_us, share)
                    .await
            })
            .await
    }
}

/// `sandboxd:plugin/lifecycle`.
pub struct Lifecycle<'a>(Door<'a>);

impl Lifecycle<'_> {
    pub async fn history(
        &self,
        id: &str,
        page_id: Option<&str>,
        limit: u32,
    ) -> Result<HistoryPage, ExportError> {
        self.0
            .call("lifecycle.history", |p, mut s| async move {
                p.lifecycle(&mut s)?
                    .call_history(&mut s, id, page_id, limit)
                    .await
            })
            .await
    }

    pub async fn pass(&self, share: &Share) -> Result<PassSummary, ExportError> {
        self.0
            .call("lifecycle.pass", |p, mut s| async move {
                p.lifecycle(&mut s)?.call_pass(&mut s, share).await
            })
            .await
    }

    pub async fn wake(&self, id: &str) -> Result<SandboxInfo, ExportError> {
        self.0
            .call("lifecycle.wake", |p, mut s| async move {
                p.lifecycle(&mut s)?.call_wake(&mut s, id).await
            })
            .await
    }
}

/// `sandboxd:plugin/specs`.
pub struct Specs<'a>(Door<'a>);

impl Specs<'_> {
    pub async fn search(&self, page_id: Option<&str>, limit: u32) -> Result<SpecPage, ExportError> {
        self.0
            .call("specs.search", |p, mut s| async move {
                p.specs(&mut s)?.call_search(&mut s, page_id, limit).await
            })
            .await
    }

    pub async fn batch_get(&self, ids: &[String]) -> Result<Vec<Option<SandboxSpec>>, ExportError> {
        self.0
            .call("specs.batch-get", |p, mut s| async move {
                p.specs(&mut s)?.call_batch_get(&mut s, ids).await
            })
            .await
    }
}

/// `sandboxd:plugin/conversations`.
pub struct Conversations<'a>(Door<'a>);

impl Conversations<'_> {
    pub async fn search(
        &self,
        sandbox_id: Option<&str>,
        page_id: Option<&str>,
        limit: u32,
    ) -> Result<JsonPage, ExportError> {
        self.0
            .call("conversations.search", |p, mut s| async move {
                p.conversations(&mut s)?
                    .call_search(&mut s, sandbox_id, page_id, limit)
                    .await
            })
            .await
    }

    pub async fn get(&self, id: &str) -> Result<String, ExportError> {
        self.0
            .call("conversations.get", |p, mut s| async move {
                p.conversations(&mut s)?.call_get(&mut s, id).await
            })
            .await
    }

    pub async fn search_events(
        &self,
        conversation_id: &str,
        query: &EventQuery,
    ) -> Result<JsonPage, ExportError> {
        self.0
            .call("conversations.search-events", |p, mut s| async move {
                p.conversations(&mut s)?
                    .call_search_events(&mut s, conversation_id, query)
                    .await
            })
            .await
    }

    pub async fn stream_events(
        &self,
        conversation_id: &str,
        after_event_id: Option<&str>,
        limit: u32,
    ) -> Result<JsonPage, ExportError> {
        self.0
            .call("conversations.stream-events", |p, mut s| async move {
                p.conversations(&mut s)?
                    .call_stream_events(&mut s, conversation_id, after_event_id, limit)
                    .await
            })
            .await
    }

    pub async fn stream_start(
        &self,
        conversation_id: &str,
        last_event_id: Option<&str>,
    ) -> Result<StreamPosition, ExportError> {
        self.0
            .call("conversations.stream-start", |p, mut s| async move {
                p.conversations(&mut s)?
                    .call_stream_start(&mut s, conversation_id, last_event_id)
                    .await
            })
            .await
    }
}

/// `sandboxd:plugin/callbacks`.
pub struct Callbacks<'a>(Door<'a>);

impl Callbacks<'_> {
    pub async fn create(
        &self,
        id: &str,
        url: &str,
        conversation_id: Option<&str>,
        event_kinds: Option<&[String]>,
    ) -> Result<Callback, ExportError> {
        self.0
            .call("callbacks.create", |p, mut s| async move {
                p.callbacks(&mut s)?
                    .call_create(&mut s, id, url, conversation_id, event_kinds)
                    .await
            })
            .await
    }

    pub async fn all(&self) -> Result<Vec<Callback>, ExportError> {
        self.0
            .call("callbacks.all", |p, mut s| async move {
                p.callbacks(&mut s)?.call_all(&mut s).await
            })
            .await
    }

    pub async fn get(&self, id: &str) -> Result<Callback, ExportError> {
        self.0
            .call("callbacks.get", |p, mut s| async move {
                p.callbacks(&mut s)?.call_get(&mut s, id).await
            })
            .await
    }

    pub async fn delete(&self, id: &str) -> Result<(), ExportError> {
        self.0
            .call("callbacks.delete", |p, mut s| async move {
                p.callbacks(&mut s)?.call_delete(&mut s, id).await
            })
            .await
    }

    pub async fn deliveries(
        &self,
        callback_id: &str,
        page_id: Option<&str>,
        limit: u32,
    ) -> Result<AttemptPage, ExportError> {
        self.0
            .call("callbacks.deliveries", |p, mut s| async move {
                p.callbacks(&mut s)?
                    .call_deliveries(&mut s, callback_id, page_id, limit)
                    .await
            })
            .await
    }

    pub async fn deliver_due(&self, share: &Share) -> Result<DeliverySummary, ExportError> {
        self.0
            .call("callbacks.deliver-due", |p, mut s| async move {
                p.callbacks(&mut s)?.call_deliver_due(&mut s, share).await
            })
            .await
    }
}

/// `sandboxd:plugin/sync`.
pub struct Sync<'a>(Door<'a>);

impl Sync<'_> {
    pub async fn poll(&self, share: &Share) -> Result<CycleSummary, ExportError> {
        self.0
            .call("sync.poll", |p, mut s| async move {
                p.sync(&mut s)?.call_poll(&mut s, share).await
            })
            .await
    }

    pub async fn ingest_conversation(
        &self,
        session_api_key: &str,
        body: &[u8],
    ) -> Result<IngestSummary, ExportError> {
        self.0
            .call("sync.ingest-conversation", |p, mut s| async move {
                p.sync(&mut s)?
                    .call_ingest_conversation(&mut s, session_api_key, body)
                    .await
            })
            .await
    }

    pub async fn ingest_events(
        &self,
        session_api_key: &str,
        conversation_id: &str,
        body: &[u8],
    ) -> Result<IngestSummary, ExportError> {
        self.0
            .call("sync.ingest-events", |p, mut s| async move {
                p.sync(&mut s)?
                    .call_ingest_events(&mut s, session_api_key, conversation_id, body)
                    .await
            })
            .await
    }
}
