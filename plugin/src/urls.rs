//! The URLs a running sandbox exposes.
//!
//! A running sandbox with a runtime `url` exposes exactly four services, in this
//! order: the agent server (the runtime URL itself), VSCode, and two workers. The
//! cluster routes to them either by path (`https://host/{runtime_id}/vscode`) or by
//! subdomain (`https://vscode-host/`), and which one is in use is read off the
//! runtime URL: path routing when its path starts with `/{runtime_id}`.
//!
//! The runtime URL is split the way Python's `urllib.parse.urlparse` splits it
//! (scheme, netloc as written, path), not normalised by a URL library: the upstream
//! service builds these strings from the raw netloc, and clients compare them.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::model::{ExposedUrl, Status};
use crate::runtime::Runtime;

pub const AGENT_SERVER_PORT: u16 = 60000;
pub const VSCODE_PORT: u16 = 60001;
pub const WORKER_1_PORT: u16 = 12000;
pub const WORKER_2_PORT: u16 = 12001;

/// The exposed URLs for a sandbox in `status` whose runtime answered `runtime`:
/// none unless running, empty when running without a URL.
pub fn exposed_urls(status: Status, runtime: Option<&Runtime>) -> Option<Vec<ExposedUrl>> {
    if status != Status::Running {
        return None;
    }
    let runtime = runtime?;
    let Some(url) = runtime.url.as_deref().filter(|u| !u.is_empty()) else {
        return Some(Vec::new());
    };
    let routes = Routes::new(url, runtime.runtime_id.as_deref());
    let key = runtime.session_api_key.as_deref().unwrap_or("");
    let mut vscode = routes.service("vscode");
    vscode.push_str("?tkn=");
    vscode.push_str(&percent_encode(key));
    vscode.push_str("&folder=%2Fworkspace%2Fproject");
    Some(vec![
        ExposedUrl {
            name: "AGENT_SERVER",
            url: url.to_owned(),
            port: AGENT_SERVER_PORT,
        },
        ExposedUrl {
            name: "VSCODE",
            url: vscode,
            port: VSCODE_PORT,
        },
        ExposedUrl {
            name: "WORKER_1",
            url: routes.service("work-1"),
            port: WORKER_1_PORT,
        },
        ExposedUrl {
            name: "WORKER_2",
            url: routes.service("work-2"),
            port: WORKER_2_PORT,
        },
    ])
}

/// The URL of service `name` next to the agent server at `url`.
///
/// Path routing (the URL's path starts with `/{runtime_id}`):
/// `{scheme}://{netloc}/{runtime_id}/{name}`. Otherwise subdomain routing:
/// `{scheme}://{name}-{netloc}{path}`, an empty path becoming `/`. Without a
/// runtime id, path routing cannot be recognised and subdomain routing is used.
pub fn service_url(url: &str, name: &str, runtime_id: Option<&str>) -> String {
    Routes::new(url, runtime_id).service(name)
}

/// How one runtime's services are reached: the runtime URL split once, and the
/// routing mode it implies. (A page of sandboxes builds hundreds of these URLs,
/// so they are assembled directly rather than through `format!`.)
struct Routes<'a> {
    parts: Parts<'a>,
    /// The runtime id when path routing is in use.
    path_prefix: Option<&'a str>,
}

impl<'a> Routes<'a> {
    fn new(url: &'a str, runtime_id: Option<&'a str>) -> Self {
        let mut parts = split(url);
        if parts.path.is_empty() {
            parts.path = "/";
        }
        let path_prefix = runtime_id.filter(|id| {
            !id.is_empty()
                && parts
                    .path
                    .strip_prefix('/')
                    .is_some_and(|p| p.starts_with(id))
        });
        Routes { parts, path_prefix }
    }

    fn service(&self, name: &str) -> String {
        let Parts {
            scheme,
            netloc,
            path,
        } = self.parts;
        let mut out =
            String::with_capacity(scheme.len() + netloc.len() + path.len() + name.len() + 8);
        out.push_str(scheme);
        out.push_str("://");
        match self.path_prefix {
            Some(id) => {
                out.push_str(netloc);
                out.push('/');
                out.push_str(id);
                out.push('/');
                out.push_str(name);
            }
            None => {
                out.push_str(name);
                out.push('-');
                out.push_str(netloc);
                out.push_str(path);
            }
        }
        out
    }
}

#[derive(Clone, Copy)]
struct Parts<'a> {
    scheme: &'a str,
    netloc: &'a str,
    path: &'a str,
}

/// Scheme, netloc and path of `url`, as `urlparse` would give them (query and
/// fragment dropped). A URL without `://` is taken as a bare netloc over `http`.
fn split(url: &str) -> Parts<'_> {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) if is_scheme(scheme) => (scheme, rest),
        _ => ("http", url),
    };
    let netloc_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (netloc, after) = rest.split_at(netloc_end);
    let path_end = after.find(['?', '#']).unwrap_or(after.len());
    Parts {
        scheme,
        netloc,
        path: &after[..path_end],
    }
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encode everything but RFC 3986 unreserved characters, for query values
/// and path segments. Session keys and sandbox ids are normally URL-safe already,
/// and then this is the identity.
pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, RESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_characters_are_escaped_and_unreserved_ones_kept() {
        assert_eq!(percent_encode("Az09-._~"), "Az09-._~");
        assert_eq!(percent_encode("a b/é?&="), "a%20b%2F%C3%A9%3F%26%3D");
    }

    fn running(url: Option<&str>, runtime_id: Option<&str>, key: Option<&str>) -> Runtime {
        Runtime {
            url: url.map(str::to_owned),
            runtime_id: runtime_id.map(str::to_owned),
            session_api_key: key.map(str::to_owned),
            status: Some("running".into()),
            ..Runtime::default()
        }
    }

    #[test]
    fn subdomain_routing_examples_from_the_contract() {
        assert_eq!(
            service_url("http://localhost:8000", "work-1", Some("r-1")),
            "http://work-1-localhost:8000/"
        );
        assert_eq!(
            service_url(
                "https://r-1.sb.example.com/some/path?q=1",
                "vscode",
                Some("r-1")
            ),
            "https://vscode-r-1.sb.example.com/some/path"
        );
    }

    #[test]
    fn path_routing_examples_from_the_contract() {
        assert_eq!(
            service_url("https://sb.example.com/r-1", "vscode", Some("r-1")),
            "https://sb.example.com/r-1/vscode"
        );
        assert_eq!(
            service_url("http://127.0.0.1:9000/r-1/", "work-2", Some("r-1")),
            "http://127.0.0.1:9000/r-1/work-2"
        );
    }

    #[test]
    fn netloc_is_kept_as_written() {
        assert_eq!(
            service_url("HTTPS://User@Host.Example:443/x", "work-1", Some("r")),
            "HTTPS://work-1-User@Host.Example:443/x"
        );
    }

    #[test]
    fn missing_runtime_id_falls_back_to_subdomain_routing() {
        assert_eq!(
            service_url("https://sb.example.com/r-1", "vscode", None),
            "https://vscode-sb.example.com/r-1"
        );
        assert_eq!(
            service_url("https://sb.example.com/r-1", "vscode", Some("")),
            "https://vscode-sb.example.com/r-1"
        );
    }

    #[test]
    fn url_without_scheme_is_tolerated() {
        assert_eq!(
            service_url("sb.example.com", "work-1", Some("r")),
            "http://work-1-sb.example.com/"
        );
        assert_eq!(service_url("", "work-1", None), "http://work-1-/");
    }

    #[test]
    fn running_with_url_exposes_four_urls_in_order() {
        let rt = running(Some("https://sb.example.com/r-1"), Some("r-1"), Some("k3y"));
        let urls = exposed_urls(Status::Running, Some(&rt)).unwrap_or_default();
        let got: Vec<(&str, &str, u16)> = urls
            .iter()
            .map(|u| (u.name, u.url.as_str(), u.port))
            .collect();
        assert_eq!(
            got,
            vec![
                ("AGENT_SERVER", "https://sb.example.com/r-1", 60000),
                (
                    "VSCODE",
                    "https://sb.example.com/r-1/vscode?tkn=k3y&folder=%2Fworkspace%2Fproject",
                    60001
                ),
                ("WORKER_1", "https://sb.example.com/r-1/work-1", 12000),
                ("WORKER_2", "https://sb.example.com/r-1/work-2", 12001),
            ]
        );
    }

    #[test]
    fn subdomain_routing_exposes_four_urls() {
        let rt = running(Some("http://localhost:8000"), Some("r-1"), Some("k"));
        let urls = exposed_urls(Status::Running, Some(&rt)).unwrap_or_default();
        assert_eq!(urls[0].url, "http://localhost:8000");
        assert_eq!(
            urls[1].url,
            "http://vscode-localhost:8000/?tkn=k&folder=%2Fworkspace%2Fproject"
        );
        assert_eq!(urls[2].url, "http://work-1-localhost:8000/");
        assert_eq!(urls[3].url, "http://work-2-localhost:8000/");
    }

    #[test]
    fn running_without_url_exposes_an_empty_list() {
        let rt = running(None, Some("r"), None);
        assert_eq!(exposed_urls(Status::Running, Some(&rt)), Some(vec![]));
        let rt = running(Some(""), Some("r"), None);
        assert_eq!(exposed_urls(Status::Running, Some(&rt)), Some(vec![]));
    }

    #[test]
    fn not_running_exposes_nothing() {
        let rt = running(Some("http://x"), Some("r"), Some("k"));
        for status in [
            Status::Starting,
            Status::Paused,
            Status::Error,
            Status::Missing,
        ] {
            assert_eq!(exposed_urls(status, Some(&rt)), None);
        }
        assert_eq!(exposed_urls(Status::Running, None), None);
    }

    #[test]
    fn unusual_key_characters_are_encoded() {
        let rt = running(Some("http://h/r"), Some("r"), Some("a b&c"));
        let urls = exposed_urls(Status::Running, Some(&rt)).unwrap_or_default();
        assert_eq!(
            urls[1].url,
            "http://h/r/vscode?tkn=a%20b%26c&folder=%2Fworkspace%2Fproject"
        );
    }
}
