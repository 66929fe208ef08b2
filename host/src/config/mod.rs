//! Configuration: a TOML file (`--config`), environment variables over it, and
//! validation into [`Config`].
//!
//! One module per section of the file, each with that section as written (its
//! `…File` type, nothing checked), its defaults with the reason for each, its
//! validation, and the validated type the rest of the host uses: `service` (the
//! top-level keys), `database` (`database_url`), `runtime`, `specs`, `auth`, `plugin`, `http`, `sync`, `lifecycle` and
//! `local_runtime`. `env` is the one table of `SANDBOXD_*` variables. This module
//! ties them together and holds what several sections share.
//!
//! Invariants:
//! - A [`Config`] is valid. Every value was checked once, here, and an invalid
//!   one stopped start-up with a message that names the key (and its environment
//!   variable) and the values allowed.
//! - All problems are reported at once, so fixing a config file takes one round:
//!   a section's validation reports each problem and goes on with the default.
//! - A value is checked the same way wherever it came from: the file and the
//!   environment only fill a [`FileConfig`], and [`validate`] reads that alone.
//! - Each default is written once, in its section's module (an enum's, as its
//!   `#[default]` variant).
//! - An enum's values are spelled once, by its derived `Deserialize`: the file
//!   keeps them as strings (so a wrong one is a problem reported with the others,
//!   not a parse error that hides them), and `choice` reads them with serde and
//!   lists serde's variants in the message.

mod auth;
mod database;
mod env;
mod http;
mod lifecycle;
mod local_runtime;
mod plugin;
mod runtime;
mod secret;
mod service;
mod specs;
mod sync;

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde::de::value::StrDeserializer;

pub use auth::{ApiKey, AuthConfig, AuthMode};
pub use database::CONNECTIONS as DATABASE_CONNECTIONS;
pub use http::HttpConfig;
pub use lifecycle::{LifecycleConfig, Policy};
pub use local_runtime::{Isolation, LocalRuntimeConfig};
pub use plugin::PluginConfig;
pub use runtime::{Orphans, RuntimeClass, RuntimeConfig};
pub use secret::Secret;
pub use specs::{Probe, SpecConfig};
pub use sync::{SyncConfig, SyncMode, SyncPlan};

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// redb's page cache: what the store may keep in memory.
    pub store_cache_bytes: usize,
    /// Public URL of this service, without a trailing slash.
    pub web_url: Option<String>,
    /// A PostgreSQL connection string: the state is shared by replicas there
    /// (none: one redb file in `data_dir`).
    pub database_url: Option<Secret>,
    /// The host key as 64 hex digits (none: `data_dir/host.key`).
    pub host_key: Option<Secret>,
    pub runtime: RuntimeConfig,
    /// At least one; the first is the default.
    pub specs: Vec<SpecConfig>,
    pub auth: AuthConfig,
    pub plugin: PluginConfig,
    pub http: HttpConfig,
    pub sync: SyncConfig,
    pub lifecycle: LifecycleConfig,
    pub local_runtime: LocalRuntimeConfig,
}

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

/// The configuration as written: the TOML file, then the environment laid over
/// it (`apply_env`). Nothing is checked here; [`validate`] does that.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The top-level keys (validated in `service`).
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub web_url: Option<String>,
    /// MiB of redb page cache.
    pub store_cache_mb: Option<i64>,
    /// Validated in `database`.
    pub database_url: Option<String>,
    /// Validated in `database`.
    pub host_key: Option<String>,
    #[serde(default)]
    pub runtime: runtime::RuntimeFile,
    #[serde(default)]
    pub specs: Vec<specs::SpecFile>,
    #[serde(default)]
    pub auth: auth::AuthFile,
    #[serde(default)]
    pub plugin: plugin::PluginFile,
    #[serde(default)]
    pub http: http::HttpFile,
    #[serde(default)]
    pub sync: sync::SyncFile,
    #[serde(default)]
    pub lifecycle: lifecycle::LifecycleFile,
    #[serde(default)]
    pub local_runtime: local_runtime::LocalRuntimeFile,
}

/// Why the configuration could not be used; each line is one problem.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
pub struct ConfigError(pub Vec<String>);

/// Check every value of `raw` and report every problem.
pub fn validate(raw: FileConfig) -> Result<Config, ConfigError> {
    let mut errors = Vec::new();
    let mut err = |msg: String| errors.push(msg);

    let service = service::validate(
        raw.listen.as_deref(),
        raw.data_dir,
        raw.web_url.as_deref(),
        raw.store_cache_mb,
        &mut err,
    );
    let database_url = database::validate(raw.database_url, &mut err);
    let host_key = database::validate_host_key(raw.host_key, database_url.is_some(), &mut err);
    let runtime = runtime::validate(raw.runtime, &mut err);
    if database_url.is_some() && runtime.api_url.is_none() {
        err(format!(
            "{}: the embedded local runtime runs sandboxes as processes of this machine, so \
             it cannot be shared by replicas on a database; with database_url set, configure \
             a remote runtime API ({}), or leave database_url unset to run one sandboxd with \
             its local runtime",
            name("database_url"),
            name("runtime.api_url")
        ));
    }
    let specs = specs::validate(raw.specs, runtime.api_url.is_none(), &mut err);
    let local_runtime = local_runtime::validate(raw.local_runtime, &mut err);
    let auth = auth::validate(raw.auth, service.listen, &mut err);
    let plugin = plugin::validate(raw.plugin, &mut err);
    let http = http::validate(raw.http, &mut err);
    let sync = sync::validate(raw.sync, service.web_url.as_deref(), &mut err);
    let lifecycle = lifecycle::validate(raw.lifecycle, &mut err);
    if lifecycle.wake_on_request && runtime.api_url.is_some() {
        err(format!(
            "lifecycle.wake_on_request: only the embedded local runtime can wake a sandbox on a \
             request (its URLs pass through sandboxd); with {} set, requests go to the runtime's \
             own URLs",
            name("runtime.api_url")
        ));
    }

    if errors.is_empty() {
        Ok(Config {
            listen: service.listen,
            data_dir: service.data_dir,
            store_cache_bytes: service.store_cache_bytes,
            web_url: service.web_url,
            database_url,
            host_key,
            runtime,
            specs,
            auth,
            plugin,
            http,
            sync,
            lifecycle,
            local_runtime,
        })
    } else {
        Err(ConfigError(errors))
    }
}

/// `key (ENV_VAR)` for messages about a value that can come from either.
fn name(key: &str) -> String {
    match env::env_name_of(key) {
        Some(env) => format!("{key} ({env})"),
        None => key.to_owned(),
    }
}

/// A number of seconds from a millisecond to a day, or `default` when absent
/// (or invalid: reported).
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
                "{}: {s} is out of range; use a number of seconds from 0.001 up to 86400",
                name(key)
            ));
            default
        }
    }
}

/// A whole number in `range`; `None` when absent, or when out of range (then
/// reported, `unit` following the range in the message). A range up to
/// `u32::MAX` or beyond is "from N up" to the reader.
fn whole(
    key: &str,
    value: Option<i64>,
    range: RangeInclusive<i64>,
    unit: &str,
    err: &mut impl FnMut(String),
) -> Option<i64> {
    let v = value?;
    if range.contains(&v) {
        return Some(v);
    }
    let (min, max) = range.into_inner();
    let allowed = if max >= i64::from(u32::MAX) {
        format!("a whole number from {min} up")
    } else {
        format!("{min} to {max}")
    };
    err(format!(
        "{}: {v} is out of range; use {allowed}{unit}",
        name(key)
    ));
    None
}

/// One of the values of a config enum, spelled as its derived `Deserialize`
/// says (`rename_all`), surrounding whitespace allowed: the enum's `Default`
/// when absent, `None` when it is not one of them (reported, with the values
/// allowed as serde lists them, so they are written once: in the enum).
fn choice<T: DeserializeOwned + Default>(
    key: &str,
    value: Option<&str>,
    err: &mut impl FnMut(String),
) -> Option<T> {
    let Some(raw) = value else {
        return Some(T::default());
    };
    let v = raw.trim();
    match T::deserialize(StrDeserializer::<NotAllowed>::new(v)) {
        Ok(t) => Some(t),
        Err(NotAllowed::Variant(allowed)) => {
            err(format!(
                "{}: '{v}' is not allowed; use {}",
                name(key),
                one_of(allowed)
            ));
            None
        }
        Err(NotAllowed::Other(why)) => {
            err(format!("{}: '{v}' is not allowed: {why}", name(key)));
            None
        }
    }
}

/// Why serde refused a value for an enum: not one of its variants (serde passes
/// their names), or, for an enum that is not all unit variants, anything else.
#[derive(Debug)]
enum NotAllowed {
    Variant(&'static [&'static str]),
    Other(String),
}

impl serde::de::Error for NotAllowed {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        NotAllowed::Other(msg.to_string())
    }

    fn unknown_variant(_variant: &str, expected: &'static [&'static str]) -> Self {
        NotAllowed::Variant(expected)
    }
}

impl std::fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotAllowed::Variant(allowed) => write!(f, "use {}", one_of(allowed)),
            NotAllowed::Other(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for NotAllowed {}

/// `a`, `a or b`, `a, b or c`.
fn one_of(values: &[&str]) -> String {
    match values {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [first @ .., last] => format!("{} or {last}", first.join(", ")),
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

#[cfg(test)]
mod tests;
