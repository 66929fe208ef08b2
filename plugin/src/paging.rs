//! Page ids: opaque cursors whose cost does not grow with depth.
//!
//! A cursor is the position of the last item of a page (its order key, see
//! `schema::order_key`), so the next page is one range scan starting just after
//! it, as cheap on page 100 as on page 1. It carries no user: it is resolved inside
//! the caller's own key range, so a cursor from someone else's listing reveals and
//! reaches nothing. For old clients, a decimal page id is an offset (which costs
//! what an offset costs). Anything else is refused: silently starting over would
//! make a client that follows a mangled page id loop forever.

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

/// Where the page `page_id` starts; an error, for the caller, when it is neither
/// a cursor sandboxd issued nor a page offset.
pub fn parse(page_id: Option<&str>) -> Result<PageStart, String> {
    let Some(page_id) = page_id.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(PageStart::First);
    };
    let parsed = match page_id.strip_prefix(CURSOR_TAG) {
        Some(hex) => decode_hex(hex).map(PageStart::After),
        None => page_id.parse::<u64>().ok().map(|n| match n {
            0 => PageStart::First,
            n => PageStart::Offset(n),
        }),
    };
    parsed.ok_or_else(|| {
        let shown: String = page_id.chars().take(64).collect();
        format!(
            "page_id '{shown}' is neither a next_page_id this service returned nor a page offset"
        )
    })
}

/// The page id of the page after the item with this order key.
pub fn cursor(order_key: &[u8]) -> String {
    let mut out = String::with_capacity(1 + 2 * order_key.len());
    out.push(CURSOR_TAG);
    for byte in order_key {
        out.push(char::from_digit(u32::from(byte >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(byte & 0xf), 16).unwrap_or('0'));
    }
    out
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.is_empty() || !hex.len().is_multiple_of(2) || hex.len() > 2 * MAX_CURSOR_BYTES {
        return None;
    }
    hex.as_bytes()
        .chunks(2)
        .map(|pair| {
            let hi = char::from(pair[0]).to_digit(16)?;
            let lo = char::from(pair[1]).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let key = vec![0, 1, 0xab, 0xff, b'x'];
        assert_eq!(parse(Some(&cursor(&key))), Ok(PageStart::After(key)));
    }

    #[test]
    fn cursors_longer_than_any_key_are_refused() {
        // Found by the page_ids fuzz target: a cursor of 1024 bytes was taken,
        // and the scan after it, with the caller's prefix, failed in storage.
        let longest = vec![0xab; MAX_CURSOR_BYTES];
        assert_eq!(
            parse(Some(&cursor(&longest))),
            Ok(PageStart::After(longest))
        );
        let err = parse(Some(&cursor(&[0xab; MAX_CURSOR_BYTES + 1])));
        assert!(err.is_err_and(|e| e.contains("page_id")));
    }

    #[test]
    fn numbers_are_offsets_and_anything_else_is_refused() {
        assert_eq!(parse(None), Ok(PageStart::First));
        assert_eq!(parse(Some("")), Ok(PageStart::First));
        assert_eq!(parse(Some("0")), Ok(PageStart::First));
        assert_eq!(parse(Some("250")), Ok(PageStart::Offset(250)));
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
            let err = parse(Some(bad)).err().unwrap_or_default();
            assert!(err.contains("page_id"), "{bad}: {err}");
        }
    }
}
