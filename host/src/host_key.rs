//! The host's own secret key, and the secrets derived from it.
//!
//! Secrets sandboxd hands out are never stored: each is derived, with HMAC, from
//! a key only the host holds (`host.key` in the data directory, 32 random bytes
//! created on first start, readable by its owner only) and from what it is for.
//! So the store, the plugin and the logs never see one, and a restart derives the
//! same ones again.
//!
//! - An event callback's secret (shown once, at creation). A delivery carries
//!   `X-Sandboxd-Signature: sha256=<hex>`, the HMAC-SHA256 of the exact body keyed
//!   by that secret (its UTF-8 bytes): a receiver checks it with
//!   `hmac(secret, body, sha256)`.
//! - The session API key of a sandbox of the embedded local runtime.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const KEY_FILE: &str = "host.key";

#[derive(Clone)]
pub struct HostKey {
    key: [u8; 32],
}

impl std::fmt::Debug for HostKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostKey(<redacted>)")
    }
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

impl HostKey {
    /// The key given as 64 hex digits (validated by the configuration).
    pub fn from_hex(hex_key: &str) -> std::io::Result<HostKey> {
        let bytes = hex::decode(hex_key.trim())
            .map_err(|_| std::io::Error::other("the host key is not hex"))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| std::io::Error::other("the host key is not 32 bytes"))?;
        Ok(HostKey { key })
    }

    /// The key of `data_dir`, created on first use.
    pub fn open(data_dir: &Path) -> std::io::Result<HostKey> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                return Ok(HostKey { key });
            }
            Ok(_) => {
                return Err(std::io::Error::other(format!(
                    "{} is not a 32-byte key",
                    path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path)?;
        file.write_all(&key)?;
        file.sync_all()?;
        Ok(HostKey { key })
    }

    /// The secret of callback `id`, as shown once at its creation.
    pub fn secret(&self, callback_id: &str) -> String {
        hex::encode(hmac(
            &self.key,
            format!("sandboxd callback secret:{callback_id}").as_bytes(),
        ))
    }

    /// The session API key of the local runtime's sandbox `runtime_id`.
    pub fn session_key(&self, runtime_id: &str) -> String {
        hex::encode(hmac(
            &self.key,
            format!("sandboxd local session key:{runtime_id}").as_bytes(),
        ))
    }

    /// The `X-Sandboxd-Signature` value of `body` for callback `id`.
    pub fn signature(&self, callback_id: &str, body: &[u8]) -> String {
        format!(
            "sha256={}",
            hex::encode(hmac(self.secret(callback_id).as_bytes(), body))
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_stable_per_data_dir_and_distinct_per_callback() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = HostKey::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let b = HostKey::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.secret("cb1"), b.secret("cb1"));
        assert_ne!(a.secret("cb1"), a.secret("cb2"));
        let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let c = HostKey::open(other.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(a.secret("cb1"), c.secret("cb1"));
        assert!(!format!("{a:?}").contains(&a.secret("cb1")));
    }

    #[test]
    fn signatures_are_hmac_sha256_of_the_body_keyed_by_the_secret() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = HostKey::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let body = br#"{"id":"e1"}"#;
        let expected = format!(
            "sha256={}",
            hex::encode(hmac(s.secret("cb").as_bytes(), body))
        );
        assert_eq!(s.signature("cb", body), expected);
        assert_ne!(s.signature("cb", b"other"), expected);
    }

    #[test]
    fn a_key_given_in_hex_is_the_key_of_the_file_holding_those_bytes() {
        // Replicas configured with `host_key` sign exactly as a lone sandboxd
        // whose `host.key` holds the same 32 bytes.
        let hex_key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let bytes = hex::decode(hex_key).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join(KEY_FILE), bytes).unwrap_or_else(|e| panic!("{e}"));
        let from_file = HostKey::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let given = HostKey::from_hex(hex_key).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(given.secret("cb"), from_file.secret("cb"));
        assert_eq!(given.signature("cb", b"x"), from_file.signature("cb", b"x"));
        for bad in ["zz", &hex_key[2..], &format!("{hex_key}00")] {
            assert!(HostKey::from_hex(bad).is_err(), "{bad}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        HostKey::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        assert_eq!(mode & 0o777, 0o600);
    }
}
