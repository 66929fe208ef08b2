//! Stamps the plugin with its own version, which it reports through `info`
//! beside the contract's (`sandboxd_contract::VERSION`, read from the WIT this
//! build binds): `SANDBOXD_PLUGIN_VERSION` when set (an operator stamping a
//! build, `0.1.0-acme.3`), the crate version otherwise, with `+faults`
//! appended when the deliberately faulty test build is asked for.

use std::env;

fn main() {
    println!("cargo:rerun-if-env-changed=SANDBOXD_PLUGIN_VERSION");

    let mut version = env::var("SANDBOXD_PLUGIN_VERSION")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION"));
    if env::var_os("CARGO_FEATURE_FAULTS").is_some() {
        version.push_str("+faults");
    }
    println!("cargo:rustc-env=SANDBOXD_PLUGIN_VERSION={version}");
}
