//! UUIDs as the agent server uses them: conversation and event ids.
//!
//! A conversation id is a UUID, stored here as a `u128` so the dashed (`1b4e…-…`) and
//! undashed (`1b4e…`) spellings of one id find the same conversation, as FastAPI's
//! `UUID` path parameter does.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// A fresh random (version 4) UUID.
pub(crate) fn new_uuid() -> u128 {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        fallback_fill(&mut bytes);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    u128::from_be_bytes(bytes)
}

/// The canonical spelling: lower case with dashes, e.g.
/// `1b4e28ba-2fa1-4d2b-883f-0016d3cca427`.
pub(crate) fn dashed(id: u128) -> String {
    let hex = hex(id);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The undashed spelling (Python's `uuid.hex`), used for conversation page ids.
pub(crate) fn hex(id: u128) -> String {
    format!("{id:032x}")
}

/// Parses 32 hex digits, or the 36-character form with dashes at the usual places,
/// in any case. Anything else is not a UUID (the route answers 422).
pub(crate) fn parse_uuid(text: &str) -> Option<u128> {
    let digits: String = match text.len() {
        32 => text.to_owned(),
        36 => {
            let bytes = text.as_bytes();
            if [8, 13, 18, 23].iter().any(|&at| bytes[at] != b'-') {
                return None;
            }
            text.chars().filter(|&c| c != '-').collect()
        }
        _ => return None,
    };
    if digits.len() != 32 || !digits.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(&digits, 16).ok()
}

/// Used only if the OS random source fails: ids must still differ from each other.
fn fallback_fill(bytes: &mut [u8]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for chunk in bytes.chunks_mut(8) {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let value = RandomState::new().hash_one((n, SystemTime::now()));
        chunk.copy_from_slice(&value.to_le_bytes()[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_spellings_parse_to_the_same_id_and_garbage_does_not() {
        let id = new_uuid();
        let text = dashed(id);
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "4", "version 4: {text}");
        assert_eq!(parse_uuid(&text), Some(id));
        assert_eq!(parse_uuid(&hex(id)), Some(id));
        assert_eq!(parse_uuid(&text.to_uppercase()), Some(id));
        assert_ne!(new_uuid(), id);
        for bad in [
            "",
            "search",
            "1b4e28ba2fa14d2b883f0016d3cca42",
            "1b4e28ba-2fa1-4d2b-883f-0016d3cca42g",
            "1b4e28ba-2fa14-d2b-883f-0016d3cca427",
            "+b4e28ba2fa14d2b883f0016d3cca427",
            "1b4e28ba-2fa1-4d2b-883f-0016d3cca4é",
        ] {
            assert_eq!(parse_uuid(bad), None, "{bad:?}");
        }
    }
}
