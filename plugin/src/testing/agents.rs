use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::ports::{HttpError, Method, Request, Response};

/// Agent servers in memory, each at a base URL: conversations and events as raw
/// JSON, served with the contract's paging and filters.
#[derive(Default)]
pub struct FakeAgents {
    agents: RefCell<BTreeMap<String, Agent>>,
    pub requests: RefCell<Vec<Request>>,
    /// Base URLs that fail every request with this error.
    pub down: RefCell<BTreeMap<String, HttpError>>,
}

#[derive(Default)]
struct Agent {
    key: String,
    conversations: Vec<Value>,
    events: BTreeMap<String, Vec<Value>>,
}

fn hex(id: &str) -> String {
    id.replace('-', "").to_ascii_lowercase()
}

fn answer(status: u16, body: Value) -> Response {
    Response::new(status, body.to_string().into_bytes())
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.replace("%3A", ":").replace("%2B", "+"))
    })
}

impl FakeAgents {
    pub fn add_agent(&self, base_url: &str, key: &str) {
        self.agents.borrow_mut().insert(
            base_url.to_owned(),
            Agent {
                key: key.to_owned(),
                ..Agent::default()
            },
        );
    }

    pub fn set_key(&self, base_url: &str, key: &str) {
        if let Some(a) = self.agents.borrow_mut().get_mut(base_url) {
            a.key = key.to_owned();
        }
    }

    pub fn add_conversation(&self, base_url: &str, id: &str, status: &str) {
        if let Some(a) = self.agents.borrow_mut().get_mut(base_url) {
            a.conversations.push(json!({
                "id": id,
                "title": format!("conversation {id}"),
                "execution_status": status,
                "created_at": "2026-11-26T07:00:00Z",
                "updated_at": "2026-11-26T07:00:00Z",
                "agent": {"llm": {"model": "fake-model"}},
                "stats": {"turns": 1},
                "metrics": null,
                "tags": {},
                "unknown_new_field": [1, 2, 3],
            }));
            a.events.entry(hex(id)).or_default();
        }
    }

    pub fn set_conversation_field(&self, base_url: &str, id: &str, field: &str, value: Value) {
        if let Some(a) = self.agents.borrow_mut().get_mut(base_url) {
            for c in &mut a.conversations {
                if c["id"] == id {
                    c[field] = value.clone();
                }
            }
        }
    }

    pub fn add_event(&self, base_url: &str, conversation_id: &str, event: Value) {
        if let Some(a) = self.agents.borrow_mut().get_mut(base_url) {
            a.events
                .entry(hex(conversation_id))
                .or_default()
                .push(event);
        }
    }

    /// Requests to `base_url` whose path contains `fragment`.
    pub fn count(&self, base_url: &str, fragment: &str) -> usize {
        self.requests
            .borrow()
            .iter()
            .filter(|r| r.url.starts_with(base_url) && r.url[base_url.len()..].contains(fragment))
            .count()
    }

    /// Whether `url` is one of ours; the answer if so.
    pub fn handle(&self, request: &Request) -> Option<Result<Response, HttpError>> {
        let agents = self.agents.borrow();
        let (base, agent) = agents
            .iter()
            .find(|(base, _)| request.url.starts_with(base.as_str()))?;
        self.requests.borrow_mut().push(request.clone());
        if let Some(e) = self.down.borrow().get(base) {
            return Some(Err(e.clone()));
        }
        let rest = &request.url[base.len()..];
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let key_ok = request
            .headers
            .iter()
            .any(|(k, v)| k == "x-session-api-key" && *v == agent.key);
        if !key_ok {
            return Some(Ok(answer(401, json!({"detail": "Unauthorized"}))));
        }
        if request.method != Method::Get {
            return Some(Ok(answer(405, json!({}))));
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        Some(Ok(match segments.as_slice() {
            ["api", "conversations", "search"] => {
                let start: usize = query_param(query, "page_id")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                let items: Vec<&Value> = agent.conversations.iter().skip(start).take(100).collect();
                let next =
                    (start + 100 < agent.conversations.len()).then(|| (start + 100).to_string());
                answer(200, json!({"items": items, "next_page_id": next}))
            }
            ["api", "conversations", id] => match agent
                .conversations
                .iter()
                .find(|c| hex(c["id"].as_str().unwrap_or("")) == hex(id))
            {
                Some(c) => answer(200, c.clone()),
                None => answer(404, json!({"detail": "not found"})),
            },
            ["api", "conversations", id, "events", "search"] => match agent.events.get(&hex(id)) {
                None => answer(404, json!({"detail": "not found"})),
                Some(events) => {
                    let gte =
                        query_param(query, "timestamp__gte").and_then(|t| crate::time::parse(&t));
                    let mut sorted: Vec<&Value> = events
                        .iter()
                        .filter(|e| {
                            let t = e["timestamp"]
                                .as_str()
                                .and_then(crate::time::parse)
                                .unwrap_or(i64::MIN);
                            gte.is_none_or(|g| t >= g)
                        })
                        .collect();
                    sorted.sort_by_key(|e| {
                        e["timestamp"]
                            .as_str()
                            .and_then(crate::time::parse)
                            .unwrap_or(i64::MIN)
                    });
                    let start = query_param(query, "page_id")
                        .and_then(|p| {
                            sorted
                                .iter()
                                .position(|e| e["id"].as_str() == Some(p.as_str()))
                        })
                        .unwrap_or(0);
                    let page: Vec<&Value> = sorted.iter().skip(start).take(100).copied().collect();
                    let next = sorted.get(start + 100).and_then(|e| e["id"].as_str());
                    answer(200, json!({"items": page, "next_page_id": next}))
                }
            },
            _ => answer(404, json!({"detail": "no route"})),
        }))
    }
}
