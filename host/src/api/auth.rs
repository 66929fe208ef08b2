//! Who is calling: the `[auth]` mode turned into the user a plugin call acts for.
//!
//! - `none`: every caller is the single user and sees everything (no user id).
//! - `api-keys`: `Authorization: Bearer <key>`; a key maps to a user id or is an
//!   admin key (no user id: sees everything). Keys are kept only as SHA-256
//!   digests and compared in constant time against every configured key, so
//!   neither timing nor memory gives one away.
//! - `trusted-header`: a gateway in front authenticates and sets the user id
//!   header; sandboxd trusts it.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, HeaderName};
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::ApiError;
use crate::config::{AuthConfig, AuthMode};
pub use crate::plugin::Caller;

/// Longest user id accepted from a gateway.
const MAX_USER_ID: usize = 256;

pub struct Authenticator {
    mode: AuthMode,
    keys: Vec<([u8; 32], Caller)>,
    user_header: HeaderName,
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> anyhow::Result<Authenticator> {
        Ok(Authenticator {
            mode: config.mode,
            keys: config
                .keys
                .iter()
                .map(|k| {
                    let caller = k.user_id.clone().map_or(Caller::All, Caller::User);
                    (digest(k.key.expose()), caller)
                })
                .collect(),
            user_header: HeaderName::from_bytes(config.user_header.as_bytes())?,
        })
    }

    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        match self.mode {
            AuthMode::None => Ok(Caller::All),
            AuthMode::ApiKeys => self.by_key(headers),
            AuthMode::TrustedHeader => self.by_header(headers),
        }
    }

    fn by_key(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let value = headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::unauthorized("missing 'Authorization: Bearer <key>' header")
        })?;
        let value = value
            .to_str()
            .map_err(|_| ApiError::unauthorized("the Authorization header is not readable text"))?;
        let token = match value.trim().split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                token.trim()
            }
            _ => {
                return Err(ApiError::unauthorized(
                    "the Authorization header must be 'Bearer <key>'",
                ));
            }
        };
        let presented = digest(token);
        // Compare against every key, without stopping at a match.
        let mut found: Option<&Caller> = None;
        for (known, caller) in &self.keys {
            if bool::from(known.ct_eq(&presented)) {
                found = Some(caller);
            }
        }
        found
            .cloned()
            .ok_or_else(|| ApiError::unauthorized("unknown API key"))
    }

    fn by_header(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let name = self.user_header.as_str();
        let value = headers.get(&self.user_header).ok_or_else(|| {
            ApiError::unauthorized(format!(
                "missing '{name}' header (set by the gateway in front of sandboxd)"
            ))
        })?;
        let user = value
            .to_str()
            .map_err(|_| {
                ApiError::unauthorized(format!("the '{name}' header is not readable text"))
            })?
            .trim();
        if user.is_empty() || user.len() > MAX_USER_ID || user.chars().any(char::is_control) {
            return Err(ApiError::unauthorized(format!(
                "the '{name}' header must be 1 to {MAX_USER_ID} printable characters"
            )));
        }
        Ok(Caller::User(user.to_owned()))
    }
}

/// Authentication as an extractor: a handler that takes a [`Caller`] runs
/// only for an authenticated request (401 otherwise).
impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        state.auth.authenticate(&parts.headers)
    }
}

/// An administrator: an admin key (or `none` mode's single user). Anyone else
/// authenticated gets 403.
pub struct Admin;

impl FromRequestParts<Arc<AppState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        if state.auth.authenticate(&parts.headers)?.is_admin() {
            Ok(Admin)
        } else {
            Err(ApiError::forbidden("admin routes need an admin key"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ApiKey, Secret};
    use axum::http::header::HeaderValue;

    fn auth(mode: AuthMode) -> Authenticator {
        let config = AuthConfig {
            mode,
            keys: vec![
                ApiKey {
                    key: Secret::new("alice-key-0123456789".into()),
                    user_id: Some("alice".into()),
                },
                ApiKey {
                    key: Secret::new("admin-key-0123456789".into()),
                    user_id: None,
                },
            ],
            user_header: "x-user-id".into(),
        };
        Authenticator::new(&config).unwrap_or_else(|e| panic!("{e}"))
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                *k,
                HeaderValue::from_str(v).unwrap_or_else(|_| panic!("header")),
            );
        }
        h
    }

    #[test]
    fn api_keys_map_to_users_or_admin() {
        let a = auth(AuthMode::ApiKeys);
        assert_eq!(
            a.authenticate(&headers(&[(
                "authorization",
                "Bearer alice-key-0123456789"
            )])),
            Ok(Caller::User("alice".into()))
        );
        assert_eq!(
            a.authenticate(&headers(&[(
                "authorization",
                "bearer admin-key-0123456789"
            )])),
            Ok(Caller::All)
        );
        for bad in [
            "Bearer nope",
            "alice-key-0123456789",
            "Basic alice-key-0123456789",
            "Bearer ",
            "",
        ] {
            let e = a.authenticate(&headers(&[("authorization", bad)]));
            assert_eq!(
                e.map_err(|e| e.status),
                Err(axum::http::StatusCode::UNAUTHORIZED),
                "{bad}"
            );
        }
        assert!(a.authenticate(&HeaderMap::new()).is_err());
    }

    #[test]
    fn trusted_header_names_the_user() {
        let a = auth(AuthMode::TrustedHeader);
        assert_eq!(
            a.authenticate(&headers(&[("x-user-id", " bob ")])),
            Ok(Caller::User("bob".into()))
        );
        assert!(a.authenticate(&HeaderMap::new()).is_err());
        assert!(a.authenticate(&headers(&[("x-user-id", "")])).is_err());
    }

    #[test]
    fn none_mode_sees_everything() {
        assert_eq!(
            auth(AuthMode::None).authenticate(&HeaderMap::new()),
            Ok(Caller::All)
        );
    }
}
