//! The configuration as written: the TOML file, then environment variables laid
//! over it. Nothing is validated here; `super::validate` does that, so a value is
//! checked the same way wherever it came from.

use std::path::PathBuf;

use indexmap::IndexMap;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub web_url: Option<String>,
    /// MiB of redb page cache.
    pub store_cache_mb: Option<i64>,
    #[serde(default)]
    pub runtime: RuntimeFile,
    #[serde(default)]
    pub specs: Vec<SpecFile>,
    #[serde(default)]
    pub auth: AuthFile,
    #[serde(default)]
    pub plugin: PluginFile,
    #[serde(default)]
    pub http: HttpFile,
    #[serde(default)]
    pub sync: SyncFile,
    #[serde(default)]
    pub local_runtime: LocalRuntimeFile,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeFile {
    pub api_url: Option<String>,
    pub api_key: Option<String>,
    pub resource_factor: Option<i64>,
    pub runtime_class: Option<String>,
    pub start_sandbox_timeout: Option<i64>,
    pub max_num_sandboxes: Option<i64>,
    pub polling_interval: Option<i64>,
    /// What to do with runtimes no sandbox record claims: stop, adopt, keep.
    pub orphans: Option<String>,
    /// Seconds between reconciliation passes.
    pub reconcile_interval: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    pub id: String,
    pub command: Option<Vec<String>>,
    pub working_dir: Option<String>,
    #[serde(default)]
    pub initial_env: IndexMap<String, String>,
    /// Local runtime readiness: `http` (GET `probe_path`) or `tcp`.
    pub probe: Option<String>,
    pub probe_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalRuntimeFile {
    /// `none` or `bwrap`.
    pub isolation: Option<String>,
    pub keep_on_exit: Option<bool>,
    /// Seconds between SIGTERM and SIGKILL.
    pub stop_grace: Option<f64>,
    /// Seconds a sandbox may take to become ready.
    pub ready_timeout: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub mode: Option<String>,
    #[serde(default)]
    pub keys: Vec<KeyFile>,
    pub user_header: Option<String>,
    /// Serve `mode = "none"` on a non-loopback address anyway.
    pub allow_unauthenticated_public: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub key: String,
    pub user_id: Option<String>,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginFile {
    pub path: Option<PathBuf>,
    /// Seconds.
    pub call_timeout: Option<f64>,
    pub memory_limit_mb: Option<i64>,
    pub max_instances: Option<i64>,
    /// Seconds a poll cycle may take.
    pub poll_timeout: Option<f64>,
    /// Reload the plugin when its file changes.
    pub watch: Option<bool>,
    /// Where the plugin's requests may go (see `crate::egress`).
    pub allowed_hosts: Option<Vec<String>>,
    pub call_http_requests: Option<i64>,
    pub poll_http_requests: Option<i64>,
    pub call_write_mb: Option<i64>,
    pub poll_write_mb: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    /// Seconds.
    pub timeout: Option<f64>,
    /// Seconds.
    pub connect_timeout: Option<f64>,
    pub max_response_mb: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncFile {
    /// `auto`, `poll` or `webhook`.
    pub mode: Option<String>,
    pub concurrency: Option<i64>,
    /// Seconds.
    pub request_timeout: Option<f64>,
}

/// Where a value can be overridden from the environment: the variable and the
/// TOML key it replaces (named together in error messages).
pub struct EnvVar {
    pub name: &'static str,
    pub key: &'static str,
}

pub const ENV_VARS: &[EnvVar] = &[
    EnvVar {
        name: "SANDBOXD_LISTEN",
        key: "listen",
    },
    EnvVar {
        name: "SANDBOXD_DATA_DIR",
        key: "data_dir",
    },
    EnvVar {
        name: "SANDBOXD_WEB_URL",
        key: "web_url",
    },
    EnvVar {
        name: "SANDBOXD_STORE_CACHE_MB",
        key: "store_cache_mb",
    },
    EnvVar {
        name: "SANDBOXD_RUNTIME_API_URL",
        key: "runtime.api_url",
    },
    EnvVar {
        name: "SANDBOXD_RUNTIME_API_KEY",
        key: "runtime.api_key",
    },
    EnvVar {
        name: "SANDBOXD_RESOURCE_FACTOR",
        key: "runtime.resource_factor",
    },
    EnvVar {
        name: "SANDBOXD_RUNTIME_CLASS",
        key: "runtime.runtime_class",
    },
    EnvVar {
        name: "SANDBOXD_START_SANDBOX_TIMEOUT",
        key: "runtime.start_sandbox_timeout",
    },
    EnvVar {
        name: "SANDBOXD_MAX_NUM_SANDBOXES",
        key: "runtime.max_num_sandboxes",
    },
    EnvVar {
        name: "SANDBOXD_POLLING_INTERVAL",
        key: "runtime.polling_interval",
    },
    EnvVar {
        name: "SANDBOXD_ORPHANS",
        key: "runtime.orphans",
    },
    EnvVar {
        name: "SANDBOXD_SYNC_MODE",
        key: "sync.mode",
    },
    EnvVar {
        name: "SANDBOXD_PLUGIN_ALLOWED_HOSTS",
        key: "plugin.allowed_hosts",
    },
    EnvVar {
        name: "SANDBOXD_AUTH_MODE",
        key: "auth.mode",
    },
    EnvVar {
        name: "SANDBOXD_ALLOW_UNAUTHENTICATED_PUBLIC",
        key: "auth.allow_unauthenticated_public",
    },
];

/// The environment variable that overrides `key`, for error messages.
pub fn env_name_of(key: &str) -> Option<&'static str> {
    ENV_VARS.iter().find(|v| v.key == key).map(|v| v.name)
}

impl FileConfig {
    /// Lay the environment (`get` looks a variable up) over the file's values.
    /// Errors name the variable and say what was expected.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), Vec<String>> {
        let mut errors = Vec::new();
        let int = |name: &str, errors: &mut Vec<String>| -> Option<i64> {
            let raw = get(name)?;
            match raw.trim().parse::<i64>() {
                Ok(v) => Some(v),
                Err(_) => {
                    errors.push(format!("{name}: expected a whole number, got '{raw}'"));
                    None
                }
            }
        };
        if let Some(v) = get("SANDBOXD_LISTEN") {
            self.listen = Some(v);
        }
        if let Some(v) = get("SANDBOXD_DATA_DIR") {
            self.data_dir = Some(v.into());
        }
        if let Some(v) = get("SANDBOXD_WEB_URL") {
            // An empty value unsets it, so a deployment can turn webhooks off.
            self.web_url = Some(v).filter(|v| !v.trim().is_empty());
        }
        if let Some(v) = int("SANDBOXD_STORE_CACHE_MB", &mut errors) {
            self.store_cache_mb = Some(v);
        }
        if let Some(v) = get("SANDBOXD_RUNTIME_API_URL") {
            self.runtime.api_url = Some(v);
        }
        if let Some(v) = get("SANDBOXD_RUNTIME_API_KEY") {
            self.runtime.api_key = Some(v);
        }
        if let Some(v) = int("SANDBOXD_RESOURCE_FACTOR", &mut errors) {
            self.runtime.resource_factor = Some(v);
        }
        if let Some(v) = get("SANDBOXD_RUNTIME_CLASS") {
            self.runtime.runtime_class = Some(v);
        }
        if let Some(v) = int("SANDBOXD_START_SANDBOX_TIMEOUT", &mut errors) {
            self.runtime.start_sandbox_timeout = Some(v);
        }
        if let Some(v) = int("SANDBOXD_MAX_NUM_SANDBOXES", &mut errors) {
            self.runtime.max_num_sandboxes = Some(v);
        }
        if let Some(v) = int("SANDBOXD_POLLING_INTERVAL", &mut errors) {
            self.runtime.polling_interval = Some(v);
        }
        if let Some(v) = get("SANDBOXD_ORPHANS") {
            self.runtime.orphans = Some(v);
        }
        if let Some(v) = get("SANDBOXD_SYNC_MODE") {
            self.sync.mode = Some(v);
        }
        if let Some(v) = get("SANDBOXD_PLUGIN_ALLOWED_HOSTS") {
            // Comma-separated; empty entries are dropped so a trailing comma is fine.
            self.plugin.allowed_hosts = Some(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
        }
        if let Some(v) = get("SANDBOXD_AUTH_MODE") {
            self.auth.mode = Some(v);
        }
        if let Some(v) = get("SANDBOXD_ALLOW_UNAUTHENTICATED_PUBLIC") {
            match v.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => self.auth.allow_unauthenticated_public = Some(true),
                "0" | "false" | "no" | "" => self.auth.allow_unauthenticated_public = Some(false),
                _ => errors.push(format!(
                    "SANDBOXD_ALLOW_UNAUTHENTICATED_PUBLIC: expected true or false, got '{v}'"
                )),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}
