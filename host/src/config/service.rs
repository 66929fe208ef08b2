//! The top-level keys: where sandboxd listens (`listen`), where it keeps its
//! data (`data_dir`), its public URL (`web_url`) and the store's page cache
//! (`store_cache_mb`). As written they are fields of [`super::FileConfig`];
//! validated, of [`super::Config`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use super::{name, parse_base_url, whole};

/// Loopback only: with `auth.mode = "none"` anyone who can connect acts as the
/// single user, so the default must not be reachable from the network.
const LISTEN: &str = "127.0.0.1:3000";

/// Relative to the working directory, like a project-local cache.
const DATA_DIR: &str = ".sandboxd";

/// The store's page cache. redb's own default (1 GiB) would let the resident
/// size grow with the data for a long time; 64 MiB holds the hot part (indexes,
/// recent events) of a store of millions of events.
const STORE_CACHE_MB: usize = 64;

/// The top-level values, validated.
pub(super) struct Service {
    pub listen: SocketAddr,
    /// Not empty.
    pub data_dir: PathBuf,
    pub store_cache_bytes: usize,
    /// Without a trailing slash.
    pub web_url: Option<String>,
}

pub(super) fn validate(
    listen: Option<&str>,
    data_dir: Option<PathBuf>,
    web_url: Option<&str>,
    store_cache_mb: Option<i64>,
    err: &mut impl FnMut(String),
) -> Service {
    let listen = parse_listen(listen.unwrap_or(LISTEN)).unwrap_or_else(|e| {
        err(format!("{}: {e}", name("listen")));
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
    });
    let data_dir = data_dir.unwrap_or_else(|| DATA_DIR.into());
    if data_dir.as_os_str().is_empty() {
        err(format!("{}: must not be empty", name("data_dir")));
    }
    let store_cache_bytes = whole("store_cache_mb", store_cache_mb, 1..=65536, " (MiB)", err)
        .map_or(STORE_CACHE_MB << 20, |mb| (mb as usize) << 20);
    let web_url = web_url.and_then(|u| {
        parse_base_url(u)
            .map_err(|e| err(format!("{}: {e}", name("web_url"))))
            .ok()
    });
    Service {
        listen,
        data_dir,
        store_cache_bytes,
        web_url,
    }
}

/// `IP:PORT`, or `localhost:PORT`.
fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    let raw = raw.trim();
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Some(port) = raw.strip_prefix("localhost:")
        && let Ok(port) = port.parse::<u16>()
    {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    Err(format!(
        "'{raw}' is not an address; use IP:PORT such as 127.0.0.1:3000"
    ))
}
