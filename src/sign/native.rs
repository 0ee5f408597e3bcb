//! edgesign's own signed links for `local` origins (the `secure_link` idea, done with a MAC):
//! `<public_url>/_origin/<origin>/<key>?<extra>&expires=<unix>&key_id=<id>&signature=<b64url>`.
//!
//! The MAC is HMAC-SHA256 over a versioned, newline-separated string that binds the origin
//! name, the raw key path, the expiry, the key id and the canonical extra parameters, so a
//! link cannot be moved to another origin, object, lifetime or key.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Error;
use super::encoding::{b64url_decode, b64url_encode, canonical_component};
use super::url::{query_segments, split_pair};
use crate::secret::Secret;

/// Where local origins live on the proxy.
pub const PATH_PREFIX: &str = "/_origin/";
/// Query parameters that carry the native authentication.
pub const AUTH_PARAMS: [&str; 3] = ["expires", "key_id", "signature"];
const VERSION: &str = "EDGESIGN1-HMAC-SHA256";

/// One HMAC key with its id.
#[derive(Debug)]
pub struct NativeKey {
    /// `key_id` in URLs.
    pub key_id: String,
    /// The HMAC key.
    pub secret: Secret,
}

/// The string the MAC covers.
pub fn string_to_sign(
    origin: &str,
    raw_key: &str,
    params: &[&str],
    expires: u64,
    key_id: &str,
) -> String {
    let mut canon: Vec<_> = params
        .iter()
        .map(|p| {
            let (k, v) = split_pair(p);
            (canonical_component(k), canonical_component(v))
        })
        .collect();
    canon.sort_unstable();
    let mut out = String::with_capacity(64 + origin.len() + raw_key.len());
    out.push_str(VERSION);
    out.push('\n');
    out.push_str(origin);
    out.push('\n');
    out.push_str(raw_key);
    out.push('\n');
    out.push_str(&expires.to_string());
    out.push('\n');
    out.push_str(key_id);
    out.push('\n');
    for (i, (k, v)) in canon.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

fn mac(secret: &Secret, sts: &str) -> Hmac<Sha256> {
    let mut m: Hmac<Sha256> = super::keyed(secret.expose().as_bytes());
    m.update(sts.as_bytes());
    m
}

/// The query (extra segments first) that signs `raw_key` of `origin` until `expires`.
pub fn sign(origin: &str, raw_key: &str, params: &[&str], expires: u64, key: &NativeKey) -> String {
    let sts = string_to_sign(origin, raw_key, params, expires, &key.key_id);
    let sig = b64url_encode(&mac(&key.secret, &sts).finalize().into_bytes());
    let mut q = String::with_capacity(96);
    for p in params {
        q.push_str(p);
        q.push('&');
    }
    q.push_str(&format!("expires={expires}&key_id="));
    super::encoding::uri_encode_into(&mut q, key.key_id.as_bytes(), false);
    q.push_str("&signature=");
    q.push_str(&sig);
    q
}

/// The native parameters of a URL that arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// Unix expiry.
    pub expires: u64,
    /// Which key signed.
    pub key_id: String,
    /// The MAC.
    pub signature: Vec<u8>,
    /// Every other parameter as its raw segment, in order.
    pub params: Vec<&'a str>,
}

/// Whether `query` carries a native signature.
pub fn is_native(query: &str) -> bool {
    super::url::query_pairs(query).any(|(k, _)| k == "signature")
        && super::url::query_pairs(query).any(|(k, _)| k == "key_id")
}

/// Parses the native parameters.
pub fn parse(query: &str) -> Result<Parsed<'_>, Error> {
    let bad = Error::InvalidSignature;
    let mut found: [Option<&str>; 3] = [None; 3];
    let mut params = Vec::new();
    for seg in query_segments(query) {
        let (k, v) = split_pair(seg);
        match AUTH_PARAMS.iter().position(|a| *a == k) {
            Some(i) if found[i].is_some() => return Err(bad("duplicate signature parameter")),
            Some(i) => found[i] = Some(v),
            None => params.push(seg),
        }
    }
    let [expires, key_id, signature] = found;
    let expires = expires
        .and_then(|e| e.parse::<u64>().ok())
        .ok_or(bad("missing or malformed expires"))?;
    let key_id = super::encoding::percent_decode(key_id.ok_or(bad("missing key_id"))?);
    let key_id = String::from_utf8(key_id.into_owned()).map_err(|_| bad("malformed key_id"))?;
    let signature = b64url_decode(signature.ok_or(bad("missing signature"))?)
        .filter(|s| s.len() == 32)
        .ok_or(bad("malformed signature"))?;
    Ok(Parsed {
        expires,
        key_id,
        signature,
        params,
    })
}

/// Verifies in constant time (`hmac`'s `verify_slice`).
pub fn verify(parsed: &Parsed<'_>, origin: &str, raw_key: &str, key: &NativeKey) -> bool {
    if parsed.key_id != key.key_id {
        return false;
    }
    let sts = string_to_sign(origin, raw_key, &parsed.params, parsed.expires, &key.key_id);
    mac(&key.secret, &sts)
        .verify_slice(&parsed.signature)
        .is_ok()
}
