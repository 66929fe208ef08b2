//! Fault injection: make one agent server (or all of them) misbehave the way a real
//! sandbox sometimes does, for the next few matching requests or for good.
//!
//! A fault matches by agent prefix (none: every agent, and requests that reach no
//! agent) and by a substring of the path *inside* the agent (`/api/conversations/`,
//! `/events/search`, `/alive`), so the same fault works whatever prefix an agent
//! has. For a request that reaches no agent, the path inside is the whole path.
//!
//! Faults are checked in the order they were injected. Every matching fault is used up
//! (its count goes down) until the first one that decides the answer: a `Delay` only
//! slows the request and lets the walk go on, so a standing delay combines with a
//! one-off error. Faults apply before the session key check, like the proxy in front
//! of a sandbox would.

use std::time::Duration;

use super::state::normalize_prefix;

/// What a fault does to a request it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with this status code and this raw body (sent as `application/json`,
    /// whatever it contains).
    Status(u16, String),
    /// Answer 200 with this raw body: malformed JSON (`not json`, `{"items": 5`), the
    /// wrong shape (`{"items": null}`, `[]`), anything.
    Body(String),
    /// Wait this long, then go on (to later faults, then normal handling).
    Delay(Duration),
    /// Close the connection without any answer: the client sees a connection error,
    /// not an HTTP status.
    Drop,
}

/// A fault: which requests it matches, how many times, and what it does.
///
/// ```
/// use sandboxd_tests::fake_agent::Fault;
/// // The next two event searches of agent "sb-1" fail with 503.
/// let fault = Fault::status(503, r#"{"detail": "busy"}"#)
///     .agent("sb-1")
///     .path("/events/search")
///     .times(2);
/// # let _ = fault;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Match only requests to the agent registered under this prefix (normalized, no
    /// surrounding slashes; "" is the root agent); `None` matches every request.
    pub agent: Option<String>,
    /// Match only paths (inside the agent) containing this; `None` matches all.
    pub path_contains: Option<String>,
    /// How many more requests it applies to; `None` means forever.
    pub times: Option<usize>,
    /// What it does.
    pub action: FaultAction,
}

impl Fault {
    /// A fault with this action on every request, forever; narrow it with
    /// [`agent`](Self::agent), [`path`](Self::path), [`times`](Self::times) or
    /// [`once`](Self::once).
    pub fn new(action: FaultAction) -> Fault {
        Fault {
            agent: None,
            path_contains: None,
            times: None,
            action,
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

    /// Match only requests to the agent registered under `prefix`.
    pub fn agent(mut self, prefix: &str) -> Fault {
        self.agent = Some(normalize_prefix(prefix).to_owned());
        self
    }

    /// Match only paths inside the agent that contain `fragment`.
    pub fn path(mut self, fragment: &str) -> Fault {
        self.path_contains = Some(fragment.to_owned());
        self
    }

    /// Apply to the next `n` matching requests only.
    pub fn times(mut self, n: usize) -> Fault {
        self.times = Some(n);
        self
    }

    /// Apply to the next matching request only.
    pub fn once(self) -> Fault {
        self.times(1)
    }

    /// Apply to every matching request (the default).
    pub fn forever(mut self) -> Fault {
        self.times = None;
        self
    }

    fn matches(&self, agent: Option<&str>, path: &str) -> bool {
        self.agent
            .as_deref()
            .is_none_or(|wanted| agent == Some(wanted))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|fragment| path.contains(fragment))
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
    /// Answer with this status and raw body.
    Respond(u16, String),
    /// Close the connection without an answer.
    Drop,
}

/// The pending faults, in injection order.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    faults: Vec<Fault>,
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

    /// Decides the fate of one request and uses up the faults that matched it.
    pub fn plan(&mut self, agent: Option<&str>, path: &str) -> Plan {
        let mut plan = Plan::default();
        let mut index = 0;
        while index < self.faults.len() {
            let fault = &mut self.faults[index];
            if !fault.matches(agent, path) {
                index += 1;
                continue;
            }
            let action = fault.action.clone();
            if let Some(times) = fault.times.as_mut() {
                *times = times.saturating_sub(1);
            }
            if fault.times == Some(0) {
                self.faults.remove(index);
            } else {
                index += 1;
            }
            match action {
                FaultAction::Delay(delay) => plan.delay = plan.delay.saturating_add(delay),
                FaultAction::Status(code, body) => {
                    plan.outcome = Outcome::Respond(code, body);
                    break;
                }
                FaultAction::Body(body) => {
                    plan.outcome = Outcome::Respond(200, body);
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
    fn faults_match_by_agent_and_path_and_run_out() {
        let mut set = FaultSet::default();
        set.push(Fault::delay(Duration::from_millis(5)).agent("/sb-1/"));
        set.push(
            Fault::status(500, "x")
                .agent("sb-1")
                .path("/events/")
                .once(),
        );
        set.push(Fault::drop_connection().times(0));
        set.push(Fault::body("oops").path("/alive").times(2).forever());

        let plan = set.plan(Some("sb-1"), "/api/conversations/abc/events/search");
        assert_eq!(plan.delay, Duration::from_millis(5));
        assert!(matches!(plan.outcome, Outcome::Respond(500, ref body) if body == "x"));
        let plan = set.plan(Some("sb-1"), "/api/conversations/abc/events/search");
        assert!(matches!(plan.outcome, Outcome::Normal));

        // Other agents and requests that reach no agent see only unfiltered faults.
        let plan = set.plan(Some("sb-2"), "/api/conversations/search");
        assert_eq!(plan.delay, Duration::ZERO);
        assert!(matches!(plan.outcome, Outcome::Normal));
        for _ in 0..3 {
            let plan = set.plan(None, "/nobody/alive");
            assert!(matches!(plan.outcome, Outcome::Respond(200, ref body) if body == "oops"));
        }
    }
}
