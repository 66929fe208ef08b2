//! What `storage` refuses, whoever implements it (`storage.wit` states the
//! same): a table name is 1 to 64 characters of `a-z`, `0-9`, `_` and `-`; a
//! key at most 1 KiB; a value at most 1 MiB; a commit at most 100,000 ops; a
//! read at most 100,000 keys or rows. A refusal is the interface's `invalid`
//! error, with the text these checks give.
//!
//! Checked before a backend sees the request, so that every backend (redb,
//! PostgreSQL, a test's memory) refuses the same requests with the same words.

use std::ops::Bound;

/// Longest table name.
pub const MAX_TABLE_NAME: usize = 64;
/// Largest key (a page cursor carries one, so keys stay short).
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Most ops in one commit.
pub const MAX_OPS: usize = 100_000;
/// Most keys in one get-many, and most rows one scan returns.
pub const MAX_READ: usize = 100_000;

/// Why a request was refused (the text of `storage-error::invalid`).
pub type Refusal = String;

pub fn check_table(name: &str) -> Result<(), Refusal> {
    let ok = !name.is_empty()
        && name.len() <= MAX_TABLE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "table name '{}' must be 1 to {MAX_TABLE_NAME} characters of a-z, 0-9, '_' and '-'",
            name.chars().take(80).collect::<String>()
        ))
    }
}

pub fn check_key(key: &[u8]) -> Result<(), Refusal> {
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "key of {} bytes exceeds {MAX_KEY_BYTES}",
            key.len()
        ));
    }
    Ok(())
}

pub fn check_value(value: &[u8]) -> Result<(), Refusal> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "value of {} bytes exceeds {MAX_VALUE_BYTES}",
            value.len()
        ));
    }
    Ok(())
}

/// A bound's key, if it has one.
pub fn check_bound(bound: Bound<&[u8]>) -> Result<(), Refusal> {
    match bound {
        Bound::Unbounded => Ok(()),
        Bound::Included(key) | Bound::Excluded(key) => check_key(key),
    }
}

pub fn check_op_count(ops: usize) -> Result<(), Refusal> {
    if ops > MAX_OPS {
        return Err(format!(
            "{ops} ops exceed the limit of {MAX_OPS} per commit"
        ));
    }
    Ok(())
}

pub fn check_read_count(keys: usize) -> Result<(), Refusal> {
    if keys > MAX_READ {
        return Err(format!("{keys} keys exceed the limit of {MAX_READ}"));
    }
    Ok(())
}

/// Whether a range can hold any key (its start before its end). A scan of a
/// range that cannot is empty, not an error.
pub fn is_ordered(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s <= e,
        (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => s < e,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_just_past_themselves() {
        assert!(check_table("sandboxes_by-owner2").is_ok());
        for bad in ["", "Upper", "dot.ted", &"x".repeat(65)] {
            assert!(check_table(bad).is_err(), "{bad}");
        }
        assert!(check_key(&[0; MAX_KEY_BYTES]).is_ok());
        assert!(check_key(&[0; MAX_KEY_BYTES + 1]).is_err_and(|e| e.contains("1025")));
        assert!(check_value(&vec![0; MAX_VALUE_BYTES]).is_ok());
        assert!(check_value(&vec![0; MAX_VALUE_BYTES + 1]).is_err());
        assert!(check_op_count(MAX_OPS).is_ok() && check_op_count(MAX_OPS + 1).is_err());
        assert!(check_read_count(MAX_READ).is_ok() && check_read_count(MAX_READ + 1).is_err());
        assert!(check_bound(Bound::Excluded(&[0; 2000])).is_err());
    }

    #[test]
    fn a_range_is_ordered_when_its_start_comes_before_its_end() {
        let (a, b): (&[u8], &[u8]) = (b"a", b"b");
        assert!(is_ordered(Bound::Included(a), Bound::Included(a)));
        assert!(!is_ordered(Bound::Included(a), Bound::Excluded(a)));
        assert!(!is_ordered(Bound::Included(b), Bound::Included(a)));
        assert!(is_ordered(Bound::Unbounded, Bound::Excluded(a)));
    }
}
