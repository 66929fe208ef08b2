//! Where the plugin's requests may go.
//!
//! Always refused, whatever else is configured: link-local addresses (which
//! include the cloud metadata service at 169.254.169.254 and `fd00:ec2::254`)
//! and the metadata host names. The check runs twice: on the URL (for IP
//! literals, which are never resolved) and on every address DNS returns (so a
//! name that resolves to a forbidden address is refused too). A request whose
//! name resolves only to forbidden addresses fails as a connection error.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Host names of cloud metadata services.
const METADATA_HOSTS: &[&str] = &["metadata.google.internal", "metadata.goog", "metadata"];

#[derive(Debug, Clone, Default)]
pub struct EgressPolicy;

#[derive(Debug)]
pub struct Denied(String);

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Denied {}

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

/// `scheme://host[:port]` of a URL, for messages.
pub fn origin_of(url: &url::Url) -> String {
    url.origin().ascii_serialization()
}

impl EgressPolicy {
    /// Refuse a URL whose host is a forbidden literal address or a metadata name.
    pub fn check_url(&self, url: &url::Url) -> Result<(), Denied> {
        match url.host() {
            Some(url::Host::Ipv4(ip)) if is_forbidden(IpAddr::V4(ip)) => Err(Denied(format!(
                "{} is a link-local or metadata address",
                origin_of(url)
            ))),
            Some(url::Host::Ipv6(ip)) if is_forbidden(IpAddr::V6(ip)) => Err(Denied(format!(
                "{} is a link-local or metadata address",
                origin_of(url)
            ))),
            Some(url::Host::Domain(d))
                if METADATA_HOSTS
                    .contains(&d.trim_end_matches('.').to_ascii_lowercase().as_str()) =>
            {
                Err(Denied(format!(
                    "{} is a cloud metadata service",
                    origin_of(url)
                )))
            }
            None => Err(Denied(format!("'{url}' has no host"))),
            _ => Ok(()),
        }
    }

    /// A DNS resolver that drops forbidden addresses from every answer.
    pub fn resolver(&self) -> PolicyResolver {
        PolicyResolver
    }
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
mod tests {
    use super::*;

    fn check(url: &str) -> bool {
        url::Url::parse(url)
            .map(|u| EgressPolicy.check_url(&u).is_ok())
            .unwrap_or(false)
    }

    #[test]
    fn metadata_and_link_local_are_refused() {
        assert!(!check("http://169.254.169.254/latest/meta-data"));
        assert!(!check("http://[fe80::1]/"));
        assert!(!check("http://[fd00:ec2::254]/"));
        assert!(!check("http://[::ffff:169.254.169.254]/"));
        assert!(!check("http://metadata.google.internal/computeMetadata"));
        assert!(!check("http://METADATA.google.internal./"));
        assert!(!check("http://0.0.0.0:80/"));
    }

    #[test]
    fn ordinary_destinations_pass() {
        assert!(check("http://127.0.0.1:8000/sessions/x"));
        assert!(check("https://runtime.example/start"));
        assert!(check("http://[::1]:3000/"));
        assert!(check("http://10.0.0.5/"));
    }

    #[tokio::test]
    async fn names_resolving_to_forbidden_addresses_are_refused() {
        let r = PolicyResolver;
        let name: Name = "169.254.169.254".parse().unwrap_or_else(|_| panic!("name"));
        assert!(r.resolve(name).await.is_err());
        let name: Name = "localhost".parse().unwrap_or_else(|_| panic!("name"));
        assert!(r.resolve(name).await.is_ok());
    }
}
