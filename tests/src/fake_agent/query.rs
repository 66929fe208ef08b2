//! Query parameters, validated the way FastAPI validates them.
//!
//! A repeated parameter takes its last value (Starlette's `QueryParams.get`); unknown
//! parameters are ignored. Every invalid parameter is reported at once, in FastAPI's
//! 422 shape: `{"detail": [{"type", "loc": ["query", name], "msg", "input"}]}`.

use std::borrow::Cow;

use serde_json::{Value, json};

use super::time::{self, Instant};

/// The largest `limit` the real server accepts; also the default.
pub(crate) const MAX_LIMIT: usize = 100;

/// The decoded query of one request.
pub(crate) struct Query<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// Validation errors, FastAPI style.
#[derive(Default)]
pub(crate) struct Errors(Vec<Value>);

impl Errors {
    pub fn push(&mut self, loc: [&str; 2], kind: &str, msg: &str, input: &str) {
        self.0
            .push(json!({"type": kind, "loc": loc, "msg": msg, "input": input}));
    }

    /// `Err` with the 422 body when anything was invalid.
    pub fn into_result(self) -> Result<(), Value> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(json!({ "detail": self.0 }))
        }
    }
}

impl<'a> Query<'a> {
    pub fn parse(raw: Option<&'a str>) -> Query<'a> {
        Query {
            pairs: form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).collect(),
        }
    }

    /// The last value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_ref())
    }

    /// `limit`: an integer in 1..=100, 100 when absent.
    pub fn limit(&self, errors: &mut Errors) -> usize {
        let Some(raw) = self.get("limit") else {
            return MAX_LIMIT;
        };
        let loc = ["query", "limit"];
        match raw.trim().parse::<i64>() {
            Err(_) => errors.push(
                loc,
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
                raw,
            ),
            Ok(limit) if limit < 1 => {
                errors.push(loc, "greater_than", "Input should be greater than 0", raw);
            }
            Ok(limit) if limit > MAX_LIMIT as i64 => errors.push(
                loc,
                "less_than_equal",
                "Input should be less than or equal to 100",
                raw,
            ),
            Ok(limit) => return usize::try_from(limit).unwrap_or(MAX_LIMIT),
        }
        MAX_LIMIT
    }

    /// An enum parameter: one of `allowed` (exact case), `allowed[0]` when absent.
    pub fn choice(
        &self,
        name: &str,
        allowed: &[&'static str],
        errors: &mut Errors,
    ) -> &'static str {
        let default = allowed.first().copied().unwrap_or_default();
        let Some(raw) = self.get(name) else {
            return default;
        };
        if let Some(value) = allowed.iter().find(|value| **value == raw) {
            return value;
        }
        let expected = allowed
            .iter()
            .map(|value| format!("'{value}'"))
            .collect::<Vec<_>>()
            .join(", ");
        errors.push(
            ["query", name],
            "enum",
            &format!("Input should be one of {expected}"),
            raw,
        );
        default
    }

    /// An optional enum parameter: `None` when absent.
    pub fn optional_choice(
        &self,
        name: &str,
        allowed: &[&'static str],
        errors: &mut Errors,
    ) -> Option<&'static str> {
        self.get(name)?;
        Some(self.choice(name, allowed, errors))
    }

    /// An optional datetime parameter (see [`time::parse`]).
    pub fn timestamp(&self, name: &str, errors: &mut Errors) -> Option<Instant> {
        let raw = self.get(name)?;
        let parsed = time::parse(raw);
        if parsed.is_none() {
            errors.push(
                ["query", name],
                "datetime_from_date_parsing",
                "Input should be a valid datetime or date",
                raw,
            );
        }
        parsed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_value_wins_and_every_error_is_reported() {
        let query = Query::parse(Some("limit=5&limit=7&kind=a%20b&x=1"));
        let mut errors = Errors::default();
        assert_eq!(query.limit(&mut errors), 7);
        assert_eq!(query.get("kind"), Some("a b"));
        assert!(errors.into_result().is_ok());

        let query = Query::parse(Some(
            "limit=0&sort_order=newest&timestamp__gte=2025-06-01T00:00:00+00:00",
        ));
        let mut errors = Errors::default();
        query.limit(&mut errors);
        query.choice("sort_order", &["TIMESTAMP", "TIMESTAMP_DESC"], &mut errors);
        // An unescaped `+` is a space: the client must send `%2B`.
        assert_eq!(query.timestamp("timestamp__gte", &mut errors), None);
        let body = errors.into_result().expect_err("three errors");
        let locs: Vec<&Value> = body["detail"]
            .as_array()
            .map(|errors| errors.iter().map(|error| &error["loc"][1]).collect())
            .unwrap_or_default();
        assert_eq!(locs, ["limit", "sort_order", "timestamp__gte"]);

        let query = Query::parse(None);
        let mut errors = Errors::default();
        assert_eq!(query.limit(&mut errors), MAX_LIMIT);
        assert_eq!(
            query.optional_choice("status", &["idle"], &mut errors),
            None
        );
        assert!(errors.into_result().is_ok());
    }
}
