//! A short fuzzing run of every target in `fuzz/` (`scripts/fuzz.sh 10`: ten
//! seconds each, after an instrumented build into `fuzz/target`), so that the
//! README's `cargo test --workspace` also exercises the parsers of runtime API
//! answers, agent-server answers, webhook bodies, page ids and the configuration
//! with inputs nobody wrote. Longer runs: `scripts/fuzz.sh 600`.
//!
//! Needs cargo-fuzz (`cargo install cargo-fuzz --locked`; `.ci/run` installs it).

use std::process::Command;

use sandboxd_tests::plugins::workspace_root;

#[test]
fn every_fuzz_target_survives_ten_seconds_of_fuzzing() {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let installed = Command::new(&cargo)
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        installed,
        "cargo-fuzz is not installed, so the fuzz targets cannot run; install it with \
         `cargo install cargo-fuzz --locked` (CI's .ci/run does)"
    );

    // The nested cargo builds fuzz/ with its own flags into fuzz/target: what
    // this test's own build was given does not apply.
    let output = Command::new(root.join("scripts/fuzz.sh"))
        .arg("10")
        .current_dir(&root)
        .env("CARGO", &cargo)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/fuzz.sh: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Executions per target, for the test log.
    println!("{stdout}");
    assert!(
        output.status.success(),
        "scripts/fuzz.sh 10 failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let ran = stdout.lines().filter(|l| l.contains(" ok ")).count();
    assert!(ran >= 5, "expected the five fuzz targets to run:\n{stdout}");
}
