//! `log`: the plugin's log lines, into `tracing` under the `plugin` target and
//! tagged with the plugin's version.
//!
//! A plugin's text is untrusted: control characters are replaced (no forged log
//! lines), each string is cut at [`MAX_TEXT`], and a call's lines past its
//! budget are dropped (see [`super::budget`]).

use super::HostState;
use crate::bindings::log::{Host, Level};

const MAX_TEXT: usize = 2048;

fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(MAX_TEXT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > MAX_TEXT {
        out.push('…');
    }
    out
}

impl Host for HostState {
    fn log(&mut self, level: Level, message: String, fields: Vec<(String, String)>) {
        if !self.meter.log_line() {
            return;
        }
        let message = clean(&message);
        let fields = fields
            .iter()
            .take(32)
            .map(|(k, v)| format!("{}={}", clean(k), clean(v)))
            .collect::<Vec<_>>()
            .join(" ");
        let version = &*self.plugin_version;
        match level {
            Level::Trace => {
                tracing::trace!(target: "plugin", plugin = version, %fields, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "plugin", plugin = version, %fields, "{message}")
            }
            Level::Info => tracing::info!(target: "plugin", plugin = version, %fields, "{message}"),
            Level::Warn => tracing::warn!(target: "plugin", plugin = version, %fields, "{message}"),
            Level::Error => {
                tracing::error!(target: "plugin", plugin = version, %fields, "{message}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn untrusted_text_cannot_forge_lines_or_flood() {
        assert_eq!(super::clean("a\nb\r\u{1b}c"), "a b  c");
        assert_eq!(
            super::clean(&"x".repeat(5000)).chars().count(),
            super::MAX_TEXT + 1
        );
    }
}
