//! A JSON Web Key Set (RFC 7517) of RS256 verification keys, by `kid`. Pure: parsed from the
//! bytes an identity provider publishes (fetched by the shell's `keyset`), looked up by the
//! token verifier.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// Most keys a set may hold (a bound on work for a hostile or broken provider).
pub const MAX_KEYS: usize = 64;

/// RS256 keys by `kid`.
#[derive(Debug, Clone, Default)]
pub struct JwkSet {
    keys: HashMap<String, rsa::RsaPublicKey>,
}

impl JwkSet {
    /// The RSA signing keys of a JWKS document: `kty = "RSA"`, a `kid`, `n` and `e`, and
    /// `use` (when present) `sig` and `alg` (when present) `RS256`. Other keys (EC, encryption
    /// keys) are skipped; a document with none usable, or that is not a JWKS, is an error.
    pub fn parse(bytes: &[u8]) -> Result<JwkSet, String> {
        let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON ({e})"))?;
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("no \"keys\" array")?;
        let mut keys = HashMap::new();
        for k in list.iter().take(MAX_KEYS) {
            let text = |name: &str| k.get(name).and_then(Value::as_str);
            if text("kty") != Some("RSA")
                || text("use").is_some_and(|u| u != "sig")
                || text("alg").is_some_and(|a| a != "RS256")
            {
                continue;
            }
            let (Some(kid), Some(n), Some(e)) = (text("kid"), text("n"), text("e")) else {
                continue;
            };
            let int = |s: &str| {
                URL_SAFE_NO_PAD
                    .decode(s.trim_end_matches('='))
                    .ok()
                    .map(|b| rsa::BigUint::from_bytes_be(&b))
            };
            let (Some(n), Some(e)) = (int(n), int(e)) else {
                continue;
            };
            if let Ok(key) = rsa::RsaPublicKey::new(n, e) {
                keys.insert(kid.to_owned(), key);
            }
        }
        if keys.is_empty() {
            return Err("no usable RS256 signing key".into());
        }
        Ok(JwkSet { keys })
    }

    /// The key with this `kid`.
    pub fn get(&self, kid: &str) -> Option<&rsa::RsaPublicKey> {
        self.keys.get(kid)
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test")]
mod tests {
    use super::*;

    #[test]
    fn keeps_rsa_signing_keys_by_kid_and_skips_the_rest() {
        let n = URL_SAFE_NO_PAD.encode([0xc5u8; 256]);
        let doc = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "a", "use": "sig", "alg": "RS256", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": n, "e": "AQAB"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "x": "AA", "y": "AA"},
            {"kty": "RSA", "n": n, "e": "AQAB"},
            {"kty": "RSA", "kid": "bad", "n": "!!", "e": "AQAB"},
        ]});
        let set = JwkSet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.get("a").is_some() && set.get("enc").is_none());
        assert!(JwkSet::parse(b"{\"keys\": []}").is_err());
        assert!(JwkSet::parse(b"<html>").is_err());
    }
}
