//! The fake driven over real HTTP, as sandboxd drives it.

mod control;
mod faults;
mod lifecycle;

use serde_json::Value;

use super::FakeRuntime;

/// A small runtime-API client for the tests: answers come back as (status, JSON), with
/// a body that is not JSON kept as a JSON string so malformed answers can be asserted.
struct Api {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Api {
    fn new(fake: &FakeRuntime) -> Api {
        Api::with_key(fake, Some(fake.api_key()))
    }

    fn with_key(fake: &FakeRuntime, key: Option<&str>) -> Api {
        Api {
            http: reqwest::Client::new(),
            base: fake.url().to_owned(),
            key: key.map(str::to_owned),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> reqwest::Result<(u16, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.header("X-API-Key", key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None)
            .await
            .expect("GET reaches the fake")
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.post_raw(path, &body.to_string()).await
    }

    async fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body))
            .await
            .expect("POST reaches the fake")
    }
}

/// A `/start` body as sandboxd sends it (contract section 1).
fn start_body(session_id: &str) -> Value {
    serde_json::json!({
        "image": "ghcr.io/openhands/agent-server:1.0",
        "command": ["/usr/local/bin/openhands-agent-server", "--port", "60000"],
        "working_dir": "/workspace",
        "environment": {"WORKER_1": "12000", "WORKER_2": "12001"},
        "session_id": session_id,
        "resource_factor": 1,
        "run_as_user": 10001,
        "run_as_group": 10001,
        "fs_group": 10001,
    })
}
