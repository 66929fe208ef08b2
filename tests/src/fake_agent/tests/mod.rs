//! The fake driven over real HTTP, as sandboxd drives it.

mod agents;
mod faults;
mod paging;
mod wire;

use std::collections::HashSet;

use serde_json::Value;

use super::FakeAgentServer;

/// A small agent-server client for the tests: answers come back as (status, JSON),
/// with a body that is not JSON kept as a JSON string so malformed answers can be
/// asserted.
struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    /// A client of the agent under `prefix`, with its current key.
    fn new(fake: &FakeAgentServer, prefix: &str) -> Client {
        Client::with_key(fake, prefix, fake.session_key(prefix).as_deref())
    }

    fn with_key(fake: &FakeAgentServer, prefix: &str, key: Option<&str>) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: fake.base_url(prefix),
            key: key.map(str::to_owned),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str) -> reqwest::Result<(u16, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.header("X-Session-API-Key", key);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path)
            .await
            .expect("GET reaches the fake")
    }

    /// Every page of a search (`path` without query, `params` without `page_id`), as
    /// a client following `next_page_id` sees it; asserts page sizes, that every page
    /// answers 200, and that no item comes twice. Returns the items' ids.
    async fn all_pages(&self, path: &str, params: &[(&str, &str)], limit: usize) -> Vec<String> {
        let mut ids = Vec::new();
        let mut page_id: Option<String> = None;
        for _ in 0..1000 {
            let mut pairs: Vec<(&str, &str)> = params.to_vec();
            let limit_text = limit.to_string();
            pairs.push(("limit", &limit_text));
            if let Some(page_id) = &page_id {
                pairs.push(("page_id", page_id));
            }
            let (status, body) = self.get(&format!("{path}?{}", query(&pairs))).await;
            assert_eq!(status, 200, "{body}");
            let items = body["items"].as_array().expect("items is a list");
            assert!(
                items.len() <= limit,
                "{} items over limit {limit}",
                items.len()
            );
            ids.extend(items.iter().map(id_of));
            match &body["next_page_id"] {
                Value::Null => {
                    let unique: HashSet<&String> = ids.iter().collect();
                    assert_eq!(unique.len(), ids.len(), "duplicates in {ids:?}");
                    return ids;
                }
                Value::String(next) => {
                    assert_eq!(items.len(), limit, "a short page before the last");
                    page_id = Some(next.clone());
                }
                other => panic!("next_page_id is {other}"),
            }
        }
        panic!("paging did not end: {ids:?}");
    }
}

/// A query string, percent-encoded (`+` as `%2B`, as a careful client sends it).
fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn id_of(item: &Value) -> String {
    item["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no string id in {item}"))
        .to_owned()
}

/// The ids of a search answer's items.
fn ids_of(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .map(|items| items.iter().map(id_of).collect())
        .unwrap_or_default()
}
