//! The command line, as an operator meets it. (Being an integration test of this
//! package also makes `cargo test` build the `sandboxd` binary that the
//! end-to-end suite in `tests/` drives.)

use std::process::Command;

fn sandboxd() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandboxd"));
    cmd.env_clear();
    cmd
}

#[test]
fn version_and_help_describe_the_binary() {
    let out = sandboxd()
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sandboxd "));
    let out = sandboxd()
        .args(["serve", "--help"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("--config") && help.contains("--plugin"),
        "{help}"
    );
}

#[test]
fn a_remote_runtime_without_its_key_is_refused_with_the_reason() {
    let out = sandboxd()
        .arg("serve")
        .env("SANDBOXD_RUNTIME_API_URL", "https://runtime.example")
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "runtime.api_key (SANDBOXD_RUNTIME_API_KEY): required with a remote runtime API"
        ),
        "{err}"
    );
}

#[test]
fn a_missing_config_file_is_named() {
    let out = sandboxd()
        .args(["serve", "--config", "/nonexistent/sandboxd.toml"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/sandboxd.toml"));
}
