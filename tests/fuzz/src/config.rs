//! Configuration: the input is a `sandboxd.toml`, optionally followed by a NUL
//! byte and environment variables, one `NAME=value` per line. It is read the way
//! `Config::load` reads a file (`host/src/config/`): TOML into `FileConfig`, the
//! environment laid over it, then `validate`.
//!
//! Asserts: reading never panics; a refused configuration names at least one
//! problem; an accepted one keeps every invariant `Config` promises (each value
//! in its documented range, URLs absolute http(s) without a trailing slash,
//! keys long enough, unique spec ids, no unauthenticated public listener unless
//! allowed), and its URLs are fixed points (accepted again as they are).

use std::collections::HashMap;
use std::time::Duration;

use crate::world::parts;
use sandboxd::config::{AuthMode, Config, FileConfig, Probe, validate};

/// One input, checked.
pub fn run(data: &[u8]) {
    let [file, env] = parts::<2>(data);
    let Ok(file) = std::str::from_utf8(file) else {
        return;
    };
    let env: HashMap<String, String> = String::from_utf8_lossy(env)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let Ok(mut raw) = toml::from_str::<FileConfig>(file) else {
        return;
    };
    if let Err(problems) = raw.apply_env(|name| env.get(name).cloned()) {
        assert!(!problems.is_empty(), "an empty list of problems");
        return;
    }
    let allow_public = raw.auth.allow_unauthenticated_public == Some(true);
    match validate(raw) {
        Ok(config) => check(&config, allow_public),
        Err(e) => {
            assert!(!e.0.is_empty(), "a refusal without a reason");
            assert!(e.0.iter().all(|m| !m.trim().is_empty()), "an empty reason");
        }
    }
}

fn check(c: &Config, allow_public: bool) {
    assert!(!c.data_dir.as_os_str().is_empty());
    for url in c.web_url.iter().chain(c.runtime.api_url.iter()) {
        check_url(url);
    }
    if c.runtime.api_url.is_some() {
        assert!(
            !c.runtime.api_key.is_empty(),
            "a remote runtime without a key"
        );
    }
    assert!(matches!(c.runtime.resource_factor, 1 | 2 | 4 | 8));
    for n in [
        c.runtime.start_sandbox_timeout_secs,
        c.runtime.max_num_sandboxes,
        c.runtime.polling_interval_secs,
        c.runtime.reconcile_interval_secs,
    ] {
        assert!(n >= 1);
    }

    assert!(!c.specs.is_empty(), "no spec");
    for (i, s) in c.specs.iter().enumerate() {
        assert!(!s.id.trim().is_empty());
        assert!(
            c.specs[..i].iter().all(|o| o.id != s.id),
            "spec '{}' twice",
            s.id
        );
        if let Probe::Http(path) = &s.probe {
            assert!(path.starts_with('/'), "probe path {path:?}");
        }
    }

    if c.auth.mode == AuthMode::ApiKeys {
        assert!(!c.auth.keys.is_empty(), "api-keys mode without keys");
    }
    for k in &c.auth.keys {
        assert!(k.key.expose().len() >= 16, "a short key");
        if let Some(u) = &k.user_id {
            assert!(!u.trim().is_empty());
        }
    }
    let header = &c.auth.user_header;
    assert!(!header.is_empty() && *header == header.to_ascii_lowercase());
    assert!(
        header
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)),
        "user header {header:?}"
    );
    if c.auth.mode == AuthMode::None && !c.listen.ip().is_loopback() {
        assert!(allow_public, "an unauthenticated public listener");
    }

    let seconds = |d: Duration| d > Duration::ZERO && d <= Duration::from_secs(86_400);
    for d in [
        c.plugin.call_timeout,
        c.plugin.poll_timeout,
        c.http.timeout,
        c.http.connect_timeout,
        c.sync.request_timeout,
        c.local_runtime.stop_grace,
        c.local_runtime.ready_timeout,
    ] {
        assert!(seconds(d), "{d:?}");
    }
    assert!((1 << 20..=4096 << 20).contains(&c.plugin.memory_limit_bytes));
    assert!((1..=10_000).contains(&c.plugin.max_instances));
    assert!((1..=1024).contains(&c.sync.concurrency));
    assert!((1 << 20..=1024 << 20).contains(&c.http.max_response_bytes));
    for n in [
        c.plugin.call_http_requests,
        c.plugin.poll_http_requests,
        c.plugin.call_write_bytes,
        c.plugin.poll_write_bytes,
    ] {
        assert!(n >= 1);
    }
    let _ = c.sync.plan.poll;

    // Normalised URLs are accepted again unchanged.
    let mut again = FileConfig {
        web_url: c.web_url.clone(),
        ..FileConfig::default()
    };
    again.runtime.api_url = c.runtime.api_url.clone();
    again.runtime.api_key = Some("k".into());
    match validate(again) {
        Ok(d) => {
            assert_eq!(d.web_url, c.web_url);
            assert_eq!(d.runtime.api_url, c.runtime.api_url);
        }
        Err(e) => panic!("normalised URLs were refused: {e}"),
    }
}

/// What `Config` promises of a base URL.
fn check_url(url: &str) {
    assert!(
        url.starts_with("http://") || url.starts_with("https://"),
        "{url:?}"
    );
    assert!(!url.ends_with('/'), "{url:?} ends with a slash");
    assert!(
        !url.chars().any(|c| c.is_whitespace() || c.is_control()),
        "{url:?} holds whitespace or a control character"
    );
}
