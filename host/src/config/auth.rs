//! `[auth]`: who the caller of the API is. No authentication (one user), API
//! keys, or a user id header set by a trusted gateway in front.
//!
//! Invariant: without authentication sandboxd listens on loopback only, unless
//! `auth.allow_unauthenticated_public` accepts the risk.

use std::net::SocketAddr;

use serde::Deserialize;

use super::{Secret, choice, name};

/// The header a trusted gateway puts the authenticated user id in.
const USER_HEADER: &str = "x-user-id";

/// Shortest API key accepted: a shorter one could be guessed.
const MIN_KEY_LEN: usize = 16;

/// `[auth]` as written.
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

/// One `[[auth.keys]]` entry as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub key: String,
    pub user_id: Option<String>,
    #[serde(default)]
    pub admin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// One user; every call sees everything. The default, for a sandboxd on
    /// loopback (it is refused on another address unless allowed).
    #[default]
    None,
    /// `Authorization: Bearer <key>`.
    ApiKeys,
    /// A gateway in front sets the user id header.
    TrustedHeader,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub mode: AuthMode,
    /// At least one in `api-keys` mode.
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

/// `listen`: where sandboxd serves, which decides whether no authentication
/// is acceptable.
pub(super) fn validate(
    raw: AuthFile,
    listen: SocketAddr,
    err: &mut impl FnMut(String),
) -> AuthConfig {
    let mode: AuthMode = choice("auth.mode", raw.mode.as_deref(), err).unwrap_or_default();
    let mut keys = Vec::with_capacity(raw.keys.len());
    for (i, k) in raw.keys.into_iter().enumerate() {
        if k.key.len() < MIN_KEY_LEN {
            err(format!(
                "auth.keys[{i}].key: too short; use at least {MIN_KEY_LEN} characters"
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
        .unwrap_or_else(|| USER_HEADER.into())
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
