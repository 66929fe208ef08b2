//! The `SANDBOXD_*` environment variables, each of which replaces one key of
//! the file. [`VARS`] is the one table of them: which variable sets which key,
//! and how its value is read. `apply_env` lays them over the file, and messages
//! about a key name its variable next to it (`super::name`).
//!
//! Nothing is validated here beyond reading the value as the key's type (a whole
//! number, a flag, a list): the key's section checks it like a value from the file.

use super::FileConfig;

/// One variable: the TOML key it replaces, and how its value is set there.
struct EnvVar {
    name: &'static str,
    key: &'static str,
    /// Set `key` from the variable's value; an error says what was expected.
    set: fn(&mut FileConfig, String) -> Result<(), String>,
}

const VARS: &[EnvVar] = &[
    EnvVar {
        name: "SANDBOXD_LISTEN",
        key: "listen",
        set: |c, v| {
            c.listen = Some(v);
            Ok(())
        },
    },
    EnvVar {
        name: "SANDBOXD_DATA_DIR",
        key: "data_dir",
        set: |c, v| {
            c.data_dir = Some(v.into());
            Ok(())
        },
    },
    EnvVar {
        name: "SANDBOXD_WEB_URL",
        key: "web_url",
        set: |c, v| {
            // An empty value unsets it, so a deployment can turn webhooks off.
            c.web_url = Some(v).filter(|v| !v.trim().is_empty());
            Ok(())
        },
    },
    EnvVar {
        name: "SANDBOXD_DATABASE_URL",
        key: "database_url",
        set: |c, v| {
            // An empty value unsets it: back to the embedded store.
            c.database_url = Some(v).filter(|v| !v.trim().is_empty());
            Ok(())
        },
    },
    EnvVar {
        name: "SANDBOXD_HOST_KEY",
        key: "host_key",
        set: |c, v| {
            c.host_key = Some(v).filter(|v| !v.trim().is_empty());
            Ok(())
        },
    },
    EnvVar {
        name: "SANDBOXD_STORE_CACHE_MB",
        key: "store_cache_mb",
        set: |c, v| whole(&v).map(|n| c.store_cache_mb = Some(n)),
    },
    EnvVar {
        name: "SANDBOXD_RUNTIME_API_URL",
        key: "runtime.api_url",
        set: |c, v| {
            c.runtime.api_url = Some(v);
            Ok(())
        },
    },
    EnvVar {
        name: "SANDBOXD_RUNTIME_API_KEY",
        key: "runtime.api_key",
        set: |c, v| {
            c.runtime.api_key = Some(v);
            Ok(())
        },
    },
    EnvVar {
        name: "SANDBOXD_RESOURCE_FACTOR",
        key: "runtime.resource_factor",
        set: |c, v| whole(&v).map(|n| c.runtime.resource_factor = Some(n)),
    },
    EnvVar {
        name: "SANDBOXD_RUNTIME_CLASS",
        key: "runtime.runtime_class",
        set: |c, v| {
            c.runtime.runtime_class = Some(v);
            Ok(())
        },
    },
    EnvVar {
        name: "SANDBOXD_START_SANDBOX_TIMEOUT",
        key: "runtime.start_sandbox_timeout",
        set: |c, v| whole(&v).map(|n| c.runtime.start_sandbox_timeout = Some(n)),
    },
    EnvVar {
        name: "SANDBOXD_MAX_NUM_SANDBOXES",
        key: "runtime.max_num_sandboxes",
        set: |c, v| whole(&v).map(|n| c.runtime.max_num_sandboxes = Some(n)),
    },
    EnvVar {
        name: "SANDBOXD_POLLING_INTERVAL",
        key: "runtime.polling_interval",
        set: |c, v| whole(&v).map(|n| c.runtime.polling_interval = Some(n)),
    },
    EnvVar {
        name: "SANDBOXD_ORPHANS",
        key: "runtime.orphans",
        set: |c, v| {
            c.runtime.orphans = Some(v);
            Ok(())
        },
    },
    EnvVar {
        name: "SANDBOXD_SYNC_MODE",
        key: "sync.mode",
        set: |c, v| {
            c.sync.mode = Some(v);
            Ok(())
        },
    },
    EnvVar {
        name: "SANDBOXD_PLUGIN_ALLOWED_HOSTS",
        key: "plugin.allowed_hosts",
        set: |c, v| {
            // Comma-separated; empty entries are dropped so a trailing comma is fine.
            c.plugin.allowed_hosts = Some(
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            );
            Ok(())
        },
    },
    EnvVar {
        name: "SANDBOXD_AUTH_MODE",
        key: "auth.mode",
        set: |c, v| {
            c.auth.mode = Some(v);
            Ok(())
        },
    },
    EnvVar {
        name: "SANDBOXD_ALLOW_UNAUTHENTICATED_PUBLIC",
        key: "auth.allow_unauthenticated_public",
        set: |c, v| flag(&v).map(|b| c.auth.allow_unauthenticated_public = Some(b)),
    },
];

/// A whole number, surrounding whitespace allowed.
fn whole(raw: &str) -> Result<i64, String> {
    raw.trim()
        .parse()
        .map_err(|_| format!("expected a whole number, got '{raw}'"))
}

/// `true`, `1` or `yes`; `false`, `0`, `no` or empty (any case).
fn flag(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" | "" => Ok(false),
        _ => Err(format!("expected true or false, got '{raw}'")),
    }
}

/// The environment variable that overrides `key`, for error messages.
pub(super) fn env_name_of(key: &str) -> Option<&'static str> {
    VARS.iter().find(|v| v.key == key).map(|v| v.name)
}

impl FileConfig {
    /// Lay the environment (`get` looks a variable up) over the file's values.
    /// Errors name the variable and say what was expected; all are reported.
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), Vec<String>> {
        let errors: Vec<String> = VARS
            .iter()
            .filter_map(|var| {
                let value = get(var.name)?;
                (var.set)(self, value)
                    .err()
                    .map(|e| format!("{}: {e}", var.name))
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}
