use std::collections::HashMap;

use super::*;

const MINIMAL: &str = r#"
[runtime]
api_url = "https://runtime.example/"
api_key = "rt-key"
"#;

fn load(toml_text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut raw: FileConfig =
        toml::from_str(toml_text).map_err(|e| ConfigError(vec![e.to_string()]))?;
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    raw.apply_env(|k| env.get(k).cloned())
        .map_err(ConfigError)?;
    validate(raw)
}

fn errors(toml_text: &str, env: &[(&str, &str)]) -> String {
    match load(toml_text, env) {
        Ok(_) => panic!("expected an invalid configuration"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_follow_upstream() {
    let c = load(MINIMAL, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.listen.to_string(), "127.0.0.1:3000");
    assert_eq!(
        c.runtime.api_url.as_deref(),
        Some("https://runtime.example")
    );
    assert_eq!(c.runtime.resource_factor, 1);
    assert_eq!(c.runtime.runtime_class, RuntimeClass::Gvisor);
    assert_eq!(c.runtime.start_sandbox_timeout_secs, 120);
    assert_eq!(c.runtime.max_num_sandboxes, 10);
    assert_eq!(c.runtime.polling_interval_secs, 15);
    assert_eq!(c.auth.mode, AuthMode::None);
    assert_eq!(c.specs.len(), 1);
    assert_eq!(
        c.specs[0].id,
        "ghcr.io/openhands/agent-server:latest-python"
    );
    assert_eq!(c.specs[0].working_dir, "/workspace/project");
    assert_eq!(c.store_cache_bytes, 64 << 20);
}

#[test]
fn the_store_cache_is_bounded_and_settable() {
    let c = load(MINIMAL, &[("SANDBOXD_STORE_CACHE_MB", "16")]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.store_cache_bytes, 16 << 20);
    let e = errors(&format!("store_cache_mb = 0\n{MINIMAL}"), &[]);
    assert!(
        e.contains("store_cache_mb (SANDBOXD_STORE_CACHE_MB)"),
        "{e}"
    );
}

#[test]
fn the_documented_example_loads() {
    let text = r#"
listen = "127.0.0.1:3000"
data_dir = ".sandboxd"
web_url = "https://app.example"
[runtime]
api_url = "https://runtime.example"
api_key = "secret-runtime-key"
resource_factor = 2
runtime_class = "sysbox"
start_sandbox_timeout = 60
max_num_sandboxes = 3
polling_interval = 5
[[specs]]
id = "ghcr.io/openhands/agent-server:latest-python"
command = ["/usr/local/bin/openhands-agent-server", "--port", "60000"]
working_dir = "/workspace/project"
initial_env = { LOG_JSON = "true", B = "2", A = "1" }
[auth]
mode = "api-keys"
[[auth.keys]]
key = "alice-key-0123456789"
user_id = "alice"
[[auth.keys]]
key = "admin-key-0123456789"
admin = true
"#;
    let c = load(text, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.web_url.as_deref(), Some("https://app.example"));
    assert_eq!(c.runtime.resource_factor, 2);
    assert_eq!(c.runtime.runtime_class, RuntimeClass::Sysbox);
    assert_eq!(c.auth.mode, AuthMode::ApiKeys);
    assert_eq!(c.auth.keys.len(), 2);
    assert_eq!(c.auth.keys[1].user_id, None);
    let env: Vec<&str> = c.specs[0]
        .initial_env
        .iter()
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(
        env,
        vec!["LOG_JSON", "B", "A"],
        "initial_env keeps the written order"
    );
}

#[test]
fn environment_overrides_the_file() {
    let c = load(
        MINIMAL,
        &[
            ("SANDBOXD_LISTEN", "127.0.0.1:4000"),
            ("SANDBOXD_RESOURCE_FACTOR", "4"),
            ("SANDBOXD_RUNTIME_CLASS", "sysbox"),
            ("SANDBOXD_MAX_NUM_SANDBOXES", "2"),
            ("SANDBOXD_RUNTIME_API_URL", "http://127.0.0.1:9999"),
            ("SANDBOXD_WEB_URL", "https://me.example/"),
            ("SANDBOXD_START_SANDBOX_TIMEOUT", "30"),
            ("SANDBOXD_POLLING_INTERVAL", "2"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.listen.port(), 4000);
    assert_eq!(c.runtime.resource_factor, 4);
    assert_eq!(c.runtime.runtime_class, RuntimeClass::Sysbox);
    assert_eq!(c.runtime.max_num_sandboxes, 2);
    assert_eq!(c.runtime.api_url.as_deref(), Some("http://127.0.0.1:9999"));
    assert_eq!(c.web_url.as_deref(), Some("https://me.example"));
    assert_eq!(c.runtime.start_sandbox_timeout_secs, 30);
    assert_eq!(c.runtime.polling_interval_secs, 2);
}

#[test]
fn invalid_values_name_the_key_and_the_allowed_values() {
    let e = errors(MINIMAL, &[("SANDBOXD_RESOURCE_FACTOR", "3")]);
    assert!(
        e.contains("runtime.resource_factor (SANDBOXD_RESOURCE_FACTOR)")
            && e.contains("1, 2, 4 or 8"),
        "{e}"
    );
    let e = errors(&format!("{MINIMAL}runtime_class = \"kata\"\n"), &[]);
    assert!(
        e.contains("runtime.runtime_class") && e.contains("gvisor or sysbox"),
        "{e}"
    );
    let e = errors(MINIMAL, &[("SANDBOXD_RUNTIME_API_URL", "not a url")]);
    assert!(
        e.contains("runtime.api_url") && e.contains("not a valid URL"),
        "{e}"
    );
    let e = errors(MINIMAL, &[("SANDBOXD_WEB_URL", "ftp://x")]);
    assert!(
        e.contains("web_url (SANDBOXD_WEB_URL)") && e.contains("http or https"),
        "{e}"
    );
    let e = errors(MINIMAL, &[("SANDBOXD_AUTH_MODE", "magic")]);
    assert!(e.contains("none, api-keys or trusted-header"), "{e}");
    let e = errors(MINIMAL, &[("SANDBOXD_MAX_NUM_SANDBOXES", "0")]);
    assert!(e.contains("runtime.max_num_sandboxes"), "{e}");
    let e = errors(MINIMAL, &[("SANDBOXD_MAX_NUM_SANDBOXES", "ten")]);
    assert!(
        e.contains("SANDBOXD_MAX_NUM_SANDBOXES: expected a whole number"),
        "{e}"
    );
}

#[test]
fn all_problems_are_reported_at_once() {
    let e = errors(
        MINIMAL,
        &[
            ("SANDBOXD_RESOURCE_FACTOR", "3"),
            ("SANDBOXD_RUNTIME_CLASS", "x"),
            ("SANDBOXD_LISTEN", "nowhere"),
        ],
    );
    assert_eq!(e.matches("\n  - ").count(), 3, "{e}");
}

#[test]
fn without_a_runtime_api_the_embedded_local_runtime_is_used() {
    let c = load("", &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.runtime.api_url, None);
    assert_eq!(
        c.specs[0].id, "local/python-http",
        "a default spec that needs only python3"
    );
    assert_eq!(c.local_runtime.isolation, Isolation::None);
    assert!(!c.local_runtime.keep_on_exit);
    let e = errors("[runtime]\napi_url = \"http://rt.example\"\n", &[]);
    assert!(
        e.contains("runtime.api_key (SANDBOXD_RUNTIME_API_KEY): required"),
        "{e}"
    );
    let e = errors("[local_runtime]\nisolation = \"chroot\"\n", &[]);
    assert!(
        e.contains("local_runtime.isolation") && e.contains("none or bwrap"),
        "{e}"
    );
    let e = errors("[[specs]]\nid = \"x\"\nprobe = \"udp\"\n", &[]);
    assert!(
        e.contains("specs[0].probe") && e.contains("http or tcp"),
        "{e}"
    );
}

#[test]
fn unknown_keys_are_refused() {
    let e = errors(&format!("{MINIMAL}resource_factr = 2\n"), &[]);
    assert!(e.contains("resource_factr"), "{e}");
}

#[test]
fn unauthenticated_public_listen_is_refused_unless_allowed() {
    let e = errors(MINIMAL, &[("SANDBOXD_LISTEN", "0.0.0.0:3000")]);
    assert!(
        e.contains("refusing to serve 0.0.0.0:3000 without authentication"),
        "{e}"
    );
    assert!(
        load(
            MINIMAL,
            &[
                ("SANDBOXD_LISTEN", "0.0.0.0:3000"),
                ("SANDBOXD_ALLOW_UNAUTHENTICATED_PUBLIC", "true")
            ]
        )
        .is_ok()
    );
    assert!(
        load(
            MINIMAL,
            &[
                ("SANDBOXD_LISTEN", "0.0.0.0:3000"),
                ("SANDBOXD_AUTH_MODE", "trusted-header")
            ]
        )
        .is_ok()
    );
    assert!(load(MINIMAL, &[("SANDBOXD_LISTEN", "[::1]:3000")]).is_ok());
}

#[test]
fn api_keys_must_be_complete() {
    let e = errors(&format!("{MINIMAL}[auth]\nmode = \"api-keys\"\n"), &[]);
    assert!(e.contains("at least one"), "{e}");
    let e = errors(
        &format!("{MINIMAL}[auth]\nmode = \"api-keys\"\n[[auth.keys]]\nkey = \"short\"\n"),
        &[],
    );
    assert!(
        e.contains("too short") && e.contains("set user_id, or admin = true"),
        "{e}"
    );
}

#[test]
fn sync_mode_decides_whether_to_poll() {
    let c = load(MINIMAL, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        c.sync.plan.poll,
        "no web_url: agent servers cannot call back"
    );
    let c = load(MINIMAL, &[("SANDBOXD_WEB_URL", "http://localhost:3000")])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        c.sync.plan.poll,
        "a localhost web_url is not reachable from a sandbox"
    );
    let c = load(MINIMAL, &[("SANDBOXD_WEB_URL", "https://app.example")])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.sync.plan.poll);
    let c = load(
        MINIMAL,
        &[
            ("SANDBOXD_WEB_URL", "https://app.example"),
            ("SANDBOXD_SYNC_MODE", "poll"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.sync.plan.poll);
    let c = load(MINIMAL, &[("SANDBOXD_SYNC_MODE", "webhook")]).unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.sync.plan.poll);
    let e = errors(MINIMAL, &[("SANDBOXD_SYNC_MODE", "sometimes")]);
    assert!(
        e.contains("sync.mode (SANDBOXD_SYNC_MODE)") && e.contains("auto, poll or webhook"),
        "{e}"
    );
    assert_eq!(c.sync.concurrency, 32);
}

#[test]
fn the_runtime_key_never_appears_in_debug_output() {
    let c = load(MINIMAL, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(!format!("{c:?}").contains("rt-key"));
}

#[test]
fn the_plugin_egress_and_budgets_are_configurable_and_checked() {
    let c = load(MINIMAL, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.plugin.allowed_hosts,
        vec![
            crate::egress::Rule::Runtime,
            crate::egress::Rule::Agents,
            crate::egress::Rule::Callbacks
        ]
    );
    assert_eq!(c.plugin.call_http_requests, 1_000);
    assert!(c.plugin.watch);

    let text = format!(
        "{MINIMAL}[plugin]\nallowed_hosts = [\"@runtime\", \"*.agents.corp\"]\ncall_http_requests = 5\ncall_write_mb = 2\nwatch = false\n"
    );
    let c = load(&text, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.plugin.allowed_hosts.len(), 2);
    assert_eq!(c.plugin.call_http_requests, 5);
    assert_eq!(c.plugin.call_write_bytes, 2 << 20);
    assert!(!c.plugin.watch);

    let c = load(
        MINIMAL,
        &[(
            "SANDBOXD_PLUGIN_ALLOWED_HOSTS",
            "@runtime, api.example:443,",
        )],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.plugin.allowed_hosts.len(), 2);

    let text = format!(
        "{MINIMAL}[plugin]\nallowed_hosts = [\"@everyone\", \"a/b\"]\npoll_http_requests = 0\n"
    );
    let e = errors(&text, &[]);
    assert!(
        e.contains("plugin.allowed_hosts (SANDBOXD_PLUGIN_ALLOWED_HOSTS): '@everyone'"),
        "{e}"
    );
    assert!(e.contains("'a/b' is not a host pattern"), "{e}");
    assert!(
        e.contains("plugin.poll_http_requests: 0 is out of range"),
        "{e}"
    );
}

#[test]
fn urls_are_kept_as_parsed_and_timeouts_are_at_least_a_millisecond() {
    // Found by the config fuzz target: `http:host` and URLs with a tab inside
    // were accepted and then used as written, and `call_timeout = 1e-10` became
    // a zero timeout.
    let c = load(
        "web_url = \"http:app.example/\"\n",
        &[
            ("SANDBOXD_RUNTIME_API_URL", "https://run\ttime.example/api/"),
            ("SANDBOXD_RUNTIME_API_KEY", "k"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.web_url.as_deref(), Some("http://app.example"));
    assert_eq!(
        c.runtime.api_url.as_deref(),
        Some("https://runtime.example/api")
    );
    let e = errors("[plugin]\ncall_timeout = 1e-10\n", &[]);
    assert!(
        e.contains("plugin.call_timeout: 0.0000000001 is out of range"),
        "{e}"
    );
    let c = load("[plugin]\ncall_timeout = 0.001\n", &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.plugin.call_timeout, Duration::from_millis(1));
}

#[test]
fn enum_values_are_read_by_serde_around_whitespace() {
    let c = load(
        MINIMAL,
        &[
            ("SANDBOXD_RUNTIME_CLASS", " sysbox "),
            ("SANDBOXD_ORPHANS", "adopt\n"),
            ("SANDBOXD_AUTH_MODE", " trusted-header"),
            ("SANDBOXD_SYNC_MODE", "webhook\t"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.runtime.runtime_class, RuntimeClass::Sysbox);
    assert_eq!(c.runtime.orphans, Orphans::Adopt);
    assert_eq!(c.auth.mode, AuthMode::TrustedHeader);
    assert_eq!(c.sync.mode, SyncMode::Webhook);
    let c = load(
        "[local_runtime]\nisolation = \" bwrap\"\n[[specs]]\nid = \"a\"\nprobe = \"tcp \"\n[[specs]]\nid = \"b\"\nprobe = \"http\"\nprobe_path = \"/up\"\n",
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.local_runtime.isolation, Isolation::Bwrap);
    assert_eq!(c.specs[0].probe, Probe::Tcp);
    assert_eq!(c.specs[1].probe, Probe::Http("/up".into()));
}

#[test]
fn a_value_not_of_an_enum_is_named_with_the_values_serde_allows() {
    let e = errors(
        MINIMAL,
        &[
            ("SANDBOXD_AUTH_MODE", " x "),
            ("SANDBOXD_ORPHANS", "Stop"),
            ("SANDBOXD_SYNC_MODE", ""),
        ],
    );
    for line in [
        "auth.mode (SANDBOXD_AUTH_MODE): 'x' is not allowed; use none, api-keys or trusted-header",
        "runtime.orphans (SANDBOXD_ORPHANS): 'Stop' is not allowed; use stop, adopt or keep",
        "sync.mode (SANDBOXD_SYNC_MODE): '' is not allowed; use auto, poll or webhook",
    ] {
        assert!(e.contains(line), "{line}\nnot in\n{e}");
    }
    // A probe that is not one is reported alone: its path is not checked.
    let e = errors(
        "[[specs]]\nid = \"x\"\nprobe = \"udp\"\nprobe_path = \"up\"\n",
        &[],
    );
    assert_eq!(e.matches("\n  - ").count(), 1, "{e}");
    assert!(
        e.contains("specs[0].probe: 'udp' is not allowed; use http or tcp"),
        "{e}"
    );
    assert_eq!(one_of(&["a"]), "a");
    assert_eq!(one_of(&["a", "b"]), "a or b");
    assert_eq!(one_of(&["a", "b", "c"]), "a, b or c");
}

const HOST_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

#[test]
fn a_database_url_selects_postgres_and_requires_a_host_key() {
    let url = "postgres://sandboxd:pw@db.internal:5432/sandboxd";
    let c = load(
        &format!("database_url = \"{url}\"\nhost_key = \"{HOST_KEY}\"\n{MINIMAL}"),
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.database_url.as_ref().map(|s| s.expose()), Some(url));
    assert_eq!(c.host_key.as_ref().map(|s| s.expose()), Some(HOST_KEY));
    // Neither is ever printed.
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("pw@") && !shown.contains(HOST_KEY),
        "{shown}"
    );

    // Both from the environment; blank means unset.
    let c = load(
        MINIMAL,
        &[
            ("SANDBOXD_DATABASE_URL", url),
            ("SANDBOXD_HOST_KEY", HOST_KEY),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(c.database_url.is_some() && c.host_key.is_some());
    let c = load(MINIMAL, &[("SANDBOXD_DATABASE_URL", " ")]).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.database_url.is_none());

    // Without a host key, replicas could not agree on callback secrets.
    let e = errors(&format!("database_url = \"{url}\"\n{MINIMAL}"), &[]);
    assert!(
        e.contains("host_key (SANDBOXD_HOST_KEY)") && e.contains("required with database_url"),
        "{e}"
    );
}

#[test]
fn a_bad_database_url_or_host_key_is_named_without_quoting_it() {
    let e = errors(
        &format!("database_url = \"mysql://root:hunter2@x\"\nhost_key = \"{HOST_KEY}\"\n{MINIMAL}"),
        &[],
    );
    assert!(e.contains("database_url (SANDBOXD_DATABASE_URL)"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    for bad in ["abc", &HOST_KEY[1..], &format!("{}zz", &HOST_KEY[2..])] {
        let e = errors(&format!("host_key = \"{bad}\"\n{MINIMAL}"), &[]);
        assert!(
            e.contains("host_key (SANDBOXD_HOST_KEY): must be 64 hex digits"),
            "{e}"
        );
        assert!(!e.contains(bad), "{e}");
    }
}

#[test]
fn the_local_runtime_is_refused_with_a_shared_database() {
    let e = errors(
        &format!(
            "database_url = \"postgres://u@db/sandboxd\"\nhost_key = \"{HOST_KEY}\"\n[runtime]\nmax_num_sandboxes = 3\n"
        ),
        &[],
    );
    assert!(e.contains("database_url (SANDBOXD_DATABASE_URL)"), "{e}");
    assert!(e.contains("cannot be shared by replicas"), "{e}");
}

#[test]
fn a_specs_warm_pool_is_read_checked_and_given_to_the_plugin() {
    let text = format!(
        "{MINIMAL}[[specs]]\nid = \"a\"\nwarm = 2\n[[specs]]\nid = \"b\"\n[[specs]]\nid = \"c\"\nwarm = 0\n"
    );
    let c = load(&text, &[]).unwrap_or_else(|e| panic!("{e}"));
    let sizes: Vec<u32> = c.specs.iter().map(|s| s.warm).collect();
    assert_eq!(sizes, vec![2, 0, 0]);
    let settings = crate::imports::plugin_settings(&c, "http://rt", "now");
    assert_eq!(settings.warm_pools, vec![("a".to_owned(), 2)]);

    let too_many = errors(&format!("{MINIMAL}[[specs]]\nid = \"a\"\nwarm = 65\n"), &[]);
    assert!(
        too_many.contains("specs[0].warm: 65 is out of range; use 0 to 64 sandboxes"),
        "{too_many}"
    );
    let negative = errors(&format!("{MINIMAL}[[specs]]\nid = \"a\"\nwarm = -1\n"), &[]);
    assert!(negative.contains("specs[0].warm"), "{negative}");
}
