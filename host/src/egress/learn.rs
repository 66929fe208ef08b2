//! The agent-server origins in a runtime API answer: every string field named
//! `url`, at any depth up to [`MAX_DEPTH`] (a runtime, a list or a batch of
//! them), found in one pass over the bytes.
//!
//! Every runtime answer goes through here, a batch of 100 runtimes included,
//! so nothing is built that is not kept: no `serde_json::Value` tree, no copy
//! of a string that is not a URL (the profile of a search showed the tree
//! costing more than the HTTP request that fetched it).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::origin_of;

/// Deep enough for `{"runtimes": [{"url": …}]}` and a little more.
const MAX_DEPTH: usize = 4;

/// The `http`/`https` origins of the `url` fields of `body`, in order; none if
/// it is not JSON.
pub fn url_origins(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    if (Collect {
        out: &mut out,
        depth: 0,
        is_url: false,
    })
    .deserialize(&mut de)
    .is_err()
    {
        // A body that is not JSON teaches nothing; a partial one neither.
        return Vec::new();
    }
    out
}

/// One JSON value; `is_url` when it is the value of a `url` field.
struct Collect<'a> {
    out: &'a mut Vec<String>,
    depth: usize,
    is_url: bool,
}

impl<'de> DeserializeSeed<'de> for Collect<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.depth > MAX_DEPTH {
            return deserializer.deserialize_ignored_any(IgnoredAny).map(drop);
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Collect<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<(), E> {
        if self.is_url
            && let Ok(url) = url::Url::parse(s)
            && matches!(url.scheme(), "http" | "https")
        {
            self.out.push(origin_of(&url));
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            map.next_value_seed(Collect {
                out: &mut *self.out,
                depth: self.depth + 1,
                is_url: key == "url",
            })?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(Collect {
                out: &mut *self.out,
                depth: self.depth + 1,
                is_url: false,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::url_origins;

    #[test]
    fn finds_the_url_fields_of_a_runtime_a_list_and_a_batch() {
        assert_eq!(
            url_origins(
                br#"{"runtime_id": "r1", "url": "https://a.example/x", "session_api_key": "k"}"#
            ),
            ["https://a.example"]
        );
        assert_eq!(
            url_origins(
                br#"{"runtimes": [{"url": "http://b.example:8000/"}, {"url": "not a url"},
                                  {"url": "ftp://c.example/"}, {"url": 5}, {"nested": {"url": "https://d.example"}}]}"#
            ),
            ["http://b.example:8000", "https://d.example"]
        );
        assert_eq!(
            url_origins(br#"[{"url": "https://e.example"}, null, 1.5, true, "url"]"#),
            ["https://e.example"]
        );
        // Escaped strings are unescaped first.
        assert_eq!(
            url_origins(br#"{"url": "https:\/\/f.example\/"}"#),
            ["https://f.example"]
        );
    }

    #[test]
    fn too_deep_and_not_json_teach_nothing() {
        assert!(
            url_origins(br#"{"a": {"b": {"c": {"d": {"e": {"url": "https://deep.example"}}}}}}"#)
                .is_empty()
        );
        assert!(url_origins(b"<html>").is_empty());
        assert!(url_origins(br#"{"url": "https://half.example", "#).is_empty());
        assert!(url_origins(b"").is_empty());
    }
}
