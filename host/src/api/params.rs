//! Query parameters, checked the way the upstream (FastAPI) service declares
//! them: a value of the wrong type or out of range is a 422 that says which
//! parameter and what is allowed.

use super::error::ApiError;

/// Most items per page, and most ids per batch request.
pub const MAX_LIMIT: u32 = 100;
const DEFAULT_LIMIT: u32 = 100;
/// A page id longer than this cannot be one we issued.
const MAX_PAGE_ID_LEN: usize = 4096;
/// Longest id or spec id accepted in a query.
const MAX_VALUE_LEN: usize = 1024;

/// The decoded query string.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        Query(
            form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last value of a single-valued parameter.
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
    pub fn limit(&self) -> Result<u32, ApiError> {
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
    pub fn page_id(&self) -> Result<Option<String>, ApiError> {
        match self.last("page_id") {
            None | Some("") => Ok(None),
            Some(p) if p.len() > MAX_PAGE_ID_LEN => Err(ApiError::unprocessable(format!(
                "page_id is longer than {MAX_PAGE_ID_LEN} characters"
            ))),
            Some(p) => Ok(Some(p.to_owned())),
        }
    }

    /// An optional single string parameter (empty means absent).
    pub fn optional(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.last(name) {
            None | Some("") => Ok(None),
            Some(v) if v.len() > MAX_VALUE_LEN => Err(ApiError::unprocessable(format!(
                "{name} is longer than {MAX_VALUE_LEN} characters"
            ))),
            Some(v) => Ok(Some(v.to_owned())),
        }
    }

    /// A required, repeated parameter (`?id=a&id=b`) of at most 100 values.
    pub fn ids(&self, name: &str) -> Result<Vec<String>, ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

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
}
