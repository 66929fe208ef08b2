//! Page ids: opaque cursors whose cost does not grow with depth.
//!
//! A cursor is the position of the last item of a page (its order key, see
//! `schema::order_key`), so the next page is one range scan starting just after
//! it, as cheap on page 100 as on page 1. It carries no user: it is resolved inside
//! the caller's own key range, so a cursor from someone else's listing reveals and
//! reaches nothing. For old clients, a decimal page id is an offset (which costs
//! what an offset costs). Anything else (garbage, a negative number, a cursor
//! longer than any key) starts from the first page, as the upstream service and
//! its clients expect: a page id is never a reason to fail a listing.

use crate::ports::{Bound, Entry, Scan, Store, StoreError};

/// One page of the entries of `table` under `prefix`, in key order, starting
/// where `page_id` says: at most `limit` entries, and the page id of the next
/// page if there is one. One range scan (of `limit` + 1 entries, to tell
/// whether another page follows; plus the skipped ones for an offset).
pub fn read_page(
    store: &dyn Store,
    table: &'static str,
    prefix: &[u8],
    page_id: Option<&str>,
    limit: u32,
) -> Result<(Vec<Entry>, Option<String>), StoreError> {
    let (start, skip) = match parse(page_id) {
        PageStart::First => (Bound::Included(prefix.to_vec()), 0),
        PageStart::After(key) => (Bound::Excluded([prefix, &key].concat()), 0),
        PageStart::Offset(n) => (Bound::Included(prefix.to_vec()), n),
    };
    let end = crate::schema::prefix_end(prefix).map_or(Bound::Unbounded, Bound::Excluded);
    let want = u64::from(limit) + 1;
    let rows = store.scan(Scan {
        table,
        start,
        end,
        reverse: false,
        limit: u32::try_from(skip.saturating_add(want)).unwrap_or(u32::MAX),
    })?;
    let mut rows: Vec<Entry> = rows
        .into_iter()
        .skip(usize::try_from(skip).unwrap_or(usize::MAX))
        .collect();
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = has_more
        .then(|| {
            rows.last()
                .map(|(k, _)| cursor(&k[prefix.len().min(k.len())..]))
        })
        .flatten();
    Ok((rows, next))
}

/// Where a page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageStart {
    First,
    /// Just after this order key.
    After(Vec<u8>),
    /// Skip this many items (legacy numeric page ids).
    Offset(u64),
}

const CURSOR_TAG: char = 'c';

/// The longest key a cursor may carry. Every key the service pages by is far
/// shorter (an order key is 8 bytes of time and an id of at most 128 bytes; a
/// delivery attempt's key is 44 bytes), and the scan that resumes after a cursor
/// prefixes it (an owner, a sandbox id or a callback id), so a longer one would
/// push that scan's bound past the host's 1024-byte key limit: a storage fault
/// (500) for what is only a bad page id.
pub const MAX_CURSOR_BYTES: usize = 256;

/// Where the page `page_id` starts: after a cursor sandboxd issued, at an
/// offset, or (for anything else) at the beginning.
pub fn parse(page_id: Option<&str>) -> PageStart {
    let Some(page_id) = page_id.map(str::trim).filter(|p| !p.is_empty()) else {
        return PageStart::First;
    };
    let parsed = match page_id.strip_prefix(CURSOR_TAG) {
        Some(digits) => decode_cursor(digits).map(PageStart::After),
        None => page_id.parse::<u64>().ok().map(|n| match n {
            0 => PageStart::First,
            n => PageStart::Offset(n),
        }),
    };
    parsed.unwrap_or(PageStart::First)
}

/// The page id of the page after the item with this order key.
pub fn cursor(order_key: &[u8]) -> String {
    format!("{CURSOR_TAG}{}", hex::encode(order_key))
}

fn decode_cursor(digits: &str) -> Option<Vec<u8>> {
    let key = hex::decode(digits).ok()?;
    (!key.is_empty() && key.len() <= MAX_CURSOR_BYTES).then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let key = vec![0, 1, 0xab, 0xff, b'x'];
        assert_eq!(parse(Some(&cursor(&key))), PageStart::After(key));
    }

    #[test]
    fn cursors_longer_than_any_key_are_refused() {
        // Found by the page_ids fuzz target: a cursor of 1024 bytes was taken,
        // and the scan after it, with the caller's prefix, failed in storage.
        let longest = vec![0xab; MAX_CURSOR_BYTES];
        assert_eq!(parse(Some(&cursor(&longest))), PageStart::After(longest));
        assert_eq!(
            parse(Some(&cursor(&[0xab; MAX_CURSOR_BYTES + 1]))),
            PageStart::First
        );
    }

    #[test]
    fn numbers_are_offsets_and_anything_else_starts_over() {
        assert_eq!(parse(None), PageStart::First);
        assert_eq!(parse(Some("")), PageStart::First);
        assert_eq!(parse(Some("0")), PageStart::First);
        assert_eq!(parse(Some("250")), PageStart::Offset(250));
        for bad in [
            "-5",
            "99999999999999999999999",
            "garbage",
            "czz",
            "cabc",
            "c",
            "1.5",
            "c\u{e9}\u{e9}",
        ] {
            assert_eq!(parse(Some(bad)), PageStart::First, "{bad}");
        }
    }
}
