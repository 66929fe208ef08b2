//! Every error the API answers, and the one place where a failure becomes an
//! HTTP status.
//!
//! | cause                                                   | status |
//! |---------------------------------------------------------|--------|
//! | plugin `not-found`, no such route                       | 404    |
//! | plugin `invalid-input`, too many ids, an unreadable body | 400    |
//! | plugin `conflict`                                       | 409    |
//! | plugin `unauthorized`, failed authentication            | 401    |
//! | an admin route without an admin key                     | 403    |
//! | a method the route does not have                        | 405    |
//! | a request body over its cap                             | 413    |
//! | a query parameter of the wrong type or range            | 422    |
//! | plugin `upstream` (the runtime API failed)              | 502    |
//! | plugin `storage`, `internal`, a trap                    | 500    |
//! | a plugin call past its deadline or one of its limits    | 503    |
//! | not ready (`/readyz`)                                   | 503    |
//!
//! The body is always `{"detail": "<what went wrong>"}`. A fault on our side
//! (500) names an error id instead of its cause; the cause is in the log under
//! that id.

use axum::Json;
use axum::http::header::{HeaderValue, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::bindings::types::Error as PluginError;
use crate::plugin::{CallError, ExportError};

/// `{"detail": …}`: the body of every error answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for the person who made the request.
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: String,
    /// `Retry-After` seconds, for answers that a client should retry.
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, detail)
    }

    pub fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
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
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert("retry-after", HeaderValue::from(secs));
        }
        (
            self.status,
            headers,
            Json(ErrorBody {
                detail: self.detail,
            }),
        )
            .into_response()
    }
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> Self {
        match e {
            PluginError::NotFound(m) => Self::new(StatusCode::NOT_FOUND, m),
            PluginError::InvalidInput(m) => Self::new(StatusCode::BAD_REQUEST, m),
            PluginError::Conflict(m) => Self::new(StatusCode::CONFLICT, m),
            PluginError::Unauthorized(m) => Self::new(StatusCode::UNAUTHORIZED, m),
            PluginError::Upstream(m) => Self::new(StatusCode::BAD_GATEWAY, m),
            PluginError::Unavailable(r) => ApiError {
                retry_after: Some(r.retry_after_secs),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, r.detail)
            },
            PluginError::Storage(m) | PluginError::Internal(m) => {
                let id = crate::plugin::error_id();
                tracing::error!(error_id = %id, error = %m, "plugin reported an internal failure");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal error (error id {id})"),
                )
            }
        }
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        let status = match e {
            CallError::Timeout(_) | CallError::Limit { .. } => StatusCode::SERVICE_UNAVAILABLE,
            CallError::Trap { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, e.to_string())
    }
}

impl From<ExportError> for ApiError {
    fn from(e: ExportError) -> Self {
        match e {
            ExportError::Plugin(e) => e.into(),
            ExportError::Call(e) => e.into(),
        }
    }
}
