//! Deserialisation that never fails on a field's type.
//!
//! The runtime API is outside our control and its answers vary: fields go missing,
//! turn `null`, change type, and lists carry `null` entries. These visitors read
//! what they recognise and skip the rest without building an intermediate
//! `serde_json::Value`, so the tolerant path is also the fast one.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::Runtime;

/// A string if the value is one; anything else reads as absent.
struct LenientString(Option<String>);

impl<'de> Deserialize<'de> for LenientString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = LenientString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(LenientString(Some(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(LenientString(Some(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(LenientString(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(LenientString(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(LenientString(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(LenientString(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(LenientString(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(LenientString(None))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                LenientString::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(LenientString(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(LenientString(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A runtime if the value is an object; anything else (`null`, a number, …) reads
/// as no runtime.
pub struct MaybeRuntime(pub Option<Runtime>);

impl<'de> Deserialize<'de> for MaybeRuntime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeRuntime;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a runtime object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut rt = Runtime::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "runtime_id" => &mut rt.runtime_id,
                        "session_id" => &mut rt.session_id,
                        "url" => &mut rt.url,
                        "session_api_key" => &mut rt.session_api_key,
                        "status" => &mut rt.status,
                        "pod_status" => &mut rt.pod_status,
                        "status_detail" => &mut rt.status_detail,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = map.next_value::<LenientString>()?.0;
                }
                Ok(MaybeRuntime(Some(rt)))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                MaybeRuntime::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeRuntime(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeRuntime(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeRuntime(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeRuntime(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeRuntime(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeRuntime(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeRuntime(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(MaybeRuntime(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A list of runtimes in which non-objects are skipped; `null` reads as empty.
pub struct RuntimeList(pub Vec<Runtime>);

impl<'de> Deserialize<'de> for RuntimeList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items: Option<Vec<MaybeRuntime>> = Option::deserialize(d)?;
        Ok(RuntimeList(
            items
                .unwrap_or_default()
                .into_iter()
                .filter_map(|m| m.0)
                .collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(json: &str) -> Option<Runtime> {
        serde_json::from_str::<MaybeRuntime>(json)
            .ok()
            .and_then(|m| m.0)
    }

    #[test]
    fn reads_every_known_field() {
        let rt = runtime(
            r#"{"runtime_id":"r","session_id":"s","url":"http://u","session_api_key":"k",
                "status":"running","pod_status":"ready","status_detail":"d",
                "restart_count":2,"restart_reasons":["x"],"new_field":{"a":[1,2]}}"#,
        );
        assert_eq!(
            rt,
            Some(Runtime {
                runtime_id: Some("r".into()),
                session_id: Some("s".into()),
                url: Some("http://u".into()),
                session_api_key: Some("k".into()),
                status: Some("running".into()),
                pod_status: Some("ready".into()),
                status_detail: Some("d".into()),
            })
        );
    }

    #[test]
    fn wrong_types_and_nulls_read_as_absent() {
        let rt = runtime(
            r#"{"runtime_id":7,"session_id":null,"url":["x"],"session_api_key":{"a":1},
                "status":true,"pod_status":1.5}"#,
        );
        assert_eq!(rt, Some(Runtime::default()));
    }

    #[test]
    fn non_objects_are_no_runtime() {
        for json in ["null", "5", "\"running\"", "[1,2]", "true"] {
            assert_eq!(runtime(json), None, "{json}");
        }
    }

    #[test]
    fn lists_skip_junk_entries_and_null_is_empty() {
        let list: RuntimeList =
            serde_json::from_str(r#"[null, 3, {"session_id":"a"}, "x", {"session_id":"b"}]"#)
                .unwrap_or(RuntimeList(vec![]));
        let ids: Vec<_> = list.0.iter().map(|r| r.session_id.as_deref()).collect();
        assert_eq!(ids, vec![Some("a"), Some("b")]);
        let empty: RuntimeList = serde_json::from_str("null").unwrap_or(RuntimeList(vec![]));
        assert!(empty.0.is_empty());
        assert!(serde_json::from_str::<RuntimeList>("{}").is_err());
    }
}
