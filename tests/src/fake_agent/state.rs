//! The state one fake shares between its server thread and the test's handle: the
//! agent servers (by prefix), the recorded requests, the pending faults.
//!
//! Locking: the prefix map sits behind a read-write lock that requests only read, for
//! as long as a lookup takes; each agent has its own mutex. So requests to different
//! agents never wait for each other, and the handle can change one agent while others
//! are being served. No lock is ever held across an `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use super::conversations::Conversations;
use super::faults::FaultSet;
use super::options::FakeAgentServerOptions;
use super::recording::Recorder;

/// Everything the server and the handle both touch.
pub(crate) struct Shared {
    latency_nanos: AtomicU64,
    pub recorder: Recorder,
    pub faults: Mutex<FaultSet>,
    pub agents: RwLock<HashMap<String, Arc<AgentSlot>>>,
}

/// One agent server: its prefix and its state.
pub(crate) struct AgentSlot {
    pub prefix: String,
    pub state: Mutex<Agent>,
}

/// What one agent server knows: its session key and its conversations.
pub(crate) struct Agent {
    pub session_key: String,
    pub conversations: Conversations,
}

/// Where a request path led: the agent it reached and the path inside that agent.
pub(crate) struct Resolved<'a> {
    pub agent: Option<Arc<AgentSlot>>,
    pub agent_path: &'a str,
}

impl Shared {
    pub fn new(options: &FakeAgentServerOptions) -> Shared {
        let shared = Shared {
            latency_nanos: AtomicU64::new(0),
            recorder: Recorder::new(options.record_requests),
            faults: Mutex::new(FaultSet::default()),
            agents: RwLock::new(HashMap::new()),
        };
        shared.set_latency(options.latency);
        shared
    }

    pub fn latency(&self) -> Duration {
        Duration::from_nanos(self.latency_nanos.load(Ordering::Relaxed))
    }

    pub fn set_latency(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.latency_nanos.store(nanos, Ordering::Relaxed);
    }

    /// The agent a path belongs to: the longest registered prefix made of whole
    /// leading segments, else the root agent (prefix ""), else none. Costs one hash
    /// lookup per path segment, whatever the number of agents.
    pub fn resolve<'a>(&self, path: &'a str) -> Resolved<'a> {
        let agents = read(&self.agents);
        let not_found = Resolved {
            agent: None,
            agent_path: path,
        };
        if agents.is_empty() {
            return not_found;
        }
        if let Some(inner) = path.strip_prefix('/') {
            let mut end = inner.len();
            loop {
                let candidate = &inner[..end];
                if !candidate.is_empty()
                    && let Some(agent) = agents.get(candidate)
                {
                    return Resolved {
                        agent: Some(Arc::clone(agent)),
                        agent_path: &inner[end..],
                    };
                }
                match candidate.rfind('/') {
                    Some(slash) => end = slash,
                    None => break,
                }
            }
        }
        match agents.get("") {
            Some(root) => Resolved {
                agent: Some(Arc::clone(root)),
                agent_path: path,
            },
            None => not_found,
        }
    }
}

/// A prefix without surrounding slashes: "/sb-1/" and "sb-1" name the same agent.
pub(crate) fn normalize_prefix(prefix: &str) -> &str {
    prefix.trim_matches('/')
}

/// Why a (normalized) prefix cannot be used, if it cannot: it goes into URLs as is,
/// so only non-empty segments of unreserved characters are allowed.
pub(crate) fn invalid_prefix(prefix: &str) -> Option<String> {
    if prefix.is_empty() {
        return None;
    }
    let bad_segment = prefix.split('/').any(|segment| {
        segment.is_empty()
            || !segment
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
    });
    bad_segment.then(|| {
        format!(
            "agent prefix {prefix:?} must be segments of [A-Za-z0-9-._~] joined by single slashes"
        )
    })
}

/// Locks a mutex even if a panicking test thread poisoned it: every critical section
/// leaves the data consistent, and a poisoned lock must not turn into panics on the
/// server's request path.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// [`lock`] for readers of a read-write lock.
pub(crate) fn read<T>(rwlock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    rwlock.read().unwrap_or_else(PoisonError::into_inner)
}

/// [`lock`] for writers of a read-write lock.
pub(crate) fn write<T>(rwlock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    rwlock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared_with(prefixes: &[&str]) -> Shared {
        let shared = Shared::new(&FakeAgentServerOptions::default());
        for prefix in prefixes {
            let slot = AgentSlot {
                prefix: (*prefix).to_owned(),
                state: Mutex::new(Agent {
                    session_key: String::new(),
                    conversations: Conversations::default(),
                }),
            };
            write(&shared.agents).insert((*prefix).to_owned(), Arc::new(slot));
        }
        shared
    }

    fn resolve(shared: &Shared, path: &str) -> (Option<String>, String) {
        let resolved = shared.resolve(path);
        (
            resolved.agent.map(|agent| agent.prefix.clone()),
            resolved.agent_path.to_owned(),
        )
    }

    #[test]
    fn the_longest_whole_segment_prefix_wins_then_the_root() {
        let shared = shared_with(&[]);
        assert_eq!(resolve(&shared, "/a/alive"), (None, "/a/alive".into()));

        let shared = shared_with(&["a", "a/b", "api"]);
        let some = |prefix: &str, path: &str| (Some(prefix.to_owned()), path.to_owned());
        assert_eq!(resolve(&shared, "/a/alive"), some("a", "/alive"));
        assert_eq!(resolve(&shared, "/a/b/api/x"), some("a/b", "/api/x"));
        assert_eq!(resolve(&shared, "/a/bc/alive"), some("a", "/bc/alive"));
        assert_eq!(resolve(&shared, "/api/api/x"), some("api", "/api/x"));
        assert_eq!(resolve(&shared, "/a"), some("a", ""));
        assert_eq!(resolve(&shared, "/ab/alive"), (None, "/ab/alive".into()));

        let shared = shared_with(&["", "a"]);
        assert_eq!(resolve(&shared, "/ab/alive"), some("", "/ab/alive"));
        assert_eq!(resolve(&shared, "/alive"), some("", "/alive"));
        assert_eq!(resolve(&shared, "/a/alive"), some("a", "/alive"));
    }

    #[test]
    fn prefixes_are_url_safe_segments() {
        assert_eq!(normalize_prefix("/sb-1/"), "sb-1");
        for good in ["", "sb-1", "runtimes/rt_1.x~"] {
            assert_eq!(invalid_prefix(good), None, "{good:?}");
        }
        for bad in ["a//b", "a b", "a?b", "é", "a%20"] {
            assert!(invalid_prefix(bad).is_some(), "{bad:?}");
        }
    }
}
