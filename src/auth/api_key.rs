//! API keys: config stores SHA-256 hashes, never keys. Lookup hashes the presented key once
//! and compares it with every configured hash in constant time (`subtle`), so neither the
//! position of a match nor a near miss shows in the timing.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ApiKey;

/// SHA-256 of a key, as `edgesign hash-key` prints it.
pub fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The configured key whose hash matches `presented`, with its index.
pub fn lookup<'a>(keys: &'a [ApiKey], presented: &str) -> Option<(usize, &'a ApiKey)> {
    let h = hash(presented);
    let mut found = None;
    for (i, k) in keys.iter().enumerate() {
        if bool::from(k.sha256.ct_eq(&h)) && found.is_none() {
            found = Some((i, k));
        }
    }
    found
}
