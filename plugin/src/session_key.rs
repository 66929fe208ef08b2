//! Session API keys are stored only as their SHA-256: a leaked database never
//! yields a working key, and a lookup by key is a lookup by hash.

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of the key (the upstream service's format).
pub fn hash(session_api_key: &str) -> String {
    hex::encode(Sha256::digest(session_api_key.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_lower_case_hex_sha256() {
        assert_eq!(
            super::hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
