//! The calls of the runtime API contract, over the `http` import.
//!
//! Every request names the `runtime-api` credential: the host attaches the key.
//! Every failure becomes a [`RuntimeError`] that says which call failed and why, in
//! words fit for the caller's `detail`.
//!
//! Retries: the reads (`GET /sessions/{id}`, `GET /sessions/batch`, `GET /list`)
//! are idempotent and are tried up to [`READ_ATTEMPTS`] times when the failure
//! looks transient: a refused or broken connection, 429 (after its `Retry-After`
//! if that is short), 502, 503, 504. Waits grow exponentially from
//! [`BACKOFF_MS`] with jitter, so that many calls failing together do not retry
//! together. A timeout is not retried (a slow runtime is not helped by more
//! requests), nor a 500, nor an unreadable body. The writes (`/start`, `/pause`,
//! `/resume`, `/stop`) are never repeated: whether they happened is checked
//! instead (see `service::lifecycle`).

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;

use super::Runtime;
use super::lenient::{MaybeRuntime, RuntimeList};
use super::start::StartRequest;
use crate::ports::{Credential, Env, Http, HttpError, Method, Request, Response};
use crate::urls::percent_encode;

/// A failed runtime API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeError {
    /// `POST /start`, `GET /sessions/{id}`, …
    pub call: String,
    pub cause: Cause,
    /// How many times the call was tried (reads are retried).
    pub attempts: u32,
}

/// Tries of an idempotent read before its failure stands.
pub const READ_ATTEMPTS: u32 = 3;
/// The first retry waits between half this and this; each next one twice as long.
pub const BACKOFF_MS: u64 = 100;
/// A `Retry-After` longer than this is not waited for: the failure stands.
const MAX_RETRY_AFTER_MS: u64 = 2_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// No answer (timeout, refused connection, broken connection, …).
    Transport(HttpError),
    /// An answer with a failure status; `body` is a short printable excerpt.
    Status { status: u16, body: String },
    /// A success status with a body we cannot read.
    Malformed(String),
}

impl RuntimeError {
    /// Whether trying again soon may succeed: no answer (a timeout, a refused or
    /// broken connection), 429, or a 5xx. The caller is told to retry (503 with
    /// `Retry-After`) rather than that the runtime refused (502).
    pub fn is_transient(&self) -> bool {
        match &self.cause {
            Cause::Transport(
                HttpError::Denied(_) | HttpError::InvalidRequest(_) | HttpError::TooLarge,
            ) => false,
            Cause::Transport(_) => true,
            Cause::Status { status, .. } => *status == 429 || *status >= 500,
            Cause::Malformed(_) => false,
        }
    }

    /// Whether the runtime may have carried out the call despite the failure (the
    /// request may have been delivered), so the caller must check before assuming
    /// it did not happen.
    pub fn may_have_happened(&self) -> bool {
        match &self.cause {
            Cause::Transport(
                HttpError::Connect(_) | HttpError::Denied(_) | HttpError::InvalidRequest(_),
            ) => false,
            Cause::Transport(_) => true,
            Cause::Status { status, .. } => *status >= 500,
            Cause::Malformed(_) => true,
        }
    }
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "runtime API {} ", self.call)?;
        match &self.cause {
            Cause::Transport(e) => write!(f, "failed: {e}")?,
            Cause::Status { status, body } if body.is_empty() => {
                write!(f, "answered HTTP {status}")?;
            }
            Cause::Status { status, body } => write!(f, "answered HTTP {status}: {body}")?,
            Cause::Malformed(m) => write!(f, "answered an unreadable body: {m}")?,
        }
        if self.attempts > 1 {
            write!(f, " (after {} attempts)", self.attempts)?;
        }
        Ok(())
    }
}

/// What a runtime action (`/pause`, `/resume`, `/stop`) came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Done; the body if it described a runtime (resume carries a new key).
    Done(Option<Runtime>),
    /// The runtime API does not know the runtime (404).
    NotFound,
}

pub struct RuntimeApi<'a> {
    http: &'a dyn Http,
    /// For the backoff between retries: sleeping and jitter.
    env: &'a dyn Env,
    /// Base URL without a trailing slash.
    base: &'a str,
}

impl<'a> RuntimeApi<'a> {
    pub fn new(http: &'a dyn Http, env: &'a dyn Env, base: &'a str) -> Self {
        RuntimeApi { http, env, base }
    }

    /// `GET /sessions/{id}`: the runtime of sandbox `id`, none on 404.
    pub fn get(&self, session_id: &str) -> Result<Option<Runtime>, RuntimeError> {
        let path = format!("/sessions/{}", percent_encode(session_id));
        let call = format!("GET {path}");
        let (response, attempts) = self.read(&call, self.request(Method::Get, &path))?;
        if response.status == 404 {
            return Ok(None);
        }
        let response = success(&call, response, attempts)?;
        parse::<MaybeRuntime>(&call, &response.body).map(|m| m.0)
    }

    /// `GET /sessions/batch?ids=…`: the runtimes of `ids`, keyed by session id.
    /// Makes no call at all for an empty list.
    pub fn batch(&self, ids: &[&str]) -> Result<HashMap<String, Runtime>, RuntimeError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut path = String::from("/sessions/batch?");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                path.push('&');
            }
            path.push_str("ids=");
            path.push_str(&percent_encode(id));
        }
        let call = "GET /sessions/batch".to_owned();
        let (response, attempts) = self.read(&call, self.request(Method::Get, &path))?;
        let response = success(&call, response, attempts)?;
        let list = parse::<RuntimeList>(&call, &response.body)?;
        Ok(list
            .0
            .into_iter()
            .filter_map(|rt| Some((rt.session_id.clone()?, rt)))
            .collect())
    }

    /// `GET /list`: the running and recently active runtimes.
    pub fn list(&self) -> Result<Vec<Runtime>, RuntimeError> {
        #[derive(Deserialize)]
        struct ListBody {
            #[serde(default)]
            runtimes: Option<RuntimeList>,
        }
        let call = "GET /list".to_owned();
        let (response, attempts) = self.read(&call, self.request(Method::Get, "/list"))?;
        let response = success(&call, response, attempts)?;
        let body = parse::<ListBody>(&call, &response.body)?;
        Ok(body.runtimes.map(|l| l.0).unwrap_or_default())
    }

    /// `POST /start`. `Ok(None)`: the runtime API accepted the start but its answer
    /// described no runtime.
    /// `POST /start`. A 2xx answer that does not describe the runtime (not JSON,
    /// or no `runtime_id`) is a `Malformed` error: the start may have happened,
    /// and only a lookup can tell.
    pub fn start(&self, body: &StartRequest<'_>) -> Result<Runtime, RuntimeError> {
        let call = "POST /start".to_owned();
        let json = serde_json::to_vec(body).map_err(|e| RuntimeError {
            call: call.clone(),
            cause: Cause::Malformed(format!("could not encode the request: {e}")),
            attempts: 1,
        })?;
        let request = self.request(Method::Post, "/start").json(json);
        let response = success(&call, self.send(&call, request)?, 1)?;
        parse::<MaybeRuntime>(&call, &response.body)?
            .0
            .filter(|r| r.runtime_id.is_some())
            .ok_or_else(|| RuntimeError {
                call,
                cause: Cause::Malformed("the answer describes no runtime (no runtime_id)".into()),
                attempts: 1,
            })
    }

    pub fn pause(&self, runtime_id: &str) -> Result<Action, RuntimeError> {
        self.action("/pause", runtime_id)
    }

    pub fn resume(&self, runtime_id: &str) -> Result<Action, RuntimeError> {
        self.action("/resume", runtime_id)
    }

    pub fn stop(&self, runtime_id: &str) -> Result<Action, RuntimeError> {
        self.action("/stop", runtime_id)
    }

    /// `POST {path}` with `{"runtime_id": …}`; 404 is an answer, not a failure.
    fn action(&self, path: &str, runtime_id: &str) -> Result<Action, RuntimeError> {
        let call = format!("POST {path}");
        let body = serde_json::json!({ "runtime_id": runtime_id }).to_string();
        let request = self.request(Method::Post, path).json(body.into_bytes());
        let response = self.send(&call, request)?;
        if response.status == 404 {
            return Ok(Action::NotFound);
        }
        let response = success(&call, response, 1)?;
        // An empty answer is a plain "done". One that is not JSON at all came from
        // something other than the runtime API (a proxy's page), so it is no proof
        // the action happened: a `/stop` taken for done on such an answer would
        // forget a runtime that still runs.
        if response.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Action::Done(None));
        }
        let answer: serde_json::Value = parse(&call, &response.body)?;
        Ok(Action::Done(
            serde_json::from_value::<MaybeRuntime>(answer)
                .ok()
                .and_then(|m| m.0),
        ))
    }

    fn request(&self, method: Method, path: &str) -> Request {
        Request::new(method, format!("{}{path}", self.base)).credential(Credential::RuntimeApi)
    }

    /// Send a write, once.
    fn send(&self, call: &str, request: Request) -> Result<Response, RuntimeError> {
        self.http.send(request).map_err(|e| RuntimeError {
            call: call.to_owned(),
            cause: Cause::Transport(e),
            attempts: 1,
        })
    }

    /// Send a read, retrying transient failures; the last answer (of any status)
    /// and how many tries it took.
    fn read(&self, call: &str, request: Request) -> Result<(Response, u32), RuntimeError> {
        let mut attempt = 1;
        loop {
            let outcome = self.http.send(request.clone());
            let wait = match &outcome {
                Err(HttpError::Connect(_) | HttpError::Transport(_)) => Some(self.backoff(attempt)),
                Ok(r) if matches!(r.status, 502..=504) => Some(self.backoff(attempt)),
                Ok(r) if r.status == 429 => match retry_after_ms(r) {
                    Some(ms) if ms > MAX_RETRY_AFTER_MS => None,
                    Some(ms) => Some(ms),
                    None => Some(self.backoff(attempt)),
                },
                _ => None,
            };
            match wait {
                Some(ms) if attempt < READ_ATTEMPTS => {
                    self.env.sleep_ms(ms);
                    attempt += 1;
                }
                _ => {
                    return outcome.map(|r| (r, attempt)).map_err(|e| RuntimeError {
                        call: call.to_owned(),
                        cause: Cause::Transport(e),
                        attempts: attempt,
                    });
                }
            }
        }
    }

    /// The wait before try `attempt + 1`: [`BACKOFF_MS`] doubled per try, the
    /// upper half of it picked at random.
    fn backoff(&self, attempt: u32) -> u64 {
        let ceiling = BACKOFF_MS << (attempt - 1).min(10);
        let random = u64::from_be_bytes(self.env.random_16()[..8].try_into().unwrap_or([0; 8]));
        ceiling / 2 + random % (ceiling / 2 + 1)
    }
}

/// A `Retry-After` in seconds, as milliseconds (HTTP dates are not waited for).
fn retry_after_ms(response: &Response) -> Option<u64> {
    let secs: u64 = response.header("retry-after")?.trim().parse().ok()?;
    Some(secs.saturating_mul(1000))
}

fn success(call: &str, response: Response, attempts: u32) -> Result<Response, RuntimeError> {
    if response.is_success() {
        Ok(response)
    } else {
        Err(RuntimeError {
            call: call.to_owned(),
            attempts,
            cause: Cause::Status {
                status: response.status,
                body: excerpt(&response.body),
            },
        })
    }
}

fn parse<T: for<'de> Deserialize<'de>>(call: &str, body: &[u8]) -> Result<T, RuntimeError> {
    serde_json::from_slice(body).map_err(|e| RuntimeError {
        call: call.to_owned(),
        cause: Cause::Malformed(e.to_string()),
        attempts: 1,
    })
}

/// The first 200 characters of a body, printable, for an error message.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_call_and_the_cause() {
        let e = RuntimeError {
            call: "POST /start".into(),
            cause: Cause::Status {
                status: 503,
                body: "overloaded".into(),
            },
            attempts: 1,
        };
        assert_eq!(
            e.to_string(),
            "runtime API POST /start answered HTTP 503: overloaded"
        );
        let e = RuntimeError {
            call: "GET /list".into(),
            cause: Cause::Transport(HttpError::Timeout),
            attempts: 3,
        };
        assert_eq!(
            e.to_string(),
            "runtime API GET /list failed: timed out (after 3 attempts)"
        );
    }

    #[test]
    fn only_undelivered_requests_surely_did_not_happen() {
        let e = |cause| RuntimeError {
            call: String::new(),
            cause,
            attempts: 1,
        };
        assert!(!e(Cause::Transport(HttpError::Connect("refused".into()))).may_have_happened());
        assert!(
            !e(Cause::Status {
                status: 409,
                body: String::new()
            })
            .may_have_happened()
        );
        assert!(e(Cause::Transport(HttpError::Timeout)).may_have_happened());
        assert!(e(Cause::Transport(HttpError::Transport("reset".into()))).may_have_happened());
        assert!(
            e(Cause::Status {
                status: 502,
                body: String::new()
            })
            .may_have_happened()
        );
    }

    #[test]
    fn excerpts_are_short_and_printable() {
        assert_eq!(excerpt(b"a\nb"), "a b");
        let long = "x".repeat(500);
        assert_eq!(excerpt(long.as_bytes()).chars().count(), 201);
    }
}
