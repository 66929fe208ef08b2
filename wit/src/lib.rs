//! The contract between the sandboxd host and its plugin, for the Rust sides
//! of it: the WIT files beside this crate are the contract itself; this crate
//! holds what they promise in numbers, so that the host, its storage backends,
//! the plugin's in-memory fakes and the fuzz targets all enforce one set.
//!
//! - [`VERSION`]: the version of the WIT package (`package sandboxd:plugin@…`).
//! - [`storage`]: the storage interface's limits and checks.

pub mod storage;

/// The version of the WIT package in this folder, read from `world.wit` at
/// build time.
pub const VERSION: &str = env!("SANDBOXD_CONTRACT_VERSION");

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_is_the_wit_package_s() {
        let world = include_str!("../world.wit");
        assert!(world.contains(&format!("package sandboxd:plugin@{};", super::VERSION)));
    }
}
