//! The app-facing JSON shapes of sandboxes and specs (`SandboxInfo`,
//! `SandboxPage`, `SandboxSpecInfo`), field for field and in the upstream
//! service's order. Each is also its own OpenAPI schema.

use indexmap::IndexMap;
use serde::Serialize;
use utoipa::ToSchema;

use crate::bindings::lifecycle::{Cause, HistoryPage};
use crate::bindings::types::{ExposedUrl, SandboxInfo, SandboxSpec, SandboxStatus};

/// One of the five statuses a sandbox can be in.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Starting,
    Running,
    Paused,
    Error,
    /// No runtime answers for the sandbox (stopped, deleted or unknown).
    Missing,
}

impl From<SandboxStatus> for Status {
    fn from(s: SandboxStatus) -> Self {
        match s {
            SandboxStatus::Starting => Status::Starting,
            SandboxStatus::Running => Status::Running,
            SandboxStatus::Paused => Status::Paused,
            SandboxStatus::Error => Status::Error,
            SandboxStatus::Missing => Status::Missing,
        }
    }
}

/// A URL a running sandbox exposes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExposedUrlJson {
    /// `AGENT_SERVER`, `VSCODE`, `WORKER_1` or `WORKER_2`.
    pub name: String,
    pub url: String,
    pub port: u16,
}

/// A sandbox (`SandboxInfo`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SandboxInfo)]
pub struct SandboxJson {
    pub id: String,
    /// None for a sandbox created without a user (single-user mode, adopted).
    #[schema(required = true)]
    pub created_by_user_id: Option<String>,
    pub sandbox_spec_id: String,
    pub status: Status,
    /// The key the agent server accepts; null when there is no runtime.
    #[schema(required = true)]
    pub session_api_key: Option<String>,
    /// Null unless running: then the agent server, VSCode and the two
    /// workers, in that order (empty when the runtime has no URL).
    #[schema(required = true)]
    pub exposed_urls: Option<Vec<ExposedUrlJson>>,
    /// ISO-8601 in UTC with a `Z` suffix.
    pub created_at: String,
    /// Why the status is what it is, when there is something to say.
    #[schema(required = true)]
    pub status_detail: Option<String>,
}

impl From<SandboxInfo> for SandboxJson {
    fn from(s: SandboxInfo) -> Self {
        SandboxJson {
            id: s.id,
            created_by_user_id: s.created_by_user_id,
            sandbox_spec_id: s.sandbox_spec_id,
            status: s.status.into(),
            session_api_key: s.session_api_key,
            exposed_urls: s
                .exposed_urls
                .map(|urls| urls.into_iter().map(ExposedUrlJson::from).collect()),
            created_at: s.created_at,
            status_detail: s.status_detail,
        }
    }
}

impl From<ExposedUrl> for ExposedUrlJson {
    fn from(u: ExposedUrl) -> Self {
        ExposedUrlJson {
            name: u.name,
            url: u.url,
            port: u.port,
        }
    }
}

/// A page of sandboxes, newest first (`SandboxPage`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SandboxPage)]
pub struct SandboxPageJson {
    pub items: Vec<SandboxJson>,
    /// Pass back as `page_id` for the next page; null on the last page.
    #[schema(required = true)]
    pub next_page_id: Option<String>,
}

/// A template sandboxes are started from (`SandboxSpecInfo`).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SandboxSpecInfo)]
pub struct SpecJson {
    /// The image; also the spec's id.
    pub id: String,
    #[schema(required = true)]
    pub command: Option<Vec<String>>,
    /// ISO-8601 in UTC: when this service loaded its configuration.
    pub created_at: String,
    /// Environment variables, in the order the operator wrote them.
    pub initial_env: IndexMap<String, String>,
    pub working_dir: String,
}

impl From<SandboxSpec> for SpecJson {
    fn from(s: SandboxSpec) -> Self {
        SpecJson {
            id: s.id,
            command: s.command,
            created_at: s.created_at,
            initial_env: s.initial_env.into_iter().collect(),
            working_dir: s.working_dir,
        }
    }
}

/// A page of specs.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SandboxSpecPage)]
pub struct SpecPageJson {
    pub items: Vec<SpecJson>,
    #[schema(required = true)]
    pub next_page_id: Option<String>,
}

/// Why a sandbox's status changed.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CauseJson {
    /// A user's request.
    User,
    /// The per-user limit on running sandboxes.
    Limit,
    /// The idle-pause policy.
    Idle,
    /// The max-running policy.
    MaxRunning,
    /// The delete-paused-after policy.
    Ttl,
    /// A start that did not reach running within the start timeout.
    StartTimeout,
    /// The runtime reported it.
    Runtime,
    /// Reconciliation repaired the record.
    Reconcile,
    /// A request to the paused sandbox's URL woke it.
    Wake,
}

impl From<Cause> for CauseJson {
    fn from(c: Cause) -> Self {
        match c {
            Cause::User => CauseJson::User,
            Cause::Limit => CauseJson::Limit,
            Cause::Idle => CauseJson::Idle,
            Cause::MaxRunning => CauseJson::MaxRunning,
            Cause::Ttl => CauseJson::Ttl,
            Cause::StartTimeout => CauseJson::StartTimeout,
            Cause::Runtime => CauseJson::Runtime,
            Cause::Reconcile => CauseJson::Reconcile,
            Cause::Wake => CauseJson::Wake,
        }
    }
}

/// One status change of a sandbox.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SandboxStatusChange)]
pub struct StatusChangeJson {
    /// ISO-8601 in UTC with a `Z` suffix.
    pub at: String,
    pub status: Status,
    pub cause: CauseJson,
    #[schema(required = true)]
    pub detail: Option<String>,
}

/// A page of a sandbox's history, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SandboxHistoryPage)]
pub struct HistoryPageJson {
    pub items: Vec<StatusChangeJson>,
    #[schema(required = true)]
    pub next_page_id: Option<String>,
}

impl From<HistoryPage> for HistoryPageJson {
    fn from(p: HistoryPage) -> Self {
        HistoryPageJson {
            items: p
                .items
                .into_iter()
                .map(|c| StatusChangeJson {
                    at: c.at,
                    status: c.status.into(),
                    cause: c.cause.into(),
                    detail: c.detail,
                })
                .collect(),
            next_page_id: p.next_page_id,
        }
    }
}

/// `{"success": true}`: an action was carried out.
#[derive(Debug, Serialize, ToSchema)]
pub struct Success {
    pub success: bool,
}

pub const SUCCESS: Success = Success { success: true };
