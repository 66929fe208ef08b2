//! A small JSON client for sandboxd's API, for tests and benchmarks.

use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Clone)]
pub struct Api {
    base: String,
    client: reqwest::Client,
    headers: Vec<(String, String)>,
}

/// A status and a JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    /// The body, after checking the status is 200.
    pub fn ok(self) -> Value {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "unexpected answer: {}",
            self.body
        );
        self.body
    }

    /// The `detail` of an error answer.
    pub fn detail(&self) -> &str {
        self.body["detail"].as_str().unwrap_or_default()
    }
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .no_proxy()
                .build()
                .unwrap_or_else(|e| panic!("client: {e}")),
            headers: Vec::new(),
        }
    }

    /// The same client, sending `Authorization: Bearer <key>`.
    pub fn with_key(&self, key: &str) -> Api {
        self.with_header("authorization", &format!("Bearer {key}"))
    }

    pub fn with_header(&self, name: &str, value: &str) -> Api {
        let mut api = self.clone();
        api.headers.push((name.to_owned(), value.to_owned()));
        api
    }

    /// The base URL requests go to.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A POST with a JSON body.
    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        let mut req = self.client.post(format!("{}{path}", self.base)).json(body);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap_or_default();
        Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    pub async fn request(&self, method: Method, path: &str) -> Reply {
        self.try_request(method, path)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A request whose transport failure is an error rather than a panic.
    pub async fn try_request(&self, method: Method, path: &str) -> Result<Reply, reqwest::Error> {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        Ok(Reply {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }

    /// The raw body of a GET, for checks on the exact text.
    pub async fn get_text(&self, path: &str) -> String {
        let mut req = self.client.get(format!("{}{path}", self.base));
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        resp.text().await.unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path).await
    }

    pub async fn post(&self, path: &str) -> Reply {
        self.request(Method::POST, path).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.request(Method::DELETE, path).await
    }

    /// `POST /api/v1/sandboxes` with the default spec; the new sandbox's JSON.
    pub async fn start(&self) -> Value {
        self.post("/api/v1/sandboxes").await.ok()
    }

    /// `GET /api/v1/sandboxes?id=…` for one id.
    pub async fn sandbox(&self, id: &str) -> Value {
        let list = self.get(&format!("/api/v1/sandboxes?id={id}")).await.ok();
        list[0].clone()
    }

    /// Every page of `/api/v1/sandboxes/search`, following `next_page_id`.
    pub async fn search_all(&self, limit: u32) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut page_id: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &page_id {
                None => format!("/api/v1/sandboxes/search?limit={limit}"),
                Some(p) => format!("/api/v1/sandboxes/search?limit={limit}&page_id={p}"),
            };
            let page = self.get(&path).await.ok();
            pages += 1;
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_page_id"].as_str() {
                Some(next) => page_id = Some(next.to_owned()),
                None => return (items, pages),
            }
        }
    }
}
