//! Extractors for what a request carries besides its query: the id in its
//! path, its body (read up to a cap), an agent server's session key. Each
//! refuses bad input with an [`ApiError`], so the answer is JSON with a
//! `detail` like every other.

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::error::ApiError;

/// The one `{id}` of a route's path, percent-decoded.
pub struct Id(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Id {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(Id(id)),
            // Escapes that are not UTF-8: no id of ours looks like that.
            Err(e) => Err(ApiError::not_found(format!(
                "Not Found ({})",
                e.body_text()
            ))),
        }
    }
}

/// The whole request body, at most `CAP` bytes (413 beyond).
pub struct Body<const CAP: usize>(pub Bytes);

impl<S: Send + Sync, const CAP: usize> FromRequest<S> for Body<CAP> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        match Limited::new(req.into_body(), CAP).collect().await {
            Ok(collected) => Ok(Body(collected.to_bytes())),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {}", size(CAP)),
            )),
            Err(e) => Err(ApiError::bad_request(format!(
                "could not read the request body: {e}"
            ))),
        }
    }
}

/// `64 KiB`, `16 MiB`: a cap as people write it.
fn size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}

/// The `X-Session-API-Key` an agent server proves itself with (401 without).
pub struct SessionKey(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SessionKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get("x-session-api-key")
            .ok_or_else(|| ApiError::unauthorized("missing X-Session-API-Key header"))?;
        let key = value
            .to_str()
            .map_err(|_| {
                ApiError::unauthorized("the X-Session-API-Key header is not readable text")
            })?
            .trim();
        if key.is_empty() {
            return Err(ApiError::unauthorized("empty X-Session-API-Key header"));
        }
        Ok(SessionKey(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn caps_are_named_in_their_unit() {
        assert_eq!(super::size(64 << 10), "64 KiB");
        assert_eq!(super::size(16 << 20), "16 MiB");
    }
}
