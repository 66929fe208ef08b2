//! Reads the contract's version from `package sandboxd:plugin@X;` in
//! `world.wit`, so that the version every Rust side states is the one of the
//! WIT it was built with, by construction.

use std::env;
use std::path::PathBuf;

fn main() {
    let dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let world = dir.join("world.wit");
    println!("cargo:rerun-if-changed={}", world.display());
    let text = std::fs::read_to_string(&world)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", world.display()));
    let version = text
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
    println!("cargo:rustc-env=SANDBOXD_CONTRACT_VERSION={version}");
}
