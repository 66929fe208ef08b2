//! Which plugins this host can run, by the contract version they declare.
//!
//! The host implements `sandboxd:plugin@`[`CONTRACT_VERSION`]. A component
//! declares the version it was built against in the names of its imports and
//! exports (`sandboxd:plugin/http@0.2.0`), and again in `info`. It is accepted
//! when that version is semver-compatible with the host's: the same major
//! version, and for 0.x (where every minor bump may break) the same minor
//! version. Linking is the second, exact check: a plugin that imports something
//! the host lacks, or lacks an export the host calls, fails to link whatever it
//! declares.

use semver::Version;

/// The version of `wit/` this host implements (`package sandboxd:plugin@…`),
/// read from the WIT it was built with.
pub const CONTRACT_VERSION: &str = sandboxd_contract::VERSION;

/// Whether a plugin declaring `plugin` can run on a host implementing `host`:
/// both are semver versions (`MAJOR.MINOR.PATCH`, a pre-release or build suffix
/// allowed and not looked at) of the same major version, and below 1.0 of the
/// same minor version too. Anything that is not a version is compatible with
/// nothing.
pub fn compatible(host: &str, plugin: &str) -> bool {
    let (Ok(host), Ok(plugin)) = (Version::parse(host), Version::parse(plugin)) else {
        return false;
    };
    match (host.major, plugin.major) {
        (0, 0) => host.minor == plugin.minor,
        (h, p) => h == p,
    }
}

/// The prefix of every interface name of the contract.
const PACKAGE: &str = "sandboxd:plugin/";

/// The contract version a component's import and export names declare.
pub fn declared_version<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<String, String> {
    let mut versions: Vec<&str> = names
        .into_iter()
        .filter_map(|name| name.strip_prefix(PACKAGE)?.split_once('@').map(|(_, v)| v))
        .collect();
    versions.sort_unstable();
    versions.dedup();
    match versions.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => Err("it neither imports nor exports any interface of sandboxd:plugin".into()),
        many => Err(format!(
            "it mixes versions of sandboxd:plugin ({})",
            many.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semver_compatibility() {
        assert!(compatible("0.1.0", "0.1.0"));
        assert!(compatible("0.1.0", "0.1.7"));
        assert!(!compatible("0.1.0", "0.2.0"));
        assert!(!compatible("0.1.0", "1.1.0"));
        assert!(compatible("1.2.0", "1.0.3"));
        assert!(!compatible("1.2.0", "2.0.0"));
        assert!(!compatible("0.1.0", "zero"));
        assert!(!compatible("0.1.0", "0.1"));
        assert!(!compatible("0.1.0", "0.1.0.0"));
        assert!(!compatible("0.1.0", ""));
        // Pre-release and build suffixes are allowed and do not matter.
        assert!(compatible("0.1.0", "0.1.2-rc.1"));
        assert!(compatible("0.1.0-dev", "0.1.0+abc"));
        assert!(compatible("1.0.0", "1.4.0-alpha+build.7"));
        assert!(!compatible("0.1.0", "0.2.0-rc.1"));
        // 0.0.x is read like any 0.x: the same minor version (0).
        assert!(compatible("0.0.1", "0.0.2"));
    }

    #[test]
    fn the_declared_version_comes_from_the_interface_names() {
        let names = [
            "wasi:io/streams@0.2.6",
            "sandboxd:plugin/http@0.2.0",
            "sandboxd:plugin/info@0.2.0",
        ];
        assert_eq!(declared_version(names), Ok("0.2.0".into()));
        assert!(declared_version(["wasi:cli/run@0.2.0"]).is_err_and(|e| e.contains("neither")));
        assert!(
            declared_version(["sandboxd:plugin/http@0.1.0", "sandboxd:plugin/info@0.2.0"])
                .is_err_and(|e| e.contains("0.1.0, 0.2.0"))
        );
    }
}
