//! The service's domain types, independent of the WIT bindings (the glue converts).

/// The five statuses the app sees (stored in the history as the API spells
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Starting,
    Running,
    Paused,
    Error,
    Missing,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExposedUrl {
    pub name: &'static str,
    pub url: String,
    pub port: u16,
}

/// `SandboxInfo` as the app sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxInfo {
    pub id: String,
    pub created_by_user_id: Option<String>,
    pub sandbox_spec_id: String,
    pub status: Status,
    pub session_api_key: Option<String>,
    pub exposed_urls: Option<Vec<ExposedUrl>>,
    /// ISO-8601, UTC, `Z` suffix.
    pub created_at: String,
    pub status_detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxPage {
    pub items: Vec<SandboxInfo>,
    pub next_page_id: Option<String>,
}

/// A template sandboxes start from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxSpec {
    pub id: String,
    pub command: Option<Vec<String>>,
    pub initial_env: Vec<(String, String)>,
    pub working_dir: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecPage {
    pub items: Vec<SandboxSpec>,
    pub next_page_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeClass {
    Gvisor,
    Sysbox,
}

/// The operator's configuration, as the host validated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Without a trailing slash.
    pub runtime_api_url: String,
    /// Without a trailing slash.
    pub web_url: Option<String>,
    pub resource_factor: u8,
    pub runtime_class: RuntimeClass,
    pub start_sandbox_timeout_secs: u32,
    /// At least 1.
    pub max_num_sandboxes: u32,
    /// The first is the default.
    pub specs: Vec<SandboxSpec>,
    /// Deadline of one request to an agent server during sync.
    pub agent_request_timeout_ms: u32,
    /// Each spec's lifecycle policy, by spec id (overrides applied by the host).
    pub spec_policies: Vec<(String, LifecyclePolicy)>,
    /// The policy of a sandbox whose spec is no longer configured.
    pub default_policy: LifecyclePolicy,
    pub teardown_grace_secs: u32,
    pub history_retention_secs: u32,
    /// How many sandboxes of each spec are kept started ahead of any request
    /// (its warm pool), by spec id; a spec not named has none.
    pub warm_pools: Vec<(String, u32)>,
}

impl Settings {
    /// The lifecycle policy of sandboxes started from `spec_id`.
    pub fn policy_of(&self, spec_id: &str) -> LifecyclePolicy {
        self.spec_policies
            .iter()
            .find(|(id, _)| id == spec_id)
            .map_or(self.default_policy, |(_, p)| *p)
    }

    /// The size of `spec_id`'s warm pool (0: none).
    pub fn warm_of(&self, spec_id: &str) -> u32 {
        self.warm_pools
            .iter()
            .find(|(id, _)| id == spec_id)
            .map_or(0, |(_, n)| *n)
    }
}

/// When a sandbox is paused or deleted without being asked; none is off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LifecyclePolicy {
    pub idle_pause_secs: Option<u32>,
    pub max_running_secs: Option<u32>,
    pub delete_paused_after_secs: Option<u32>,
}

impl LifecyclePolicy {
    /// Whether any policy is on.
    pub fn any(&self) -> bool {
        self.idle_pause_secs.is_some()
            || self.max_running_secs.is_some()
            || self.delete_paused_after_secs.is_some()
    }
}

/// Why a sandbox's status changed (the history's and the lifecycle event's
/// `cause`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    User,
    Limit,
    Idle,
    MaxRunning,
    Ttl,
    StartTimeout,
    Runtime,
    Reconcile,
    Wake,
}

/// One entry of a sandbox's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange {
    /// ISO-8601, UTC, `Z` suffix.
    pub at: String,
    pub status: Status,
    pub previous_status: Option<Status>,
    pub cause: Cause,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub items: Vec<StatusChange>,
    pub next_page_id: Option<String>,
}
