//! Fault injection: make the fake misbehave the way a real cluster sometimes does, for
//! the next few matching requests or for good.
//!
//! Faults are checked in the order they were injected. Every matching fault is used up
//! (its count goes down) until the first one that decides the answer: a `Delay` only
//! slows the request and lets the walk go on, so a standing delay can be combined with a
//! one-off error. Faults apply before the API key check, like a load balancer in front
//! of the service would.

use std::time::Duration;

/// What a fault does to a request it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this status code and this raw body (sent as `application/json`,
    /// whatever it contains).
    Status(u16, String),
    /// Answer 200 with this raw body, e.g. `not json`, `{"runtimes": 5}`, `null`,
    /// `[null, 3]`.
    Body(String),
    /// Wait this long, then go on (to later faults, then normal handling).
    Delay(Duration),
    /// Close the connection without any answer: the client sees a connection error,
    /// not an HTTP status.
    Drop,
    /// `GET /sessions/batch` only: answer normally but with `null` entries: one at the
    /// start of the list and one in place of every unknown id. Clients must match
    /// entries by `session_id`, never by position.
    BatchNullEntries,
    /// `GET /sessions/batch` only: answer 200 with the body `null`.
    BatchNullBody,
}

impl FaultAction {
    /// The batch actions describe a batch answer, so they match nothing else whatever
    /// the fault's filters say.
    fn batch_only(&self) -> bool {
        matches!(
            self,
            FaultAction::BatchNullEntries | FaultAction::BatchNullBody
        )
    }
}

/// A fault: which requests it matches, how many times, and what it does.
///
/// ```
/// use sandboxd_tests::fake_runtime::Fault;
/// // The next two `GET /list` calls fail with 503.
/// let fault = Fault::status(503, r#"{"detail": "busy"}"#).on("GET", "/list").times(2);
/// # let _ = fault;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Match only this method (case-insensitive); `None` matches every method.
    pub method: Option<String>,
    /// Match only paths starting with this; `None` matches every path.
    pub path_prefix: Option<String>,
    /// How many more requests it applies to; `None` means forever.
    pub times: Option<usize>,
    /// Apply to a matching request only with probability 1/n (seeded, so a run
    /// is repeatable): a background fault rate for load tests.
    pub one_in: Option<u32>,
    /// What it does.
    pub action: FaultAction,
    /// Headers of the answer it gives, if it gives one (a `Retry-After`).
    pub headers: Vec<(String, String)>,
}

impl Fault {
    /// A fault with this action on every request, forever; narrow it with
    /// [`on`](Self::on), [`method`](Self::method), [`path`](Self::path),
    /// [`times`](Self::times) or [`once`](Self::once).
    pub fn new(action: FaultAction) -> Fault {
        Fault {
            method: None,
            path_prefix: None,
            times: None,
            one_in: None,
            action,
            headers: Vec::new(),
        }
    }

    /// See [`FaultAction::Status`].
    pub fn status(code: u16, body: impl Into<String>) -> Fault {
        Fault::new(FaultAction::Status(code, body.into()))
    }

    /// See [`FaultAction::Body`].
    pub fn body(raw: impl Into<String>) -> Fault {
        Fault::new(FaultAction::Body(raw.into()))
    }

    /// See [`FaultAction::Delay`].
    pub fn delay(delay: Duration) -> Fault {
        Fault::new(FaultAction::Delay(delay))
    }

    /// See [`FaultAction::Drop`].
    pub fn drop_connection() -> Fault {
        Fault::new(FaultAction::Drop)
    }

    /// See [`FaultAction::BatchNullEntries`].
    pub fn batch_null_entries() -> Fault {
        Fault::new(FaultAction::BatchNullEntries)
    }

    /// See [`FaultAction::BatchNullBody`].
    pub fn batch_null_body() -> Fault {
        Fault::new(FaultAction::BatchNullBody)
    }

    /// Match only this method and paths starting with `path_prefix`.
    pub fn on(self, method: &str, path_prefix: &str) -> Fault {
        self.method(method).path(path_prefix)
    }

    /// Match only this method.
    pub fn method(mut self, method: &str) -> Fault {
        self.method = Some(method.to_owned());
        self
    }

    /// Match only paths starting with this prefix.
    pub fn path(mut self, path_prefix: &str) -> Fault {
        self.path_prefix = Some(path_prefix.to_owned());
        self
    }

    /// Apply to the next `n` matching requests only.
    pub fn times(mut self, n: usize) -> Fault {
        self.times = Some(n);
        self
    }

    /// Apply to each matching request with probability `1/n` (`n` ≥ 1).
    pub fn one_in(mut self, n: u32) -> Fault {
        self.one_in = Some(n.max(1));
        self
    }

    /// Apply to the next matching request only.
    pub fn once(self) -> Fault {
        self.times(1)
    }

    /// Send this header with the answer the fault gives (`Retry-After: 2`).
    pub fn header(mut self, name: &str, value: &str) -> Fault {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        if self.action.batch_only() && !(method == "GET" && path == "/sessions/batch") {
            return false;
        }
        self.method
            .as_deref()
            .is_none_or(|wanted| wanted.eq_ignore_ascii_case(method))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|prefix| path.starts_with(prefix))
    }
}

/// How the faults decided one request should go.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Wait this long before anything else (the sum of matching delays).
    pub delay: Duration,
    pub outcome: Outcome,
}

#[derive(Debug, Default)]
pub(crate) enum Outcome {
    /// Handle the request normally.
    #[default]
    Normal,
    /// Handle the request normally, with `null` entries in a batch answer.
    BatchNullEntries,
    /// Answer with this status, raw body and headers.
    Respond(u16, String, Vec<(String, String)>),
    /// Close the connection without an answer.
    Drop,
}

/// The pending faults, in injection order.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    faults: Vec<Fault>,
    /// How many dice were rolled for `one_in` faults: the seed of the next roll.
    rolls: u64,
    /// How many requests met a fault (a delay or an answer).
    applied: u64,
}

/// A well-mixed pseudo-random number from a counter (splitmix64).
fn splitmix64(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl FaultSet {
    pub fn push(&mut self, fault: Fault) {
        if fault.times != Some(0) {
            self.faults.push(fault);
        }
    }

    pub fn clear(&mut self) {
        self.faults.clear();
    }

    /// How many requests met at least one fault so far.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Decides the fate of one request and uses up the faults that matched it.
    pub fn plan(&mut self, method: &str, path: &str) -> Plan {
        let mut plan = Plan::default();
        if self.faults.is_empty() {
            return plan;
        }
        let mut index = 0;
        while index < self.faults.len() {
            let fault = &mut self.faults[index];
            if !fault.matches(method, path) {
                index += 1;
                continue;
            }
            if let Some(n) = fault.one_in {
                self.rolls += 1;
                if !splitmix64(self.rolls).is_multiple_of(u64::from(n)) {
                    index += 1;
                    continue;
                }
            }
            let action = fault.action.clone();
            let headers = fault.headers.clone();
            if plan.delay.is_zero() {
                self.applied += 1;
            }
            if let Some(times) = fault.times.as_mut() {
                *times -= 1;
            }
            if fault.times == Some(0) {
                self.faults.remove(index);
            } else {
                index += 1;
            }
            match action {
                FaultAction::Delay(delay) => plan.delay = plan.delay.saturating_add(delay),
                FaultAction::Status(code, body) => {
                    plan.outcome = Outcome::Respond(code, body, headers);
                    break;
                }
                FaultAction::Body(body) => {
                    plan.outcome = Outcome::Respond(200, body, headers);
                    break;
                }
                FaultAction::BatchNullBody => {
                    plan.outcome = Outcome::Respond(200, "null".to_owned(), headers);
                    break;
                }
                FaultAction::BatchNullEntries => {
                    plan.outcome = Outcome::BatchNullEntries;
                    break;
                }
                FaultAction::Drop => {
                    plan.outcome = Outcome::Drop;
                    break;
                }
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_run_out_and_delays_let_later_faults_apply() {
        let mut set = FaultSet::default();
        set.push(Fault::delay(Duration::from_millis(5)));
        set.push(Fault::status(500, "x").on("GET", "/list").once());
        set.push(Fault::drop_connection().path("/stop").times(0));

        let plan = set.plan("GET", "/list");
        assert_eq!(plan.delay, Duration::from_millis(5));
        assert!(matches!(plan.outcome, Outcome::Respond(500, ref body, _) if body == "x"));

        let plan = set.plan("get", "/list");
        assert_eq!(plan.delay, Duration::from_millis(5));
        assert!(matches!(plan.outcome, Outcome::Normal));

        // `times(0)` never applies.
        assert!(matches!(set.plan("POST", "/stop").outcome, Outcome::Normal));
    }

    #[test]
    fn a_one_in_n_fault_applies_to_about_that_share_of_requests() {
        let mut set = FaultSet::default();
        set.push(Fault::status(503, "").one_in(100));
        let hits = (0..100_000)
            .filter(|_| {
                matches!(
                    set.plan("GET", "/list").outcome,
                    Outcome::Respond(503, _, _)
                )
            })
            .count();
        assert!((800..1200).contains(&hits), "{hits} of 100000");
    }

    #[test]
    fn batch_faults_ignore_other_routes() {
        let mut set = FaultSet::default();
        set.push(Fault::batch_null_body().once());
        assert!(matches!(
            set.plan("GET", "/sessions/abc").outcome,
            Outcome::Normal
        ));
        assert!(matches!(
            set.plan("GET", "/sessions/batch").outcome,
            Outcome::Respond(200, ref body, _) if body == "null"
        ));
        assert!(matches!(
            set.plan("GET", "/sessions/batch").outcome,
            Outcome::Normal
        ));
    }
}
