//! Which plugins this host can run, by the contract version they declare.
//!
//! The host implements `sandboxd:plugin@`[`CONTRACT_VERSION`]. A plugin built
//! against another version of the WIT package is accepted when the two are
//! semver-compatible: the same major version, and for 0.x (where every minor
//! bump may break) the same minor version. Linking is the second, exact check:
//! a plugin that imports something the host lacks, or lacks an export the host
//! calls, fails to link whatever it declares.

/// The version of `wit/` this host implements (`package sandboxd:plugin@…`).
pub const CONTRACT_VERSION: &str = "0.1.0";

fn parse(v: &str) -> Option<(u64, u64, u64)> {
    let core = v.split(['-', '+']).next()?;
    let mut parts = core.split('.');
    let version = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    parts.next().is_none().then_some(version)
}

/// Whether a plugin declaring `plugin` can run on a host implementing `host`.
pub fn compatible(host: &str, plugin: &str) -> bool {
    match (parse(host), parse(plugin)) {
        (Some((0, h_minor, _)), Some((0, p_minor, _))) => h_minor == p_minor,
        (Some((h_major, _, _)), Some((p_major, _, _))) => h_major == p_major && h_major > 0,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_version_matches_the_wit_package() {
        let world = include_str!("../../../wit/world.wit");
        assert!(world.contains(&format!("package sandboxd:plugin@{CONTRACT_VERSION};")));
    }

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
    }
}
