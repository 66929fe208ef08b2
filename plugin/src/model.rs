//! The service's domain types, independent of the WIT bindings (the glue converts).

/// The five statuses the app sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}
