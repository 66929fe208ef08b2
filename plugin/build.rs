//! Stamps the plugin with the two versions it reports through `info`:
//!
//! - the contract version: read from `package sandboxd:plugin@X;` in
//!   `../wit/world.wit`, the WIT this build binds, so the declared version is
//!   the one the component was built against by construction;
//! - its own version: `SANDBOXD_PLUGIN_VERSION` when set (an operator stamping
//!   a build, `0.1.0-acme.3`), the crate version otherwise, with `+faults`
//!   appended when the deliberately faulty test build is asked for.

use std::env;
use std::path::PathBuf;

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let world = manifest_dir.join("../wit/world.wit");
    println!("cargo:rerun-if-changed={}", world.display());
    println!("cargo:rerun-if-env-changed=SANDBOXD_PLUGIN_VERSION");

    let text = std::fs::read_to_string(&world)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", world.display()));
    let contract = text
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("package sandboxd:plugin@")?
                .strip_suffix(';')
        })
        .unwrap_or_else(|| {
            panic!(
                "{} does not declare `package sandboxd:plugin@<version>;`",
                world.display()
            )
        });

    let mut version = env::var("SANDBOXD_PLUGIN_VERSION")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION"));
    if env::var_os("CARGO_FEATURE_FAULTS").is_some() {
        version.push_str("+faults");
    }
    println!("cargo:rustc-env=SANDBOXD_CONTRACT_VERSION={contract}");
    println!("cargo:rustc-env=SANDBOXD_PLUGIN_VERSION={version}");
}
