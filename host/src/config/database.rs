//! `database_url`: where the state lives when several replicas share it.
//!
//! Unset (the default), sandboxd keeps its state in one redb file under
//! `data_dir`: one process, nothing to run beside it. Set to a PostgreSQL
//! connection string (`postgres://user:password@host:5432/db`), the state is
//! in that database and any number of `sandboxd serve` processes on it are
//! interchangeable replicas.
//!
//! The string can carry a password, so it is a [`Secret`]: never printed, and
//! a message about a bad one does not quote it.
//!
//! `host_key`: the key callback secrets (and the local runtime's session keys)
//! are derived from. Without it, sandboxd makes one in `data_dir/host.key`.
//! Replicas must all derive the same secrets, and the key must not sit in the
//! shared database in clear (whoever reads the database would then forge
//! every callback signature), so with `database_url` it is required: 64 hex
//! digits, the same on every replica, given like the runtime API key (a
//! secret of the deployment: `openssl rand -hex 32`).

use std::str::FromStr;

use super::{Secret, name};

/// Connections each replica keeps to the database, per pool (reads, commits):
/// more than its API calls wait on at once in practice, few enough that a
/// handful of replicas stay far below PostgreSQL's default of 100.
pub const CONNECTIONS: usize = 16;

pub(super) fn validate(raw: Option<String>, err: &mut impl FnMut(String)) -> Option<Secret> {
    let url = raw.map(|u| u.trim().to_owned()).filter(|u| !u.is_empty())?;
    match tokio_postgres::Config::from_str(&url) {
        Ok(config) if !config.get_hosts().is_empty() => Some(Secret::new(url)),
        _ => {
            err(format!(
                "{}: not a PostgreSQL connection string with a host (postgres://user:password@host:port/database)",
                name("database_url")
            ));
            None
        }
    }
}

/// `host_key`: 32 bytes as 64 hex digits; required with `database_url`.
pub(super) fn validate_host_key(
    raw: Option<String>,
    shared: bool,
    err: &mut impl FnMut(String),
) -> Option<Secret> {
    let key = raw.map(|k| k.trim().to_owned()).filter(|k| !k.is_empty());
    match key {
        Some(k) if k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Some(Secret::new(k))
        }
        Some(_) => {
            err(format!(
                "{}: must be 64 hex digits (32 bytes), e.g. from `openssl rand -hex 32`",
                name("host_key")
            ));
            None
        }
        None if shared => {
            err(format!(
                "{}: required with database_url: every replica must derive the same callback \
                 secrets, from a key that is not in the shared database; set the same 64 hex \
                 digits on every replica (e.g. `openssl rand -hex 32`)",
                name("host_key")
            ));
            None
        }
        None => None,
    }
}
