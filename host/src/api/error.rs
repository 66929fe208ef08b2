//! Every error the API answers, and the one place where a failure becomes an
//! HTTP status.
//!
//! | cause                                   | status |
//! |-----------------------------------------|--------|
//! | plugin `not-found`                      | 404    |
//! | plugin `invalid-input`                  | 400    |
//! | plugin `conflict`                       | 409    |
//! | plugin `unauthorized`, failed auth      | 401    |
//! | plugin `upstream` (runtime API failed)  | 502    |
//! | plugin `storage`, `internal`, a trap    | 500    |
//! | plugin call timed out                   | 503    |
//! | plugin call exceeded a limit (memory, requests, writes) | 503 |
//! | query parameter of the wrong type/range | 422    |
//! | too many ids                            | 400    |
//!
//! The body is always `{"detail": "<what went wrong>"}`.

use hyper::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};

use super::body::Body;

use crate::bindings::types::Error as PluginError;
use crate::plugin::CallError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    /// A fault on our side: the details go to the log under an error id, the
    /// caller gets the id.
    pub fn internal(detail: impl Into<String>) -> Self {
        let id = crate::plugin::error_id();
        tracing::error!(error_id = %id, error = %detail.into(), "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error (error id {id})"),
        )
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({ "detail": self.detail }).to_string();
        let mut response = Response::new(super::body::full(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("application/json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        let (status, detail) = match e {
            PluginError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            PluginError::InvalidInput(m) => (StatusCode::BAD_REQUEST, m),
            PluginError::Conflict(m) => (StatusCode::CONFLICT, m),
            PluginError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m),
            PluginError::Upstream(m) => (StatusCode::BAD_GATEWAY, m),
            PluginError::Storage(m) | PluginError::Internal(m) => {
                let id = crate::plugin::error_id();
                tracing::error!(error_id = %id, error = %m, "plugin reported an internal failure");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal error (error id {id})"),
                )
            }
        };
        ApiError { status, detail }
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        let status = match e {
            CallError::Timeout(_) | CallError::Limit { .. } => StatusCode::SERVICE_UNAVAILABLE,
            CallError::Trap { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            detail: e.to_string(),
        }
    }
}
