//! Builds the default plugin (`../plugin`) for `wasm32-wasip2` and leaves it in
//! `OUT_DIR/sandboxd_plugin.wasm`, where `src/plugin/embedded.rs` embeds it, so
//! that one `cargo build` yields a `sandboxd` that runs on its own.
//!
//! The same bytes are also copied to a stable path,
//! `<cargo target dir>/sandboxd-plugin/sandboxd_plugin.wasm` (the target dir is
//! `CARGO_TARGET_DIR`, or the directory holding cargo's `CACHEDIR.TAG` above
//! `OUT_DIR`), where other hosts of the plugin (`embed/node/`) find it: they
//! run exactly what this binary embeds.
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
use std::path::{Path, PathBuf};
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

    // The published copy: rebuilt if someone removes it.
    let published = cargo_target_dir(&root, &out_dir).join("sandboxd-plugin/sandboxd_plugin.wasm");
    println!("cargo:rerun-if-changed={}", published.display());
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

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
    publish(&built, &published);
}

/// The outer build's target directory: `CARGO_TARGET_DIR` (relative to the
/// workspace), else the nearest ancestor of `OUT_DIR` that cargo marked with
/// `CACHEDIR.TAG`, else `OUT_DIR`'s `<target>/<profile>/build/<pkg>/out` root.
fn cargo_target_dir(root: &Path, out_dir: &Path) -> PathBuf {
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR") {
        return root.join(dir);
    }
    out_dir
        .ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .or_else(|| out_dir.ancestors().nth(4))
        .unwrap_or(out_dir)
        .to_path_buf()
}

/// Copy the component to `dest` through a temporary file and a rename, so a
/// reader never sees half of it.
fn publish(built: &Path, dest: &Path) {
    let dir = dest.parent().unwrap_or(dest);
    let tmp = dir.join(format!("sandboxd_plugin.wasm.{}.tmp", std::process::id()));
    let copied = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::copy(built, &tmp))
        .and_then(|_| std::fs::rename(&tmp, dest));
    if let Err(e) = copied {
        panic!(
            "could not copy {} to {}: {e}",
            built.display(),
            dest.display()
        );
    }
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
