use super::*;
use crate::storage::RedbStore;

fn url(s: &str) -> url::Url {
    url::Url::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn policy(rules: &[&str], dir: &std::path::Path) -> EgressPolicy {
    let rules = rules
        .iter()
        .map(|r| Rule::parse(r).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    // A store just dropped may still be closing on its writer thread.
    let path = dir.join("egress.redb");
    let mut store = RedbStore::open(&path, 64 << 20);
    for _ in 0..100 {
        if store.is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        store = RedbStore::open(&path, 64 << 20);
    }
    let store = Store::Redb(store.unwrap_or_else(|e| panic!("{e}")));
    futures::executor::block_on(EgressPolicy::new(rules, "http://127.0.0.1:4000", store))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The embedded store answers at once: no runtime needed to wait for it.
fn allows(p: &EgressPolicy, s: &str) -> bool {
    futures::executor::block_on(p.check(&url(s))).is_ok()
}

#[test]
fn metadata_and_link_local_are_refused_even_when_everything_is_allowed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p = policy(&["*"], dir.path());
    for denied in [
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata",
        "http://METADATA.google.internal./",
        "http://0.0.0.0:80/",
    ] {
        assert!(!allows(&p, denied), "{denied} must be refused");
    }
    assert!(allows(&p, "http://10.0.0.5/"));
    assert!(allows(&p, "https://example.com/"));
}

#[test]
fn a_host_name_longer_than_dns_allows_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p = policy(&["*"], dir.path());
    let label = "a".repeat(63);
    let longest = [label.as_str(); 4].join(".")[..253].to_owned();
    assert!(
        p.check_callback(&url(&format!("https://{longest}/")))
            .is_ok()
    );
    let too_long = format!("https://{longest}a/");
    let Err(Denied(why)) = p.check_callback(&url(&too_long)) else {
        panic!("a 254-character host name must be refused");
    };
    assert!(why.contains("longer than 253"), "{why}");
    assert!(!allows(&p, &too_long));
}

#[test]
fn by_default_only_the_runtime_reported_agents_and_callbacks_pass() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p = policy(&DEFAULT_ALLOWED_HOSTS, dir.path());
    assert!(allows(&p, "http://127.0.0.1:4000/sessions/abc"));
    assert!(
        !allows(&p, "http://127.0.0.1:4001/"),
        "another port is another origin"
    );
    assert!(!allows(&p, "https://agent-1.example/api/conversations"));

    p.learn_from_runtime(
        br#"{"runtimes": [{"runtime_id": "r1", "url": "https://agent-1.example/", "session_api_key": "k"},
                          {"runtime_id": "r2", "url": "not a url"}]}"#,
    );
    assert!(allows(&p, "https://agent-1.example/api/conversations"));
    assert!(
        !allows(&p, "http://agent-1.example/"),
        "the scheme is part of the origin"
    );
    assert!(!allows(&p, "https://agent-2.example/"));
}

#[tokio::test]
async fn callback_origins_are_allowed_while_registered_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    {
        let p = policy(&DEFAULT_ALLOWED_HOSTS, dir.path());
        let hook = url("https://hooks.example/a");
        assert!(p.check_callback(&hook).is_ok());
        assert!(!allows(&p, "https://hooks.example/b"));
        p.add_callback("cb1", &hook)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        p.add_callback("cb2", &url("https://hooks.example/b"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        p.remove_callback("cb1")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            allows(&p, "https://hooks.example/x"),
            "cb2 still uses the origin"
        );
    }
    let p = policy(&DEFAULT_ALLOWED_HOSTS, dir.path());
    assert!(
        allows(&p, "https://hooks.example/x"),
        "kept across a restart"
    );
    p.remove_callback("cb2")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!allows(&p, "https://hooks.example/x"));
}

#[test]
fn patterns_widen_and_an_explicit_list_narrows() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let p = policy(
        &[
            "@runtime",
            "*.agents.corp",
            "https://api.example:8443",
            "[::1]:9000",
        ],
        dir.path(),
    );
    assert!(allows(&p, "http://a.agents.corp/"));
    assert!(allows(&p, "https://b.c.agents.corp:1234/"));
    assert!(
        !allows(&p, "http://agents.corp/"),
        "*. matches subdomains only"
    );
    assert!(!allows(&p, "http://evilagents.corp/"));
    assert!(allows(&p, "https://api.example:8443/x"));
    assert!(!allows(&p, "http://api.example:8443/x"));
    assert!(!allows(&p, "https://api.example/x"));
    assert!(allows(&p, "http://[::1]:9000/"));

    // Without @agents, what the runtime reports is not learned.
    p.learn_from_runtime(br#"{"url": "https://agent-1.example/"}"#);
    assert!(!allows(&p, "https://agent-1.example/"));
    // Without @callbacks, users may register only pattern-matching callbacks.
    assert!(p.check_callback(&url("https://hooks.example/")).is_err());
    assert!(p.check_callback(&url("http://x.agents.corp/")).is_ok());
}

#[test]
fn bad_patterns_are_explained() {
    for (raw, says) in [
        ("", "empty"),
        ("@everyone", "known group"),
        ("ftp://x", "scheme"),
        ("example.com/path", "without a path"),
        ("example.com:http", "port"),
        ("a.*.com", "wildcard"),
        ("*.", "wildcard"),
    ] {
        let err = Rule::parse(raw)
            .err()
            .unwrap_or_else(|| panic!("{raw:?} parsed"));
        assert!(err.contains(says), "{raw:?}: {err}");
    }
}

#[tokio::test]
async fn names_resolving_to_forbidden_addresses_are_refused() {
    let r = PolicyResolver;
    let name: Name = "169.254.169.254".parse().unwrap_or_else(|_| panic!("name"));
    assert!(r.resolve(name).await.is_err());
    let name: Name = "localhost".parse().unwrap_or_else(|_| panic!("name"));
    assert!(r.resolve(name).await.is_ok());
}
