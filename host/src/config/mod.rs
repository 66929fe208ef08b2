//! Configuration: a TOML file (`--config`), environment variables over it, and
//! validation into [`Config`].
//!
//! Invariant: a [`Config`] is valid. Every value was checked once, here, and an
//! invalid one stopped start-up with a message that names the key (and its
//! environment variable) and the values allowed. All problems are reported at
//! once, so fixing a config file takes one round.

pub mod defaults;
mod file;
mod secret;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use file::FileConfig;
pub use secret::Secret;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// redb's page cache: what the store may keep in memory.
    pub store_cache_bytes: usize,
    /// Public URL of this service, without a trailing slash.
    pub web_url: Option<String>,
    pub runtime: RuntimeConfig,
    /// At least one; the first is the default.
    pub specs: Vec<SpecConfig>,
    pub auth: AuthConfig,
    pub plugin: PluginConfig,
    pub http: HttpConfig,
    pub sync: SyncConfig,
    pub local_runtime: LocalRuntimeConfig,
}

/// How the embedded local runtime runs sandboxes (used when `runtime.api_url` is
/// not set).
#[derive(Debug, Clone)]
pub struct LocalRuntimeConfig {
    pub isolation: Isolation,
    pub keep_on_exit: bool,
    pub stop_grace: Duration,
    pub ready_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// None at all: the command runs as sandboxd's user, sees what it sees.
    None,
    /// Bubblewrap: a private /tmp, the sandbox's directory writable, the rest
    /// read-only.
    Bwrap,
}

/// How the local runtime tells that a sandbox is ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `GET http://127.0.0.1:{port}{path}` answers (any status below 500).
    Http(String),
    /// A TCP connection to the port succeeds.
    Tcp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    /// Poll when agent servers cannot call back (no `web_url`, or a localhost one).
    Auto,
    Poll,
    /// Rely on webhooks only.
    Webhook,
}

#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub mode: SyncMode,
    /// Agent-server requests in flight at once.
    pub concurrency: usize,
    pub request_timeout: Duration,
}

impl Config {
    /// Whether the host polls agent servers: always in `poll` mode, never in
    /// `webhook` mode, and in `auto` mode when they cannot call back because this
    /// service has no public URL.
    pub fn polls(&self) -> bool {
        match self.sync.mode {
            SyncMode::Poll => true,
            SyncMode::Webhook => false,
            SyncMode::Auto => self
                .web_url
                .as_deref()
                .is_none_or(|u| u.contains("localhost")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Without a trailing slash; none: the embedded local runtime.
    pub api_url: Option<String>,
    /// Empty with the embedded local runtime (it makes its own).
    pub api_key: Secret,
    pub resource_factor: u8,
    pub runtime_class: RuntimeClass,
    pub start_sandbox_timeout_secs: u32,
    pub max_num_sandboxes: u32,
    /// Seconds between poll cycles of the agent servers.
    pub polling_interval_secs: u32,
    pub orphans: Orphans,
    pub reconcile_interval_secs: u32,
}

/// What reconciliation does with a runtime no sandbox record claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orphans {
    Stop,
    Adopt,
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeClass {
    Gvisor,
    Sysbox,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecConfig {
    pub id: String,
    pub command: Option<Vec<String>>,
    pub working_dir: String,
    pub initial_env: Vec<(String, String)>,
    /// How the local runtime tells it is ready.
    pub probe: Probe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// One user; every call sees everything.
    None,
    /// `Authorization: Bearer <key>`.
    ApiKeys,
    /// A gateway in front sets the user id header.
    TrustedHeader,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub keys: Vec<ApiKey>,
    /// Lower-case header name.
    pub user_header: String,
}

#[derive(Debug, Clone)]
pub struct ApiKey {
    pub key: Secret,
    /// None for an admin key.
    pub user_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct PluginConfig {
    /// A plugin to run instead of the embedded one.
    pub path: Option<PathBuf>,
    pub call_timeout: Duration,
    pub memory_limit_bytes: usize,
    pub max_instances: u32,
    pub poll_timeout: Duration,
    /// Reload the plugin when its file changes (with `path` only).
    pub watch: bool,
    pub allowed_hosts: Vec<crate::egress::Rule>,
    pub call_http_requests: u64,
    pub poll_http_requests: u64,
    pub call_write_bytes: u64,
    pub poll_write_bytes: u64,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_response_bytes: usize,
}

/// Why the configuration could not be used; each line is one problem.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

impl Config {
    /// Read `path` (if any), lay the process environment over it, and validate.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let mut raw = match path {
            None => FileConfig::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError(vec![format!(
                        "cannot read config file {}: {e}",
                        path.display()
                    )])
                })?;
                toml::from_str(&text).map_err(|e| {
                    ConfigError(vec![format!(
                        "{}: {}",
                        path.display(),
                        e.to_string().trim()
                    )])
                })?
            }
        };
        raw.apply_env(|name| std::env::var(name).ok())
            .map_err(ConfigError)?;
        validate(raw)
    }
}

/// `key (ENV_VAR)` for messages about a value that can come from either.
fn name(key: &str) -> String {
    match file::env_name_of(key) {
        Some(env) => format!("{key} ({env})"),
        None => key.to_owned(),
    }
}

pub fn validate(raw: FileConfig) -> Result<Config, ConfigError> {
    let mut errors = Vec::new();
    let mut err = |msg: String| errors.push(msg);

    let listen =
        parse_listen(raw.listen.as_deref().unwrap_or(defaults::LISTEN)).unwrap_or_else(|e| {
            err(format!("{}: {e}", name("listen")));
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
        });
    let data_dir = raw.data_dir.unwrap_or_else(|| defaults::DATA_DIR.into());
    if data_dir.as_os_str().is_empty() {
        err(format!("{}: must not be empty", name("data_dir")));
    }
    let store_cache_bytes = match raw.store_cache_mb {
        None => defaults::STORE_CACHE_MB << 20,
        Some(mb @ 1..=65536) => (mb as usize) << 20,
        Some(mb) => {
            err(format!(
                "{}: {mb} is out of range; use 1 to 65536 (MiB)",
                name("store_cache_mb")
            ));
            defaults::STORE_CACHE_MB << 20
        }
    };
    let web_url = raw.web_url.as_deref().and_then(|u| {
        parse_base_url(u)
            .map_err(|e| err(format!("{}: {e}", name("web_url"))))
            .ok()
    });

    let rt = raw.runtime;
    let api_url = rt
        .api_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            parse_base_url(u).unwrap_or_else(|e| {
                err(format!("{}: {e}", name("runtime.api_url")));
                String::new()
            })
        });
    let api_key = Secret::new(rt.api_key.unwrap_or_default());
    if api_url.is_some() && api_key.is_empty() {
        err(format!(
            "{}: required with a remote runtime API",
            name("runtime.api_key")
        ));
    }
    let resource_factor = match rt
        .resource_factor
        .unwrap_or(i64::from(defaults::RESOURCE_FACTOR))
    {
        v @ (1 | 2 | 4 | 8) => v as u8,
        v => {
            err(format!(
                "{}: {v} is not allowed; use 1, 2, 4 or 8",
                name("runtime.resource_factor")
            ));
            1
        }
    };
    let runtime_class = match rt.runtime_class.as_deref().map(str::trim) {
        None | Some("gvisor") => RuntimeClass::Gvisor,
        Some("sysbox") => RuntimeClass::Sysbox,
        Some(v) => {
            err(format!(
                "{}: '{v}' is not allowed; use gvisor or sysbox",
                name("runtime.runtime_class")
            ));
            RuntimeClass::Gvisor
        }
    };
    let orphans = match rt.orphans.as_deref().map(str::trim) {
        None | Some("stop") => Orphans::Stop,
        Some("adopt") => Orphans::Adopt,
        Some("keep") => Orphans::Keep,
        Some(v) => {
            err(format!(
                "{}: '{v}' is not allowed; use stop, adopt or keep",
                name("runtime.orphans")
            ));
            Orphans::Stop
        }
    };
    let mut positive = |key: &str, value: Option<i64>, default: u32, min: i64| -> u32 {
        match value {
            None => default,
            Some(v) if v >= min && v <= i64::from(u32::MAX) => v as u32,
            Some(v) => {
                err(format!(
                    "{}: {v} is out of range; use a whole number from {min} up",
                    name(key)
                ));
                default
            }
        }
    };
    let runtime = RuntimeConfig {
        api_url,
        api_key,
        resource_factor,
        runtime_class,
        start_sandbox_timeout_secs: positive(
            "runtime.start_sandbox_timeout",
            rt.start_sandbox_timeout,
            defaults::START_SANDBOX_TIMEOUT_SECS,
            1,
        ),
        max_num_sandboxes: positive(
            "runtime.max_num_sandboxes",
            rt.max_num_sandboxes,
            defaults::MAX_NUM_SANDBOXES,
            1,
        ),
        polling_interval_secs: positive(
            "runtime.polling_interval",
            rt.polling_interval,
            defaults::POLLING_INTERVAL_SECS,
            1,
        ),
        orphans,
        reconcile_interval_secs: positive(
            "runtime.reconcile_interval",
            rt.reconcile_interval,
            defaults::RECONCILE_INTERVAL_SECS,
            1,
        ),
    };

    let specs = validate_specs(raw.specs, runtime.api_url.is_none(), &mut err);
    let local_runtime = validate_local_runtime(raw.local_runtime, &mut err);
    let auth = validate_auth(raw.auth, listen, &mut err);
    let plugin = validate_plugin(raw.plugin, &mut err);
    let http = validate_http(raw.http, &mut err);
    let sync = validate_sync(raw.sync, &mut err);

    if errors.is_empty() {
        Ok(Config {
            listen,
            data_dir,
            store_cache_bytes,
            web_url,
            runtime,
            specs,
            auth,
            plugin,
            http,
            sync,
            local_runtime,
        })
    } else {
        Err(ConfigError(errors))
    }
}

fn validate_specs(
    raw: Vec<file::SpecFile>,
    local: bool,
    err: &mut impl FnMut(String),
) -> Vec<SpecConfig> {
    if raw.is_empty() {
        let (id, command) = if local {
            (
                defaults::LOCAL_SPEC_ID,
                vec![
                    "python3".into(),
                    "-c".into(),
                    defaults::LOCAL_SPEC_SCRIPT.into(),
                    "{port}".into(),
                ],
            )
        } else {
            (
                defaults::SPEC_ID,
                defaults::SPEC_COMMAND
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
            )
        };
        return vec![SpecConfig {
            id: id.into(),
            command: Some(command),
            working_dir: defaults::SPEC_WORKING_DIR.into(),
            initial_env: Vec::new(),
            probe: Probe::Http(defaults::PROBE_PATH.into()),
        }];
    }
    let mut specs: Vec<SpecConfig> = Vec::with_capacity(raw.len());
    for (i, s) in raw.into_iter().enumerate() {
        if s.id.trim().is_empty() {
            err(format!("specs[{i}].id: must not be empty"));
        } else if specs.iter().any(|other| other.id == s.id) {
            err(format!("specs[{i}].id: '{}' is configured twice", s.id));
        }
        let probe = match s.probe.as_deref().map(str::trim) {
            None | Some("http") => {
                let path = s.probe_path.unwrap_or_else(|| defaults::PROBE_PATH.into());
                if !path.starts_with('/') {
                    err(format!(
                        "specs[{i}].probe_path: '{path}' must start with '/'"
                    ));
                }
                Probe::Http(path)
            }
            Some("tcp") => Probe::Tcp,
            Some(v) => {
                err(format!(
                    "specs[{i}].probe: '{v}' is not allowed; use http or tcp"
                ));
                Probe::Tcp
            }
        };
        specs.push(SpecConfig {
            id: s.id,
            command: s.command,
            working_dir: s
                .working_dir
                .unwrap_or_else(|| defaults::SPEC_WORKING_DIR.into()),
            initial_env: s.initial_env.into_iter().collect(),
            probe,
        });
    }
    specs
}

fn validate_local_runtime(
    raw: file::LocalRuntimeFile,
    err: &mut impl FnMut(String),
) -> LocalRuntimeConfig {
    let isolation = match raw.isolation.as_deref().map(str::trim) {
        None | Some("none") => Isolation::None,
        Some("bwrap") => Isolation::Bwrap,
        Some(v) => {
            err(format!(
                "local_runtime.isolation: '{v}' is not allowed; use none or bwrap"
            ));
            Isolation::None
        }
    };
    LocalRuntimeConfig {
        isolation,
        keep_on_exit: raw.keep_on_exit.unwrap_or(false),
        stop_grace: seconds(
            "local_runtime.stop_grace",
            raw.stop_grace,
            defaults::LOCAL_STOP_GRACE,
            err,
        ),
        ready_timeout: seconds(
            "local_runtime.ready_timeout",
            raw.ready_timeout,
            defaults::LOCAL_READY_TIMEOUT,
            err,
        ),
    }
}

fn validate_auth(
    raw: file::AuthFile,
    listen: SocketAddr,
    err: &mut impl FnMut(String),
) -> AuthConfig {
    let mode = match raw.mode.as_deref().map(str::trim) {
        None | Some("none") => AuthMode::None,
        Some("api-keys") => AuthMode::ApiKeys,
        Some("trusted-header") => AuthMode::TrustedHeader,
        Some(v) => {
            err(format!(
                "{}: '{v}' is not allowed; use none, api-keys or trusted-header",
                name("auth.mode")
            ));
            AuthMode::None
        }
    };
    let mut keys = Vec::with_capacity(raw.keys.len());
    for (i, k) in raw.keys.into_iter().enumerate() {
        if k.key.len() < 16 {
            err(format!(
                "auth.keys[{i}].key: too short; use at least 16 characters"
            ));
        }
        match (k.user_id, k.admin) {
            (Some(_), true) => err(format!(
                "auth.keys[{i}]: set either user_id or admin = true, not both"
            )),
            (None, false) => err(format!(
                "auth.keys[{i}]: set user_id, or admin = true for an admin key"
            )),
            (Some(u), false) if u.trim().is_empty() => {
                err(format!("auth.keys[{i}].user_id: must not be empty"))
            }
            (user_id, _) => keys.push(ApiKey {
                key: Secret::new(k.key),
                user_id,
            }),
        }
    }
    if mode == AuthMode::ApiKeys && keys.is_empty() {
        err("auth.keys: api-keys mode needs at least one [[auth.keys]] entry".into());
    }
    let user_header = raw
        .user_header
        .unwrap_or_else(|| defaults::USER_HEADER.into())
        .to_ascii_lowercase();
    if hyper::header::HeaderName::from_bytes(user_header.as_bytes()).is_err() {
        err(format!(
            "auth.user_header: '{user_header}' is not a valid header name"
        ));
    }
    let allow_unauthenticated_public = raw.allow_unauthenticated_public.unwrap_or(false);
    if mode == AuthMode::None && !listen.ip().is_loopback() && !allow_unauthenticated_public {
        err(format!(
            "{}: refusing to serve {listen} without authentication (auth.mode = \"none\" lets anyone \
             who can connect act as the only user). Listen on 127.0.0.1, choose auth.mode = \
             \"api-keys\" or \"trusted-header\", or set {} = true to accept the risk",
            name("listen"),
            name("auth.allow_unauthenticated_public")
        ));
    }
    AuthConfig {
        mode,
        keys,
        user_header,
    }
}

fn validate_plugin(raw: file::PluginFile, err: &mut impl FnMut(String)) -> PluginConfig {
    let call_timeout = seconds(
        "plugin.call_timeout",
        raw.call_timeout,
        defaults::CALL_TIMEOUT,
        err,
    );
    let memory_limit_bytes = match raw.memory_limit_mb {
        None => defaults::MEMORY_LIMIT_BYTES,
        Some(mb @ 1..=4096) => (mb as usize) << 20,
        Some(mb) => {
            err(format!(
                "plugin.memory_limit_mb: {mb} is out of range; use 1 to 4096"
            ));
            defaults::MEMORY_LIMIT_BYTES
        }
    };
    let max_instances = match raw.max_instances {
        None => defaults::MAX_INSTANCES,
        Some(n @ 1..=10_000) => n as u32,
        Some(n) => {
            err(format!(
                "plugin.max_instances: {n} is out of range; use 1 to 10000"
            ));
            defaults::MAX_INSTANCES
        }
    };
    let allowed_hosts = match raw.allowed_hosts {
        None => crate::egress::DEFAULT_ALLOWED_HOSTS
            .iter()
            .filter_map(|r| crate::egress::Rule::parse(r).ok())
            .collect(),
        Some(list) => list
            .iter()
            .filter_map(|r| {
                crate::egress::Rule::parse(r)
                    .map_err(|e| err(format!("{}: {e}", name("plugin.allowed_hosts"))))
                    .ok()
            })
            .collect(),
    };
    let mut count = |key: &str, value: Option<i64>, default: u64, unit: u64| -> u64 {
        match value {
            None => default,
            Some(v) if v >= 1 => (v as u64).saturating_mul(unit),
            Some(v) => {
                err(format!(
                    "{key}: {v} is out of range; use a whole number from 1 up"
                ));
                default
            }
        }
    };
    let call_http_requests = count(
        "plugin.call_http_requests",
        raw.call_http_requests,
        defaults::CALL_HTTP_REQUESTS,
        1,
    );
    let poll_http_requests = count(
        "plugin.poll_http_requests",
        raw.poll_http_requests,
        defaults::POLL_HTTP_REQUESTS,
        1,
    );
    let call_write_bytes = count(
        "plugin.call_write_mb",
        raw.call_write_mb,
        defaults::CALL_WRITE_BYTES,
        1 << 20,
    );
    let poll_write_bytes = count(
        "plugin.poll_write_mb",
        raw.poll_write_mb,
        defaults::POLL_WRITE_BYTES,
        1 << 20,
    );
    PluginConfig {
        path: raw.path,
        call_timeout,
        memory_limit_bytes,
        max_instances,
        poll_timeout: seconds(
            "plugin.poll_timeout",
            raw.poll_timeout,
            defaults::POLL_TIMEOUT,
            err,
        ),
        watch: raw.watch.unwrap_or(true),
        allowed_hosts,
        call_http_requests,
        poll_http_requests,
        call_write_bytes,
        poll_write_bytes,
    }
}

fn validate_sync(raw: file::SyncFile, err: &mut impl FnMut(String)) -> SyncConfig {
    let mode = match raw.mode.as_deref().map(str::trim) {
        None | Some("auto") => SyncMode::Auto,
        Some("poll") => SyncMode::Poll,
        Some("webhook") => SyncMode::Webhook,
        Some(v) => {
            err(format!(
                "{}: '{v}' is not allowed; use auto, poll or webhook",
                name("sync.mode")
            ));
            SyncMode::Auto
        }
    };
    SyncConfig {
        mode,
        concurrency: match raw.concurrency {
            None => defaults::SYNC_CONCURRENCY,
            Some(n @ 1..=1024) => n as usize,
            Some(n) => {
                err(format!(
                    "sync.concurrency: {n} is out of range; use 1 to 1024"
                ));
                defaults::SYNC_CONCURRENCY
            }
        },
        request_timeout: seconds(
            "sync.request_timeout",
            raw.request_timeout,
            defaults::SYNC_REQUEST_TIMEOUT,
            err,
        ),
    }
}

fn validate_http(raw: file::HttpFile, err: &mut impl FnMut(String)) -> HttpConfig {
    HttpConfig {
        timeout: seconds("http.timeout", raw.timeout, defaults::HTTP_TIMEOUT, err),
        connect_timeout: seconds(
            "http.connect_timeout",
            raw.connect_timeout,
            defaults::HTTP_CONNECT_TIMEOUT,
            err,
        ),
        max_response_bytes: match raw.max_response_mb {
            None => defaults::HTTP_MAX_RESPONSE_BYTES,
            Some(mb @ 1..=1024) => (mb as usize) << 20,
            Some(mb) => {
                err(format!(
                    "http.max_response_mb: {mb} is out of range; use 1 to 1024"
                ));
                defaults::HTTP_MAX_RESPONSE_BYTES
            }
        },
    }
}

fn seconds(
    key: &str,
    value: Option<f64>,
    default: Duration,
    err: &mut impl FnMut(String),
) -> Duration {
    match value {
        None => default,
        // At least a millisecond: anything shorter is zero to the timers it sets.
        Some(s) if s.is_finite() && (0.001..=86_400.0).contains(&s) => Duration::from_secs_f64(s),
        Some(s) => {
            err(format!(
                "{key}: {s} is out of range; use a number of seconds from 0.001 up to 86400"
            ));
            default
        }
    }
}

/// An absolute `http`/`https` URL with a host and no query or fragment, returned
/// as parsed (so what is used is what was checked: a lenient spelling such as
/// `http:host` or one with a tab in it is written out in full), without its
/// trailing slash (paths are appended to it).
fn parse_base_url(raw: &str) -> Result<String, String> {
    let trimmed = raw.trim();
    let url = url::Url::parse(trimmed).map_err(|e| format!("'{raw}' is not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("'{raw}' must use http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("'{raw}' has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("'{raw}' must not have a query or fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// `IP:PORT`, or `localhost:PORT`.
fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    let raw = raw.trim();
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = raw.strip_prefix("localhost:")
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    Err(format!(
        "'{raw}' is not an address; use IP:PORT such as 127.0.0.1:3000"
    ))
}

#[cfg(test)]
mod tests;
