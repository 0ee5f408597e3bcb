//! Google Cloud Storage V4 signed URLs, stage by stage: canonical request → string to sign →
//! signature. Two algorithms share every stage but the last: `GOOG4-RSA-SHA256` (a service
//! account's RSA key, RSASSA-PKCS1-v1_5 over SHA-256) and `GOOG4-HMAC-SHA256` (an HMAC key,
//! with a signing key derived like SigV4's: `"GOOG4" + secret`, date, `auto`, `storage`,
//! `goog4_request`). The signature is lower-case hex.
//!
//! - Credential scope `<YYYYMMDD>/auto/storage/goog4_request`.
//! - Canonical query: every name and value decoded once and percent-encoded keeping only
//!   `A-Z a-z 0-9 - . _ ~`, pairs sorted; `X-Goog-Signature` is left out, and appended last.
//! - Canonical headers: names lower-cased, values trimmed with inner runs of spaces and tabs
//!   made one space, sorted by name; `host` always signed.
//! - Payload: `UNSIGNED-PAYLOAD`, or the `x-goog-content-sha256` header when it is signed.
//! - The path is the raw path as it travels (`/<bucket>/<object>` path-style, `/<object>`
//!   virtual-hosted), never normalised.
//!
//! `X-Goog-*` names are matched case-insensitively when a URL is read; the canonical query
//! keeps them as the URL spells them (that is what its signer signed).

use std::sync::Arc;

use hmac::Mac;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Verifier};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::encoding::{amz_date, canonical_component, hex_lower, parse_amz_date, uri_encode_into};
use super::sigv4::{KeyUse, SigningKeyCache, hmac, write_canonical_request};
use super::{Error, Method, keyed};
use crate::secret::Secret;

type HmacSha256 = hmac::Hmac<Sha256>;

/// Longest lifetime of a V4 signed URL (7 days).
pub const MAX_EXPIRES: u64 = 604_800;
/// What the scope ends with after the date.
const SCOPE_TAIL: &str = "/auto/storage/goog4_request";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Which V4 algorithm a URL is signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// `GOOG4-RSA-SHA256`: a service account's RSA key.
    Rsa,
    /// `GOOG4-HMAC-SHA256`: an HMAC key (`access_id`, `secret`).
    Hmac,
}

impl Algorithm {
    /// The `X-Goog-Algorithm` value.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Rsa => "GOOG4-RSA-SHA256",
            Algorithm::Hmac => "GOOG4-HMAC-SHA256",
        }
    }

    /// Reads an `X-Goog-Algorithm` value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "GOOG4-RSA-SHA256" => Some(Algorithm::Rsa),
            "GOOG4-HMAC-SHA256" => Some(Algorithm::Hmac),
            _ => None,
        }
    }
}

/// One signing key: a service account or an HMAC key.
#[derive(Clone)]
pub enum Key {
    /// A service account (`client_email`, RSA `private_key`).
    ServiceAccount {
        /// `client_email`: the credential's id.
        client_email: String,
        /// PKCS#1 v1.5 / SHA-256 signer.
        signing: Box<rsa::pkcs1v15::SigningKey<Sha256>>,
        /// The public half, to verify.
        public: rsa::RsaPublicKey,
    },
    /// An HMAC key ([`Key::hmac`]).
    Hmac(HmacKey),
}

/// An HMAC key, and the signing keys it has derived: one per date, like SigV4's, so a
/// signature costs one HMAC, not five.
/// Its `Debug` shows the access ID only (the secret and the cache are redacted).
#[derive(Clone, Debug)]
pub struct HmacKey {
    /// `GOOG1…`: the credential's id.
    pub access_id: String,
    secret: Secret,
    /// Shared by the key's clones; it only ever holds keys derived from `secret`.
    keys: Arc<SigningKeyCache>,
}

impl HmacKey {
    /// The HMAC keyed with the signing key of `date` (`YYYYMMDD`), cached as `usage` says.
    fn mac(&self, date: &str, usage: KeyUse) -> HmacSha256 {
        let derive = || hmac_signing_key(self.secret.expose(), date);
        match <&[u8; 8]>::try_from(date.as_bytes()) {
            Ok(day) => self
                .keys
                .get_or_derive(day, "auto", "storage", usage, derive),
            // Not a scope date (never the case for a date this module formats): not cached.
            Err(_) => keyed(&derive()),
        }
    }

    /// The lower-case hex signature of `string_to_sign`.
    fn signature(&self, date: &str, string_to_sign: &str, usage: KeyUse) -> [u8; 64] {
        let mut mac = self.mac(date, usage);
        mac.update(string_to_sign.as_bytes());
        hex_lower(&mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::ServiceAccount { client_email, .. } => f
                .debug_struct("ServiceAccount")
                .field("client_email", client_email)
                .finish_non_exhaustive(),
            Key::Hmac(key) => f
                .debug_struct("Hmac")
                .field("access_id", &key.access_id)
                .finish_non_exhaustive(),
        }
    }
}

impl Key {
    /// An HMAC key: its `GOOG1…` access ID and its secret.
    pub fn hmac(access_id: impl Into<String>, secret: Secret) -> Key {
        Key::Hmac(HmacKey {
            access_id: access_id.into(),
            secret,
            keys: Arc::default(),
        })
    }

    /// A service account from the JSON key file Google issues (`client_email`,
    /// `private_key` as PKCS#8 PEM). The error never holds key material.
    pub fn service_account(json: &str) -> Result<Key, String> {
        let v: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| format!("not a JSON service-account key (line {})", e.line()))?;
        let client_email = v
            .get("client_email")
            .and_then(serde_json::Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("the service-account key has no client_email")?
            .to_owned();
        let pem = v
            .get("private_key")
            .and_then(serde_json::Value::as_str)
            .ok_or("the service-account key has no private_key")?;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
            .map_err(|_| "the service-account private_key is not a PKCS#8 PEM RSA key")?;
        key.validate()
            .map_err(|_| "the service-account private_key is inconsistent")?;
        let public = key.to_public_key();
        Ok(Key::ServiceAccount {
            client_email,
            signing: Box::new(rsa::pkcs1v15::SigningKey::new(key)),
            public,
        })
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Key::ServiceAccount { .. } => Algorithm::Rsa,
            Key::Hmac { .. } => Algorithm::Hmac,
        }
    }

    /// The credential's id: `client_email` or `access_id`.
    pub fn id(&self) -> &str {
        match self {
            Key::ServiceAccount { client_email, .. } => client_email,
            Key::Hmac(key) => &key.access_id,
        }
    }

    /// Stage 3: the hex signature of `string_to_sign` (the date is the scope's, `YYYYMMDD`).
    pub fn sign(&self, date: &str, string_to_sign: &str) -> Result<String, Error> {
        match self {
            Key::ServiceAccount { signing, .. } => {
                // Blinded with OS randomness (RUSTSEC-2023-0071, see SECURITY.md); PKCS#1 v1.5
                // output is deterministic all the same.
                let sig = rsa::signature::RandomizedSigner::try_sign_with_rng(
                    signing.as_ref(),
                    &mut rsa::rand_core::OsRng,
                    string_to_sign.as_bytes(),
                )
                .map_err(|_| Error::Internal("RSA signing failed".into()))?;
                Ok(hex::encode(sig.to_bytes()))
            }
            Key::Hmac(key) => {
                let hex = key.signature(date, string_to_sign, KeyUse::Signing);
                Ok(String::from_utf8_lossy(&hex).into_owned())
            }
        }
    }

    /// Whether `signature` (hex, as in the URL) is this key's over `string_to_sign`.
    pub fn verifies(&self, date: &str, string_to_sign: &str, signature: &str) -> bool {
        match self {
            Key::ServiceAccount { public, .. } => {
                let Ok(bytes) = hex::decode(signature) else {
                    return false;
                };
                let Ok(sig) = rsa::pkcs1v15::Signature::try_from(bytes.as_slice()) else {
                    return false;
                };
                rsa::pkcs1v15::VerifyingKey::<Sha256>::new(public.clone())
                    .verify(string_to_sign.as_bytes(), &sig)
                    .is_ok()
            }
            Key::Hmac(key) => {
                let expected = key.signature(date, string_to_sign, KeyUse::Checking);
                let given = signature.to_ascii_lowercase();
                expected[..].ct_eq(given.as_bytes()).into()
            }
        }
    }
}

/// The HMAC signing key of a date (`YYYYMMDD`): HMAC chains over `"GOOG4" + secret`, the
/// date, `auto`, `storage` and `goog4_request`, as Google documents for HMAC keys.
pub fn hmac_signing_key(secret: &str, date: &str) -> [u8; 32] {
    // The secret's copy is wiped once used, as SigV4's is.
    let mut seed = format!("GOOG4{secret}").into_bytes();
    let mut k = hmac(&seed, date.as_bytes());
    zeroize::Zeroize::zeroize(&mut seed);
    for part in ["auto", "storage", "goog4_request"] {
        k = hmac(&k, part.as_bytes());
    }
    k
}

/// The credential scope of a date: `<YYYYMMDD>/auto/storage/goog4_request`.
pub fn scope(date: &str) -> String {
    format!("{date}{SCOPE_TAIL}")
}

/// Stage 1: the canonical request. `query` is every raw `(name, value)` of the URL but the
/// signature (in any order: each is canonicalised and the pairs sorted). `headers` are the
/// signed headers, `(name, value)` in any case and order, `host` among them; values are
/// trimmed with inner runs of spaces and tabs made one space.
pub fn canonical_request<'q>(
    method: &str,
    path: &str,
    query: impl Iterator<Item = (&'q str, &'q str)>,
    headers: &[(&str, &str)],
) -> String {
    let mut pairs: Vec<_> = query
        .map(|(k, v)| (canonical_component(k), canonical_component(v)))
        .collect();
    pairs.sort_unstable();
    let mut names: Vec<(String, &str)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), *v))
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let payload = names
        .iter()
        .find(|(n, _)| n == "x-goog-content-sha256")
        .map_or(UNSIGNED_PAYLOAD, |(_, v)| v.trim());
    let heads: Vec<(&str, &str)> = names.iter().map(|(n, v)| (n.as_str(), *v)).collect();
    write_canonical_request(method, path, &pairs, &heads, &[' ', '\t'], payload)
}

/// Stage 2: the string to sign.
pub fn string_to_sign(algorithm: Algorithm, datetime: &str, canonical_request: &str) -> String {
    let digest: [u8; 64] = hex_lower(&Sha256::digest(canonical_request.as_bytes()));
    let date = datetime.get(..8).unwrap_or(datetime);
    format!(
        "{}\n{datetime}\n{}\n{}",
        algorithm.name(),
        scope(date),
        String::from_utf8_lossy(&digest)
    )
}

/// What one signed URL covers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// GET or HEAD.
    pub method: Method,
    /// The `host` signed: the URL's host, with its port when not the scheme's default.
    pub host: &'a str,
    /// The raw path as it travels.
    pub path: &'a str,
    /// Extra query parameters, raw `name=value` segments (signed, and sorted into the URL).
    pub params: &'a [&'a str],
    /// Signing instant (Unix seconds).
    pub signed_at: u64,
    /// `X-Goog-Expires`, 1..=604800.
    pub expires_in: u64,
}

/// A signed URL's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    /// The query after `?`: the canonical query, then `X-Goog-Signature` (as
    /// `google-cloud-storage` builds it).
    pub query: String,
    /// The hex signature.
    pub signature: String,
}

/// Signs `req` with `key`.
pub fn presign(req: &Request<'_>, key: &Key) -> Result<Presigned, Error> {
    let dt = amz_date(req.signed_at);
    let datetime = std::str::from_utf8(&dt).unwrap_or_default();
    let date = &datetime[..8];
    let mut credential = String::with_capacity(key.id().len() + 48);
    uri_encode_into(&mut credential, key.id().as_bytes(), false);
    credential.push_str("%2F");
    uri_encode_into(&mut credential, scope(date).as_bytes(), false);
    let expires = req.expires_in.to_string();
    let auth = [
        ("X-Goog-Algorithm", key.algorithm().name()),
        ("X-Goog-Credential", credential.as_str()),
        ("X-Goog-Date", datetime),
        ("X-Goog-Expires", expires.as_str()),
        ("X-Goog-SignedHeaders", "host"),
    ];
    let query = req
        .params
        .iter()
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .chain(auth.iter().copied());
    let creq = canonical_request(req.method.as_str(), req.path, query, &[("host", req.host)]);
    let sts = string_to_sign(key.algorithm(), datetime, &creq);
    let signature = key.sign(date, &sts)?;
    // The URL's query is the canonical query, as the canonical request holds it.
    let canonical_query = creq.split('\n').nth(2).unwrap_or_default();
    Ok(Presigned {
        query: format!("{canonical_query}&X-Goog-Signature={signature}"),
        signature,
    })
}

/// The V4 parameters of a URL that arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The whole raw query.
    pub query: &'a str,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The credential's id (`client_email` or HMAC `access_id`), decoded.
    pub id: String,
    /// `X-Goog-Date` as written.
    pub datetime: String,
    /// `X-Goog-Date` as Unix seconds.
    pub signed_at: u64,
    /// `X-Goog-Expires`.
    pub expires_in: u64,
    /// The signed header names, lower-case, as listed.
    pub signed_headers: Vec<String>,
    /// `X-Goog-Signature`, as written.
    pub signature: &'a str,
}

impl Parsed<'_> {
    /// When the URL stops working.
    pub fn expires_at(&self) -> u64 {
        self.signed_at.saturating_add(self.expires_in)
    }

    /// The raw query pairs the signature covers: all but `X-Goog-Signature`.
    pub fn signed_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.query
            .split('&')
            .filter(|s| !s.is_empty())
            .map(|s| s.split_once('=').unwrap_or((s, "")))
            .filter(|(k, _)| !k.eq_ignore_ascii_case("X-Goog-Signature"))
    }
}

/// The parameters a V4 signer writes (any case on input), the signature last.
pub const AUTH_PARAMS: [&str; 6] = [
    "X-Goog-Algorithm",
    "X-Goog-Credential",
    "X-Goog-Date",
    "X-Goog-Expires",
    "X-Goog-SignedHeaders",
    "X-Goog-Signature",
];

/// Whether `query` carries a V4 signature (`X-Goog-Signature` in any case).
pub fn is_gcs(query: &str) -> bool {
    query.split('&').any(|s| {
        s.split_once('=')
            .map_or(s, |(k, _)| k)
            .eq_ignore_ascii_case("X-Goog-Signature")
    })
}

/// Reads the V4 parameters of `query`. A missing, repeated or malformed one is
/// `InvalidSignature`.
pub fn parse(query: &str) -> Result<Parsed<'_>, Error> {
    let mut found: [Option<&str>; 6] = [None; 6];
    for seg in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = seg.split_once('=').unwrap_or((seg, ""));
        if let Some(i) = AUTH_PARAMS.iter().position(|n| n.eq_ignore_ascii_case(k))
            && found[i].replace(v).is_some()
        {
            return Err(Error::InvalidSignature("a V4 parameter is repeated"));
        }
    }
    let [
        Some(alg),
        Some(cred),
        Some(date),
        Some(expires),
        Some(heads),
        Some(sig),
    ] = found
    else {
        return Err(Error::InvalidSignature("a V4 parameter is missing"));
    };
    let decode = |s: &str| String::from_utf8(super::encoding::percent_decode(s).into_owned()).ok();
    let algorithm = decode(alg)
        .as_deref()
        .and_then(Algorithm::parse)
        .ok_or(Error::InvalidSignature("unknown X-Goog-Algorithm"))?;
    let cred = decode(cred).ok_or(Error::InvalidSignature("bad X-Goog-Credential"))?;
    let datetime = decode(date).ok_or(Error::InvalidSignature("bad X-Goog-Date"))?;
    let signed_at = parse_amz_date(&datetime).ok_or(Error::InvalidSignature("bad X-Goog-Date"))?;
    // `<id>/<date>/auto/storage/goog4_request`; the id may hold `/` (it does not today).
    let (id, rest) = cred
        .len()
        .checked_sub(SCOPE_TAIL.len() + 9)
        .and_then(|at| Some((cred.get(..at)?, cred.get(at..)?)))
        .ok_or(Error::InvalidSignature("bad X-Goog-Credential"))?;
    if rest != format!("/{}{SCOPE_TAIL}", &datetime[..8]) {
        return Err(Error::InvalidSignature(
            "X-Goog-Credential's scope does not match X-Goog-Date",
        ));
    }
    let expires_in: u64 = expires
        .parse()
        .ok()
        .filter(|n| (1..=MAX_EXPIRES).contains(n))
        .ok_or(Error::InvalidSignature("bad X-Goog-Expires"))?;
    let heads = decode(heads).ok_or(Error::InvalidSignature("bad X-Goog-SignedHeaders"))?;
    let signed_headers: Vec<String> = heads.split(';').map(str::to_ascii_lowercase).collect();
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(Error::InvalidSignature("X-Goog-SignedHeaders lacks host"));
    }
    if sig.is_empty() || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidSignature("bad X-Goog-Signature"));
    }
    Ok(Parsed {
        query,
        algorithm,
        id: id.to_owned(),
        datetime,
        signed_at,
        expires_in,
        signed_headers,
        signature: sig,
    })
}

/// Verifies `parsed` for a request of `method` on `path` whose signed headers have the
/// values `header` gives (`host` among them), with `key`. The expiry is the caller's to
/// judge.
pub fn verify<'h>(
    parsed: &Parsed<'_>,
    method: &str,
    path: &str,
    header: impl Fn(&str) -> Option<&'h str>,
    key: &Key,
) -> Result<(), Error> {
    if key.algorithm() != parsed.algorithm || key.id() != parsed.id {
        return Err(Error::InvalidSignature("signed by another key"));
    }
    let mut headers = Vec::with_capacity(parsed.signed_headers.len());
    for name in &parsed.signed_headers {
        let value = header(name).ok_or(Error::InvalidSignature(
            "a signed header is missing from the request",
        ))?;
        headers.push((name.as_str(), value));
    }
    let creq = canonical_request(method, path, parsed.signed_pairs(), &headers);
    let sts = string_to_sign(parsed.algorithm, &parsed.datetime, &creq);
    if key.verifies(&parsed.datetime[..8], &sts, parsed.signature) {
        Ok(())
    } else {
        Err(Error::InvalidSignature("the signature does not verify"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature of `string_to_sign` with the signing key derived afresh.
    fn fresh(secret: &str, date: &str, string_to_sign: &str) -> String {
        let mut mac: HmacSha256 = keyed(&hmac_signing_key(secret, date));
        mac.update(string_to_sign.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    #[test]
    fn an_hmac_key_signs_every_date_as_a_fresh_derivation_would() {
        let key = Key::hmac("GOOG1EXAMPLE", Secret::new("first secret"));
        let clone = key.clone();
        // More dates than the cache has slots, revisited out of order, and a date that is
        // not eight bytes (derived, never cached): each signs with its own date's key.
        let dates = [
            "20260101", "20260102", "20260101", "20991231", "20260103", "20260104", "20260105",
            "20260101", "2026010", "20260102",
        ];
        for (i, date) in dates.into_iter().enumerate() {
            let sts = format!("GOOG4-HMAC-SHA256\n{date}T000000Z\n{date}{SCOPE_TAIL}\n{i:064x}");
            let expected = fresh("first secret", date, &sts);
            assert_eq!(key.sign(date, &sts).unwrap(), expected, "{date}");
            assert_eq!(clone.sign(date, &sts).unwrap(), expected, "{date}, a clone");
            assert!(key.verifies(date, &sts, &expected.to_ascii_uppercase()));
        }
        // Another secret's key signs with its own keys, never with those cached above.
        let other = Key::hmac("GOOG1EXAMPLE", Secret::new("second secret"));
        let sts = format!("GOOG4-HMAC-SHA256\n20260101T000000Z\n20260101{SCOPE_TAIL}\n00");
        let theirs = other.sign("20260101", &sts).unwrap();
        assert_eq!(theirs, fresh("second secret", "20260101", &sts));
        assert_ne!(theirs, key.sign("20260101", &sts).unwrap());
        assert!(!key.verifies("20260101", &sts, &theirs));
        // Neither the key nor its parts print the secret.
        let Key::Hmac(inner) = &key else {
            panic!("an HMAC key")
        };
        for shown in [format!("{key:?}"), format!("{inner:?}")] {
            assert!(
                shown.contains("GOOG1EXAMPLE") && !shown.contains("first secret"),
                "{shown}"
            );
        }
    }
}
