//! Where the plugin's requests may go: the egress policy.
//!
//! A request is allowed when its destination matches one of the rules of
//! `[plugin] allowed_hosts` (default: `@runtime`, `@agents`, `@callbacks`):
//!
//! - `@runtime`: the configured runtime API's origin;
//! - `@agents`: the origin of any `url` the runtime API answered with (the agent
//!   servers of the sandboxes sandboxd manages), learned by the host from the
//!   runtime's responses, never from the plugin;
//! - `@callbacks`: the origins of the event callbacks users registered through
//!   the API (recorded by the host before the subscription is stored, kept in
//!   the host's own tables so a restart keeps them);
//! - `*`: anywhere;
//! - a host pattern: `[scheme://]host[:port]`, where `host` is a name, `*.name`
//!   (any subdomain of `name`), an IPv4 address or a bracketed IPv6 address.
//!
//! Always refused, whatever the rules say: link-local addresses (which include
//! the cloud metadata service at 169.254.169.254 and `fd00:ec2::254`) and the
//! metadata host names. That check runs on the URL (for IP literals, never
//! resolved) and again on every address DNS returns, so a name that resolves to
//! a forbidden address is refused too.
//!
//! Invariant: nothing the plugin says widens the policy. Learned origins come
//! from runtime API responses and from users' API requests.
//!
//! With a shared store (replicas), what one replica learns the others need: a
//! callback registered through replica A is delivered by whichever replica
//! holds its share, and an agent server reported to A may be asked by B. So
//! both kinds of origin are written to the store (the host's tables), and an
//! origin this process has not seen is looked up there before it is refused.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::RwLock;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::bindings::storage::{Bound, KeyRef, Op, PutOp, ScanRequest};
use crate::storage::{Namespace, Store};

mod learn;

/// Host names of cloud metadata services.
const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata.goog", "metadata"];

/// The host table recording each event callback's origin, by callback id.
const CALLBACK_TABLE: &str = "egress_callbacks";
/// The same, by origin (`origin \0 callback id` → nothing), to look one up.
const CALLBACK_ORIGINS: &str = "egress_callback_origins";
/// Agent-server origins learned from runtime answers (`origin` → nothing),
/// written only with a shared store.
const AGENT_TABLE: &str = "egress_agents";

/// Most agent-server origins remembered; past it the least recently seen half
/// is forgotten (a live sandbox's origin is learned again at its next lookup).
const MAX_LEARNED: usize = 100_000;

/// The rules an operator gets without configuring any.
pub const DEFAULT_ALLOWED_HOSTS: [&str; 3] = ["@runtime", "@agents", "@callbacks"];

/// Why a request may not leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied(pub String);

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Denied {}

/// One entry of `allowed_hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Runtime,
    Agents,
    Callbacks,
    Any,
    Host(HostPattern),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: Option<String>,
    host: HostMatch,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Exact(String),
    /// `*.example.com`: stored as `.example.com`.
    Subdomain(String),
}

impl Rule {
    /// Parse one `allowed_hosts` entry; the error says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Rule, String> {
        let s = raw.trim();
        match s {
            "@runtime" => return Ok(Rule::Runtime),
            "@agents" => return Ok(Rule::Agents),
            "@callbacks" => return Ok(Rule::Callbacks),
            "*" => return Ok(Rule::Any),
            "" => return Err("an empty entry".into()),
            _ if s.starts_with('@') => {
                return Err(format!(
                    "'{s}' is not a known group; use @runtime, @agents or @callbacks"
                ));
            }
            _ => {}
        }
        let (scheme, rest) = match s.split_once("://") {
            Some((scheme, rest)) => {
                let scheme = scheme.to_ascii_lowercase();
                if scheme != "http" && scheme != "https" {
                    return Err(format!("'{s}': the scheme must be http or https"));
                }
                (Some(scheme), rest)
            }
            None => (None, s),
        };
        if rest.contains(['/', '?', '#', '@']) {
            return Err(format!(
                "'{s}' is not a host pattern: give [scheme://]host[:port], without a path"
            ));
        }
        let (host, port) = split_port(rest).ok_or_else(|| format!("'{s}': invalid port"))?;
        let host = host.to_ascii_lowercase();
        let host = if let Some(domain) = host.strip_prefix("*.") {
            if domain.is_empty() || domain.contains('*') {
                return Err(format!("'{s}': a wildcard must look like *.example.com"));
            }
            HostMatch::Subdomain(format!(".{domain}"))
        } else if host.is_empty() || host.contains('*') {
            return Err(format!(
                "'{s}': a wildcard is only allowed as a leading '*.' or alone"
            ));
        } else {
            // Normalise the way URLs are, so `[::1]` and `LOCALHOST` match.
            let parsed = url::Url::parse(&format!("http://{host}/"))
                .map_err(|e| format!("'{s}': invalid host: {e}"))?;
            HostMatch::Exact(parsed.host_str().unwrap_or_default().to_owned())
        };
        Ok(Rule::Host(HostPattern { scheme, host, port }))
    }
}

/// `host[:port]`, with IPv6 in brackets.
fn split_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(end) = s.find(']') {
        let (host, after) = s.split_at(end + 1);
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return None,
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    match port {
        None => Some((host, None)),
        Some(p) => p.parse::<u16>().ok().map(|p| (host, Some(p))),
    }
}

impl HostPattern {
    fn matches(&self, url: &url::Url) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != url.scheme()) {
            return false;
        }
        if self.port.is_some() && self.port != url.port_or_known_default() {
            return false;
        }
        let Some(host) = url.host_str() else {
            return false;
        };
        match &self.host {
            HostMatch::Exact(h) => host == h,
            HostMatch::Subdomain(suffix) => host.ends_with(suffix.as_str()),
        }
    }
}

/// `scheme://host[:port]` of a URL.
pub fn origin_of(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

/// Whether an address is one no plugin request may reach.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_broadcast() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            // fe80::/10 link-local, and AWS's IPv6 metadata address.
            (seg[0] & 0xffc0) == 0xfe80
                || v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || v6.is_unspecified()
        }
    }
}

/// Refuse a URL whose host is a forbidden literal address or a metadata name.
/// The longest DNS name (RFC 1035). Longer ones cannot be resolved, and
/// keeping origins this short keeps them within the store's key limit.
const MAX_HOST_NAME: usize = 253;

fn check_forbidden(url: &url::Url) -> Result<(), Denied> {
    let why = match url.host() {
        Some(url::Host::Ipv4(ip)) if is_forbidden(IpAddr::V4(ip)) => {
            "is a link-local or metadata address"
        }
        Some(url::Host::Ipv6(ip)) if is_forbidden(IpAddr::V6(ip)) => {
            "is a link-local or metadata address"
        }
        Some(url::Host::Domain(d)) if d.trim_end_matches('.').len() > MAX_HOST_NAME => {
            return Err(Denied(format!(
                "the host name of {}… is longer than {MAX_HOST_NAME} characters (DNS allows no more)",
                d.chars().take(40).collect::<String>()
            )));
        }
        Some(url::Host::Domain(d))
            if METADATA_HOSTS.contains(&d.trim_end_matches('.').to_ascii_lowercase().as_str()) =>
        {
            "is a cloud metadata service"
        }
        None => return Err(Denied(format!("'{url}' has no host"))),
        _ => return Ok(()),
    };
    Err(Denied(format!("{} {why}", origin_of(url))))
}

pub struct EgressPolicy {
    rules: Vec<Rule>,
    runtime_origin: String,
    /// Agent-server origins → when last seen in a runtime answer (a counter).
    agents: RwLock<Learned>,
    callbacks: RwLock<CallbackOrigins>,
    store: Store,
}

#[derive(Default)]
struct Learned {
    seen: HashMap<String, u64>,
    clock: u64,
}

#[derive(Default)]
struct CallbackOrigins {
    by_id: HashMap<String, String>,
    count: HashMap<String, usize>,
}

impl CallbackOrigins {
    fn insert(&mut self, id: String, origin: String) {
        if let Some(old) = self.by_id.insert(id, origin.clone()) {
            self.release(&old);
        }
        *self.count.entry(origin).or_default() += 1;
    }

    fn remove(&mut self, id: &str) {
        if let Some(old) = self.by_id.remove(id) {
            self.release(&old);
        }
    }

    fn release(&mut self, origin: &str) {
        if let Some(n) = self.count.get_mut(origin) {
            *n -= 1;
            if *n == 0 {
                self.count.remove(origin);
            }
        }
    }
}

impl EgressPolicy {
    /// The policy of `rules` for a runtime API at `runtime_url`, with the
    /// callback origins recorded in `store`.
    pub async fn new(
        rules: Vec<Rule>,
        runtime_url: &str,
        store: Store,
    ) -> anyhow::Result<EgressPolicy> {
        let runtime_origin = origin_of(&url::Url::parse(runtime_url)?);
        let mut callbacks = CallbackOrigins::default();
        let recorded = store
            .host_scan_all(CALLBACK_TABLE)
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the callback origins: {e:?}"))?;
        for entry in recorded {
            if let (Ok(id), Ok(origin)) =
                (String::from_utf8(entry.key), String::from_utf8(entry.value))
            {
                callbacks.insert(id, origin);
            }
        }
        Ok(EgressPolicy {
            rules,
            runtime_origin,
            agents: RwLock::default(),
            callbacks: RwLock::new(callbacks),
            store,
        })
    }

    /// Whether the plugin may send a request to `url`.
    pub async fn check(&self, url: &url::Url) -> Result<(), Denied> {
        check_forbidden(url)?;
        let origin = origin_of(url);
        let known_agent = || {
            self.agents
                .read()
                .is_ok_and(|learned| learned.seen.contains_key(&origin))
        };
        let known_callback = || {
            self.callbacks
                .read()
                .is_ok_and(|c| c.count.contains_key(&origin))
        };
        let allowed = self.rules.iter().any(|rule| match rule {
            Rule::Any => true,
            Rule::Runtime => origin == self.runtime_origin,
            Rule::Agents => known_agent(),
            Rule::Callbacks => known_callback(),
            Rule::Host(pattern) => pattern.matches(url),
        });
        if allowed || self.learned_elsewhere(&origin).await {
            Ok(())
        } else {
            Err(Denied(format!(
                "{origin} is not an allowed destination (the plugin may reach the runtime API, \
                 the agent servers it reports, registered event callbacks and [plugin] allowed_hosts)"
            )))
        }
    }

    /// With a shared store: whether another replica learned `origin` (an agent
    /// server's, or a registered callback's) and the rules allow that kind.
    /// Found ones are remembered here from then on.
    async fn learned_elsewhere(&self, origin: &str) -> bool {
        if !self.store.is_shared() {
            return false;
        }
        if self.rules.contains(&Rule::Agents)
            && matches!(
                self.store
                    .get(Namespace::Host, AGENT_TABLE, origin.as_bytes())
                    .await,
                Ok(Some(_))
            )
        {
            self.remember_agents(vec![origin.to_owned()]);
            return true;
        }
        if self.rules.contains(&Rule::Callbacks) {
            let prefix = [origin.as_bytes(), &[0]].concat();
            let mut end = prefix.clone();
            if let Some(last) = end.last_mut() {
                *last = 1;
            }
            let found = self
                .store
                .scan(
                    Namespace::Host,
                    &ScanRequest {
                        table: CALLBACK_ORIGINS.into(),
                        start: Bound::Included(prefix.clone()),
                        end: Bound::Excluded(end),
                        reverse: false,
                        limit: 1,
                    },
                )
                .await;
            if let Ok(Some(entry)) = found.map(|rows| rows.into_iter().next()) {
                let id = String::from_utf8_lossy(&entry.key[prefix.len()..]).into_owned();
                if let Ok(mut callbacks) = self.callbacks.write() {
                    callbacks.insert(id, origin.to_owned());
                }
                return true;
            }
        }
        false
    }

    /// Whether a user may register an event callback at `url`: not a forbidden
    /// address, and allowed by `@callbacks` or a host pattern.
    pub fn check_callback(&self, url: &url::Url) -> Result<(), Denied> {
        check_forbidden(url)?;
        let allowed = self.rules.iter().any(|rule| match rule {
            Rule::Any | Rule::Callbacks => true,
            Rule::Host(pattern) => pattern.matches(url),
            Rule::Runtime | Rule::Agents => false,
        });
        if allowed {
            Ok(())
        } else {
            Err(Denied(format!(
                "{} is not allowed by this server's [plugin] allowed_hosts",
                origin_of(url)
            )))
        }
    }

    /// Learn the agent-server origins in a runtime API answer: every string
    /// field named `url`, at any depth (a runtime, a list or a batch of them).
    /// With a shared store, origins new to this process are written there too,
    /// for the other replicas.
    pub fn learn_from_runtime(&self, body: &[u8]) {
        if !self.rules.contains(&Rule::Agents) || !contains(body, b"\"url\"") {
            return;
        }
        let new = self.remember_agents(learn::url_origins(body));
        if new.is_empty() || !self.store.is_shared() {
            return;
        }
        let store = self.store.clone();
        tokio::spawn(async move {
            let ops = new
                .into_iter()
                .map(|origin| {
                    Op::Put(PutOp {
                        table: AGENT_TABLE.into(),
                        key: origin.into_bytes(),
                        value: Vec::new(),
                    })
                })
                .collect();
            if let Err(e) = store.commit(Namespace::Host, ops).await {
                tracing::warn!(error = ?e, "cannot record learned agent-server origins for the other replicas");
            }
        });
    }

    /// Remember `origins` as seen now; the ones that were not known before.
    fn remember_agents(&self, origins: Vec<String>) -> Vec<String> {
        if origins.is_empty() {
            return origins;
        }
        let Ok(mut learned) = self.agents.write() else {
            return Vec::new();
        };
        learned.clock += 1;
        let now = learned.clock;
        let mut new = Vec::new();
        for origin in origins {
            if learned.seen.insert(origin.clone(), now).is_none() {
                new.push(origin);
            }
        }
        if learned.seen.len() > MAX_LEARNED {
            let mut ages: Vec<u64> = learned.seen.values().copied().collect();
            ages.sort_unstable();
            let cutoff = ages[ages.len() / 2];
            learned.seen.retain(|_, seen| *seen > cutoff);
        }
        new
    }

    /// Record the origin of a callback a user registers (durably, before the
    /// subscription exists, so a restart, and every replica, delivers to it).
    pub async fn add_callback(&self, id: &str, url: &url::Url) -> anyhow::Result<()> {
        let origin = origin_of(url);
        self.store
            .commit(
                Namespace::Host,
                vec![
                    Op::Put(PutOp {
                        table: CALLBACK_TABLE.into(),
                        key: id.as_bytes().to_vec(),
                        value: origin.as_bytes().to_vec(),
                    }),
                    Op::Put(PutOp {
                        table: CALLBACK_ORIGINS.into(),
                        key: origin_key(&origin, id),
                        value: Vec::new(),
                    }),
                ],
            )
            .await
            .map_err(|e| anyhow::anyhow!("cannot record the callback's origin: {e:?}"))?;
        if let Ok(mut callbacks) = self.callbacks.write() {
            callbacks.insert(id.to_owned(), origin);
        }
        Ok(())
    }

    /// Forget a deleted callback's origin (kept while another callback uses it).
    pub async fn remove_callback(&self, id: &str) -> anyhow::Result<()> {
        let recorded = self
            .store
            .get(Namespace::Host, CALLBACK_TABLE, id.as_bytes())
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the callback's origin: {e:?}"))?;
        let mut ops = vec![Op::Delete(KeyRef {
            table: CALLBACK_TABLE.into(),
            key: id.as_bytes().to_vec(),
        })];
        if let Some(origin) = recorded.and_then(|o| String::from_utf8(o).ok()) {
            ops.push(Op::Delete(KeyRef {
                table: CALLBACK_ORIGINS.into(),
                key: origin_key(&origin, id),
            }));
        }
        self.store
            .commit(Namespace::Host, ops)
            .await
            .map_err(|e| anyhow::anyhow!("cannot forget the callback's origin: {e:?}"))?;
        if let Ok(mut callbacks) = self.callbacks.write() {
            callbacks.remove(id);
        }
        Ok(())
    }

    /// A DNS resolver that drops forbidden addresses from every answer.
    pub fn resolver() -> PolicyResolver {
        PolicyResolver
    }
}

/// `origin \0 id`: the origin index's key (an origin has no NUL byte).
fn origin_key(origin: &str, id: &str) -> Vec<u8> {
    [origin.as_bytes(), &[0], id.as_bytes()].concat()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub struct PolicyResolver;

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = resolved.filter(|a| !is_forbidden(a.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(Denied(format!(
                    "{host} resolves only to addresses the egress policy forbids (or to none)"
                )))
                    as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests;
