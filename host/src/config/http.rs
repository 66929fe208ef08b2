//! `[http]`: the plugin's outbound requests: their deadlines and the largest
//! answer handed to it.

use std::time::Duration;

use serde::Deserialize;

use super::{seconds, whole};

/// Deadline of one outbound request unless the plugin asks for less. The
/// runtime API's own upstream timeout for a start is tens of seconds.
const TIMEOUT: Duration = Duration::from_secs(30);
/// A host that does not accept a connection within this is down, or filtered.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest response body handed to the plugin.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// `[http]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    /// Seconds.
    pub timeout: Option<f64>,
    /// Seconds.
    pub connect_timeout: Option<f64>,
    pub max_response_mb: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// 1 MiB to 1 GiB.
    pub max_response_bytes: usize,
}

pub(super) fn validate(raw: HttpFile, err: &mut impl FnMut(String)) -> HttpConfig {
    HttpConfig {
        timeout: seconds("http.timeout", raw.timeout, TIMEOUT, err),
        connect_timeout: seconds(
            "http.connect_timeout",
            raw.connect_timeout,
            CONNECT_TIMEOUT,
            err,
        ),
        max_response_bytes: whole(
            "http.max_response_mb",
            raw.max_response_mb,
            1..=1024,
            "",
            err,
        )
        .map_or(MAX_RESPONSE_BYTES, |mb| (mb as usize) << 20),
    }
}
