//! Page ids: opaque cursors whose cost does not grow with depth.
//!
//! A cursor is the position of the last item of a page (its order key, see
//! `schema::order_key`), so the next page is one range scan starting just after
//! it, as cheap on page 100 as on page 1. It carries no user: it is resolved inside
//! the caller's own key range, so a cursor from someone else's listing reveals and
//! reaches nothing. For old clients, a decimal page id is an offset (which costs
//! what an offset costs). Anything unreadable starts from the beginning.

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

pub fn parse(page_id: Option<&str>) -> PageStart {
    let Some(page_id) = page_id.map(str::trim).filter(|p| !p.is_empty()) else {
        return PageStart::First;
    };
    if let Some(hex) = page_id.strip_prefix(CURSOR_TAG) {
        return decode_hex(hex).map_or(PageStart::First, PageStart::After);
    }
    match page_id.parse::<i64>() {
        Ok(n) if n > 0 => PageStart::Offset(n as u64),
        _ => PageStart::First,
    }
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
    if hex.is_empty() || !hex.len().is_multiple_of(2) || hex.len() > 2048 {
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
        assert_eq!(parse(Some(&cursor(&key))), PageStart::After(key));
    }

    #[test]
    fn numbers_are_offsets_and_garbage_starts_over() {
        assert_eq!(parse(None), PageStart::First);
        assert_eq!(parse(Some("")), PageStart::First);
        assert_eq!(parse(Some("0")), PageStart::First);
        assert_eq!(parse(Some("250")), PageStart::Offset(250));
        assert_eq!(parse(Some("-5")), PageStart::First);
        assert_eq!(parse(Some("99999999999999999999999")), PageStart::First);
        assert_eq!(parse(Some("garbage")), PageStart::First);
        assert_eq!(parse(Some("czz")), PageStart::First);
        assert_eq!(parse(Some("cabc")), PageStart::First);
        assert_eq!(parse(Some("c")), PageStart::First);
        assert_eq!(parse(Some("c\u{e9}\u{e9}")), PageStart::First);
    }
}
