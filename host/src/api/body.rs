//! Request and response bodies.
//!
//! Responses are boxed so a handler can answer a whole JSON document or a
//! stream (server-sent events) through the same router. Request bodies are read
//! only up to a cap, so a caller cannot make sandboxd buffer without bound.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::error::ApiError;

pub type Body = BoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// The whole body of `req`, at most `cap` bytes (413 beyond).
pub async fn read(req: Request<Incoming>, cap: usize) -> Result<Bytes, ApiError> {
    match Limited::new(req.into_body(), cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {} MiB", cap >> 20),
            ))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "could not read the request body: {e}"
        ))),
    }
}
