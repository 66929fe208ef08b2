//! Builds the default plugin (`../plugin`) for `wasm32-wasip2` and leaves it in
//! `OUT_DIR/sandboxd_plugin.wasm`, where `src/plugin/embedded.rs` embeds it, so
//! that one `cargo build` yields a `sandboxd` that runs on its own.
//!
//! The nested cargo gets its own `--target-dir` (under `OUT_DIR`): sharing the
//! outer build's directory would deadlock on its lock. Flags meant for the host
//! build (`CARGO_ENCODED_RUSTFLAGS`, `CARGO_TARGET_DIR`, the clippy wrapper) are
//! removed from its environment.
//!
//! A fresh clone may lack the `wasm32-wasip2` standard library; where rustup
//! manages the toolchain, it is installed here, so `cargo run` and `cargo test`
//! work without a setup step.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("host/ lives in the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_dir = out_dir.join("plugin-target");

    for path in [
        "plugin/src",
        "plugin/Cargo.toml",
        "wit",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(path).display());
    }

    ensure_wasm_target();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args([
            "build",
            "--locked",
            "--package",
            "sandboxd-plugin",
            "--target",
            "wasm32-wasip2",
            "--profile",
            "plugin",
        ])
        .arg("--target-dir")
        .arg(&target_dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("could not run cargo to build the plugin");
    if !status.success() {
        panic!(
            "building the plugin for wasm32-wasip2 failed (see the output above). \
             If the target is missing, install it with: rustup target add wasm32-wasip2"
        );
    }

    let built = target_dir.join("wasm32-wasip2/plugin/sandboxd_plugin.wasm");
    let embedded = out_dir.join("sandboxd_plugin.wasm");
    std::fs::copy(&built, &embedded).unwrap_or_else(|e| {
        panic!(
            "could not copy {} to {}: {e}",
            built.display(),
            embedded.display()
        )
    });
}

/// Install the `wasm32-wasip2` target through rustup if the toolchain lacks it.
fn ensure_wasm_target() {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    let Ok(installed) = installed else {
        // No rustup: the toolchain is managed otherwise; the build below will say
        // what is missing.
        return;
    };
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == "wasm32-wasip2")
    {
        return;
    }
    println!("cargo:warning=installing the wasm32-wasip2 target (rustup target add wasm32-wasip2)");
    let status = Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .status();
    if !status.is_ok_and(|s| s.success()) {
        panic!(
            "the wasm32-wasip2 target is missing and could not be installed; run: rustup target add wasm32-wasip2"
        );
    }
}
