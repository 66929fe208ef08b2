//! The leak scanner: every identifier and secret the run has seen, who owns it,
//! and whether an answer shows one to a user who may not see it (the first
//! invariant). Ids are compared in a canonical form and page cursors decoded, so
//! an id cannot hide behind its other spelling or inside a cursor.

use std::collections::HashMap;

pub(super) fn dashed(hex: &str) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

pub(super) fn undashed(id: &str) -> String {
    id.replace('-', "").to_ascii_lowercase()
}

/// The form used to tell whether a request carried a token: case and dashes do
/// not matter (a conversation id is the same in both forms).
pub(super) fn canonical(text: &str) -> String {
    text.to_ascii_lowercase().replace('-', "")
}

/// `text` followed by the decoded bytes of every page cursor in it (`c` + an even
/// number of hex digits), so that ids hidden in cursors are seen too.
pub(super) fn with_decoded_cursors(text: &str) -> String {
    let mut out = text.to_owned();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'c' && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && bytes[end].is_ascii_hexdigit() {
                end += 1;
            }
            let len = (end - start) & !1;
            if len >= 18 {
                let decoded: Vec<u8> = (start..start + len)
                    .step_by(2)
                    .filter_map(|j| u8::from_str_radix(&text[j..j + 2], 16).ok())
                    .collect();
                out.push('\n');
                out.push_str(&String::from_utf8_lossy(&decoded));
            }
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// One identifier or secret, and the users it belongs to (a bit each).
pub(super) struct Token {
    pub(super) text: String,
    pub(super) canonical: String,
    pub(super) kind: &'static str,
    pub(super) owners: u8,
}

#[derive(Default)]
pub(super) struct Secrets {
    pub(super) tokens: Vec<Token>,
    pub(super) index: HashMap<String, usize>,
}

impl Secrets {
    pub(super) fn add(&mut self, text: &str, kind: &'static str, owner: usize) {
        if text.is_empty() {
            return;
        }
        match self.index.get(text) {
            Some(&i) => self.tokens[i].owners |= 1 << owner,
            None => {
                self.index.insert(text.to_owned(), self.tokens.len());
                self.tokens.push(Token {
                    text: text.to_owned(),
                    canonical: canonical(text),
                    kind,
                    owners: 1 << owner,
                });
            }
        }
    }

    pub(super) fn add_conversation(&mut self, id: &str, owner: usize) {
        self.add(&dashed(&undashed(id)), "conversation id", owner);
        self.add(&undashed(id), "conversation id (undashed)", owner);
    }

    /// The first token in `answer` that `viewer` may not see and `request` did not
    /// carry.
    pub(super) fn leak(&self, viewer: usize, request: &str, answer: &str) -> Option<&Token> {
        let scanned = with_decoded_cursors(answer);
        let request = canonical(&with_decoded_cursors(request));
        self.tokens.iter().find(|t| {
            t.owners & (1 << viewer) == 0
                && scanned.contains(&t.text)
                && !request.contains(&t.canonical)
        })
    }
}
