//! Query parameters: one type per route family, which is both what the handler
//! receives and what the OpenAPI document describes (`IntoParams`).
//!
//! They are checked the way the upstream (FastAPI) service declares them: a
//! value of the wrong type or out of range is a 422 whose `detail` names the
//! parameter and what is allowed. A page id is opaque: the plugin reads it,
//! and one it cannot read starts from the first page (the contract says so).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;

/// Most items per page, and most ids per batch request.
pub const MAX_LIMIT: u32 = 100;
const DEFAULT_LIMIT: u32 = 100;
/// A page id longer than this cannot be one we issued.
pub const MAX_PAGE_ID_LEN: usize = 4096;
/// Longest id, spec id or filter value accepted in a query.
pub const MAX_VALUE_LEN: usize = 1024;

/// The decoded query string, in order, repeats kept.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last value of a single-valued parameter (as FastAPI reads one).
    fn last(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// `limit`: 1 to 100, default 100.
    fn limit(&self) -> Result<u32, ApiError> {
        let Some(raw) = self.last("limit") else {
            return Ok(DEFAULT_LIMIT);
        };
        match raw.trim().parse::<i64>() {
            Ok(n) if (1..=i64::from(MAX_LIMIT)).contains(&n) => Ok(n as u32),
            _ => Err(ApiError::unprocessable(format!(
                "limit must be a whole number from 1 to {MAX_LIMIT}, got '{}'",
                excerpt(raw)
            ))),
        }
    }

    /// `page_id`: opaque; an empty one is no page id.
    fn page_id(&self) -> Result<Option<String>, ApiError> {
        match self.last("page_id") {
            None | Some("") => Ok(None),
            Some(p) if p.len() > MAX_PAGE_ID_LEN => Err(ApiError::unprocessable(format!(
                "page_id is longer than {MAX_PAGE_ID_LEN} characters"
            ))),
            Some(p) => Ok(Some(p.to_owned())),
        }
    }

    /// An optional single string parameter (empty means absent).
    fn optional(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.last(name) {
            None | Some("") => Ok(None),
            Some(v) if v.len() > MAX_VALUE_LEN => Err(ApiError::unprocessable(format!(
                "{name} is longer than {MAX_VALUE_LEN} characters"
            ))),
            Some(v) => Ok(Some(v.to_owned())),
        }
    }

    /// A required, repeated parameter (`?id=a&id=b`) of at most 100 values.
    fn ids(&self, name: &str) -> Result<Vec<String>, ApiError> {
        let ids = self.all(name);
        if ids.is_empty() {
            return Err(ApiError::unprocessable(format!(
                "query parameter '{name}' is required (repeat it for several: ?{name}=a&{name}=b)"
            )));
        }
        if ids.len() > MAX_LIMIT as usize {
            return Err(ApiError::bad_request(format!(
                "at most {MAX_LIMIT} '{name}' values per request, got {}",
                ids.len()
            )));
        }
        if let Some(long) = ids.iter().find(|v| v.len() > MAX_VALUE_LEN) {
            return Err(ApiError::unprocessable(format!(
                "'{name}' value '{}…' is too long",
                excerpt(long)
            )));
        }
        Ok(ids)
    }
}

/// At most 40 characters of a caller's value, for quoting it back.
fn excerpt(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A parameter type read from the query string.
pub trait FromQuery: Sized {
    fn from_query(query: &Query) -> Result<Self, ApiError>;
}

/// The extractor: `Params(page): Params<PageParams>`.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: FromQuery> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        T::from_query(&Query::parse(parts.uri.query())).map(Params)
    }
}

/// A page of a listing.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The `next_page_id` of the previous page. One this service cannot read
    /// (garbage, negative) starts from the first page.
    #[param(max_length = 4096)]
    pub page_id: Option<String>,
    /// Items per page.
    #[param(required = false, minimum = 1, maximum = 100, default = 100)]
    pub limit: u32,
}

impl FromQuery for PageParams {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        Ok(PageParams {
            page_id: q.page_id()?,
            limit: q.limit()?,
        })
    }
}

/// Several items by id, answered in the order asked.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IdsParams {
    /// Repeat for several ids: `?id=a&id=b` (1 to 100).
    #[param(min_items = 1, max_items = 100, explode, style = Form)]
    pub id: Vec<String>,
}

impl FromQuery for IdsParams {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        Ok(IdsParams { id: q.ids("id")? })
    }
}

/// What to start a sandbox from.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StartParams {
    /// The spec to start from; the default spec when absent.
    #[param(max_length = 1024)]
    pub sandbox_spec_id: Option<String>,
    /// The id the new sandbox gets (1 to 128 letters, digits, `-`, `_`, `.`);
    /// a random one when absent.
    #[param(pattern = "^[A-Za-z0-9._-]{1,128}$")]
    pub sandbox_id: Option<String>,
}

impl FromQuery for StartParams {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        Ok(StartParams {
            sandbox_spec_id: q.optional("sandbox_spec_id")?,
            sandbox_id: q.optional("sandbox_id")?,
        })
    }
}

/// A page of conversations, optionally of one sandbox.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationSearchParams {
    /// Only conversations of this sandbox.
    #[param(max_length = 1024)]
    pub sandbox_id: Option<String>,
    /// The `next_page_id` of the previous page. One this service cannot read
    /// starts from the first page.
    #[param(max_length = 4096)]
    pub page_id: Option<String>,
    /// Items per page.
    #[param(required = false, minimum = 1, maximum = 100, default = 100)]
    pub limit: u32,
}

impl FromQuery for ConversationSearchParams {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        Ok(ConversationSearchParams {
            sandbox_id: q.optional("sandbox_id")?,
            page_id: q.page_id()?,
            limit: q.limit()?,
        })
    }
}

/// The order of an event search.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SortOrder {
    Timestamp,
    TimestampDesc,
}

/// The agent server's event search, on the stored events.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventSearchParams {
    /// The id of the first event of the page (the previous page's
    /// `next_page_id`).
    #[param(max_length = 4096)]
    pub page_id: Option<String>,
    /// Events per page.
    #[param(required = false, minimum = 1, maximum = 100, default = 100)]
    pub limit: u32,
    /// Only events of this kind.
    #[param(max_length = 1024)]
    pub kind: Option<String>,
    /// Only events at or after this time (ISO-8601; without a timezone: UTC).
    #[param(rename = "timestamp__gte", max_length = 1024)]
    pub timestamp_gte: Option<String>,
    /// Only events before this time.
    #[param(rename = "timestamp__lt", max_length = 1024)]
    pub timestamp_lt: Option<String>,
    /// Oldest first (`TIMESTAMP`, the default) or newest first.
    #[param(inline)]
    pub sort_order: Option<SortOrder>,
}

impl FromQuery for EventSearchParams {
    fn from_query(q: &Query) -> Result<Self, ApiError> {
        let sort_order = match q.optional("sort_order")?.as_deref() {
            None => None,
            Some("TIMESTAMP") => Some(SortOrder::Timestamp),
            Some("TIMESTAMP_DESC") => Some(SortOrder::TimestampDesc),
            Some(other) => {
                return Err(ApiError::unprocessable(format!(
                    "sort_order must be TIMESTAMP or TIMESTAMP_DESC, got '{}'",
                    excerpt(other)
                )));
            }
        };
        Ok(EventSearchParams {
            page_id: q.page_id()?,
            limit: q.limit()?,
            kind: q.optional("kind")?,
            timestamp_gte: q.optional("timestamp__gte")?,
            timestamp_lt: q.optional("timestamp__lt")?,
            sort_order,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn q(s: &str) -> Query {
        Query::parse(Some(s))
    }

    #[test]
    fn limit_defaults_and_bounds() {
        assert_eq!(q("").limit(), Ok(100));
        assert_eq!(q("limit=1").limit(), Ok(1));
        assert_eq!(q("limit=100").limit(), Ok(100));
        for bad in [
            "limit=0",
            "limit=101",
            "limit=-1",
            "limit=abc",
            "limit=",
            "limit=1.5",
            "limit=99999999999999999999",
        ] {
            assert_eq!(
                q(bad).limit().map_err(|e| e.status),
                Err(StatusCode::UNPROCESSABLE_ENTITY),
                "{bad}"
            );
        }
    }

    #[test]
    fn ids_are_required_and_capped() {
        assert_eq!(
            q("id=a&id=b&x=1&id=a").ids("id"),
            Ok(vec!["a".into(), "b".into(), "a".into()])
        );
        assert_eq!(
            q("x=1").ids("id").map_err(|e| e.status),
            Err(StatusCode::UNPROCESSABLE_ENTITY)
        );
        let many: Vec<String> = (0..101).map(|i| format!("id={i}")).collect();
        assert_eq!(
            q(&many.join("&")).ids("id").map_err(|e| e.status),
            Err(StatusCode::BAD_REQUEST)
        );
        let hundred: Vec<String> = (0..100).map(|i| format!("id={i}")).collect();
        assert_eq!(q(&hundred.join("&")).ids("id").map(|v| v.len()), Ok(100));
    }

    #[test]
    fn values_are_percent_decoded_and_bad_encoding_is_tolerated() {
        assert_eq!(q("page_id=a%2Fb+c").page_id(), Ok(Some("a/b c".into())));
        assert!(q("page_id=%ZZ%").page_id().is_ok());
        assert_eq!(q("page_id=").page_id(), Ok(None));
        assert!(
            q(&format!("page_id={}", "x".repeat(5000)))
                .page_id()
                .is_err()
        );
    }

    #[test]
    fn the_sort_order_is_one_of_two() {
        let order = |s: &str| EventSearchParams::from_query(&q(s)).map(|p| p.sort_order);
        assert_eq!(order(""), Ok(None));
        assert_eq!(
            order("sort_order=TIMESTAMP_DESC"),
            Ok(Some(SortOrder::TimestampDesc))
        );
        assert!(order("sort_order=newest").is_err());
    }
}
