//! S3 SigV4 query-string authentication ("presigned URLs"), hand-written to match botocore
//! byte for byte and to stay fast.
//!
//! Reference: AWS S3 API docs, "Authenticating Requests: Using Query Parameters (AWS
//! Signature Version 4)". The stages mirror that page:
//! [`canonical_request`] → [`string_to_sign`] → [`SigningKeyCache::get`] (derived key) →
//! [`signature`]. [`presign`] runs them and returns the query to put after `?`;
//! [`parse`] + [`verify`] do the reverse for a URL that arrives.
//!
//! Path bytes are signed exactly as they travel: S3 canonicalises the URI without decoding or
//! normalising it (unlike other AWS services), so `a//b/./c/../d.txt` and `%2525` stay.

use std::borrow::Cow;
use std::sync::RwLock;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Error;
use super::Method;
use super::encoding::{amz_date, canonical_component, hex_lower, parse_amz_date, uri_encode_into};
use super::url::split_pair;
use crate::secret::Secret;

/// The only algorithm SigV4 query auth knows.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// S3's ceiling on `X-Amz-Expires`: seven days.
pub const MAX_EXPIRES: u64 = 604_800;
/// The service name in the credential scope.
pub const SERVICE: &str = "s3";
/// Presigned URLs never sign the body.
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Query parameters that carry the authentication itself; every other one is "extra" and is
/// kept, byte for byte, when a URL is re-signed.
pub const AUTH_PARAMS: [&str; 7] = [
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
];

type HmacSha256 = Hmac<Sha256>;

pub(super) fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac: HmacSha256 = super::keyed(key);
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// The derived signing key `kSigning` (SigV4 "Calculate the signature", step 1).
pub fn derive_signing_key(secret: &str, date: &[u8], region: &str, service: &str) -> [u8; 32] {
    let mut k_secret = Vec::with_capacity(4 + secret.len());
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret.as_bytes());
    let k_date = hmac(&k_secret, date);
    zeroize::Zeroize::zeroize(&mut k_secret);
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

struct CachedKey {
    date: [u8; 8],
    region: Box<str>,
    service: Box<str>,
    /// HMAC already keyed with `kSigning`: cloning it skips the two pad blocks.
    mac: HmacSha256,
}

/// Derived signing keys per (date, region, service): four HMACs saved on every signature.
/// A handful of slots is enough: one date is live, the previous one verifies stale URLs.
#[derive(Default)]
pub struct SigningKeyCache {
    slots: RwLock<Vec<CachedKey>>,
}

impl std::fmt::Debug for SigningKeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKeyCache(**redacted**)")
    }
}

const CACHE_SLOTS: usize = 4;

/// What a signing key is wanted for, which decides whether a newly derived one is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// Signing: the date is the signer's own, so the key is kept for the next signature.
    Signing,
    /// Checking a URL, whose date and region its sender chose: a key not cached yet is
    /// derived and not kept, so URLs with made-up dates or regions cannot push out the keys
    /// that signing uses.
    Checking,
}

impl SigningKeyCache {
    /// A keyed HMAC for (date, region, service), derived once and then reused.
    pub fn get(&self, secret: &Secret, date: &[u8; 8], region: &str, service: &str) -> HmacSha256 {
        self.get_or_derive(date, region, service, KeyUse::Signing, || {
            derive_signing_key(secret.expose(), date, region, service)
        })
    }

    /// The same for any use, and for a scheme that derives its signing key its own way
    /// (GCS's `GOOG4` chain): `derive` runs only when (date, region, service) is not cached.
    /// A cache holds the keys of one secret, so it lives beside that secret.
    pub fn get_or_derive(
        &self,
        date: &[u8; 8],
        region: &str,
        service: &str,
        usage: KeyUse,
        derive: impl FnOnce() -> [u8; 32],
    ) -> HmacSha256 {
        let hit = |k: &CachedKey| k.date == *date && &*k.region == region && &*k.service == service;
        if let Ok(slots) = self.slots.read()
            && let Some(k) = slots.iter().find(|k| hit(k))
        {
            return k.mac.clone();
        }
        let mac: HmacSha256 = super::keyed(&derive());
        if usage == KeyUse::Checking {
            return mac;
        }
        if let Ok(mut slots) = self.slots.write()
            && !slots.iter().any(hit)
        {
            if slots.len() == CACHE_SLOTS {
                slots.remove(0);
            }
            slots.push(CachedKey {
                date: *date,
                region: region.into(),
                service: service.into(),
                mac: mac.clone(),
            });
        }
        mac
    }
}

/// One S3 credential: access key, secret, optional STS session token.
#[derive(Debug)]
pub struct Credentials {
    /// `AKIA…` / `ASIA…`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret: Secret,
    /// STS session token, sent as `X-Amz-Security-Token`.
    pub session_token: Option<Secret>,
    /// Unix seconds when these credentials stop working; URLs never outlive it.
    pub expires_at: Option<u64>,
    keys: SigningKeyCache,
}

impl Credentials {
    /// Credentials with an empty signing-key cache.
    pub fn new(
        access_key_id: impl Into<String>,
        secret: Secret,
        session_token: Option<Secret>,
        expires_at: Option<u64>,
    ) -> Self {
        Credentials {
            access_key_id: access_key_id.into(),
            secret,
            session_token,
            expires_at,
            keys: SigningKeyCache::default(),
        }
    }

    fn signing_mac(&self, date: &[u8; 8], region: &str) -> HmacSha256 {
        self.keys.get(&self.secret, date, region, SERVICE)
    }

    /// The keyed HMAC to check a URL of `date` and `region` with (not cached when new).
    fn checking_mac(&self, date: &[u8; 8], region: &str) -> HmacSha256 {
        self.keys
            .get_or_derive(date, region, SERVICE, KeyUse::Checking, || {
                derive_signing_key(self.secret.expose(), date, region, SERVICE)
            })
    }
}

/// What one presigned URL covers.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// GET or HEAD: part of the signature.
    pub method: Method,
    /// The `host` header value (no default port).
    pub host: &'a str,
    /// The raw path exactly as it will travel.
    pub path: &'a str,
    /// Extra query parameters as raw `name=value` segments (already percent-encoded), in
    /// URL order; kept byte for byte in the URL.
    pub params: &'a [&'a str],
    /// Signed headers besides `host` (lower-case names), e.g. `range`.
    pub headers: &'a [(&'a str, &'a str)],
    /// Region of the credential scope.
    pub region: &'a str,
    /// Signing instant, Unix seconds (`X-Amz-Date`).
    pub signed_at: u64,
    /// `X-Amz-Expires`, 1..=604800.
    pub expires_in: u64,
}

/// The authentication parameters of one URL in their raw (wire) form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParams {
    /// `X-Amz-Credential`, encoded.
    pub credential: String,
    /// `X-Amz-Date`.
    pub date: String,
    /// `X-Amz-Expires`.
    pub expires: String,
    /// `X-Amz-SignedHeaders`, encoded (`host%3Brange`).
    pub signed_headers: String,
    /// `X-Amz-Security-Token`, encoded.
    pub security_token: Option<String>,
}

impl AuthParams {
    /// Builds the auth parameters for `req` signed by `access_key_id` (and `token`).
    pub fn new(req: &Request<'_>, access_key_id: &str, token: Option<&str>) -> Self {
        let date = amz_date(req.signed_at);
        let date_str = std::str::from_utf8(&date).unwrap_or_default();
        // `<key>/<date>/<region>/s3/aws4_request`, encoded piece by piece (no temporary).
        let mut credential = String::with_capacity(access_key_id.len() + req.region.len() + 40);
        uri_encode_into(&mut credential, access_key_id.as_bytes(), false);
        credential.push_str("%2F");
        credential.push_str(&date_str[..8]);
        credential.push_str("%2F");
        uri_encode_into(&mut credential, req.region.as_bytes(), false);
        credential.push_str("%2F");
        credential.push_str(SERVICE);
        credential.push_str("%2Faws4_request");
        let signed_headers = if req.headers.is_empty() {
            "host".to_owned()
        } else {
            let mut names: Vec<&str> = Vec::with_capacity(1 + req.headers.len());
            names.push("host");
            names.extend(req.headers.iter().map(|(n, _)| *n));
            names.sort_unstable();
            let mut out = String::with_capacity(16);
            uri_encode_into(&mut out, names.join(";").as_bytes(), false);
            out
        };
        AuthParams {
            credential,
            date: date_str.to_owned(),
            expires: req.expires_in.to_string(),
            signed_headers,
            security_token: token.map(|t| {
                let mut s = String::with_capacity(t.len() + t.len() / 4);
                uri_encode_into(&mut s, t.as_bytes(), false);
                s
            }),
        }
    }

    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        [
            Some(("X-Amz-Algorithm", ALGORITHM)),
            Some(("X-Amz-Credential", self.credential.as_str())),
            Some(("X-Amz-Date", self.date.as_str())),
            Some(("X-Amz-Expires", self.expires.as_str())),
            Some(("X-Amz-SignedHeaders", self.signed_headers.as_str())),
            self.security_token
                .as_deref()
                .map(|t| ("X-Amz-Security-Token", t)),
        ]
        .into_iter()
        .flatten()
    }
}

/// Trims a header value and makes each inner run of `blanks` one space, as canonical header
/// values require (SigV4: spaces; GCS V4: spaces and tabs).
fn push_header_value(out: &mut String, value: &str, blanks: &[char]) {
    let mut first = true;
    for word in value.split(blanks).filter(|w| !w.is_empty()) {
        if !first {
            out.push(' ');
        }
        out.push_str(word);
        first = false;
    }
}

/// Writes a canonical request from its parts: `pairs` canonical and sorted, `headers`
/// lower-case and sorted by name (their values normalised here), the payload hash last. SigV4
/// and GCS V4 share this layout.
pub(crate) fn write_canonical_request(
    method: &str,
    path: &str,
    pairs: &[(Cow<'_, str>, Cow<'_, str>)],
    headers: &[(&str, &str)],
    blanks: &[char],
    payload: &str,
) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(method);
    out.push('\n');
    out.push_str(path);
    out.push('\n');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out.push('\n');
    for (name, value) in headers {
        out.push_str(name);
        out.push(':');
        push_header_value(&mut out, value, blanks);
        out.push('\n');
    }
    out.push('\n');
    for (i, (name, _)) in headers.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name);
    }
    out.push('\n');
    out.push_str(payload);
    out
}

/// Stage 1: the canonical request over raw query pairs (everything but `X-Amz-Signature`).
/// Each name and value is decoded once and `UriEncode`d, then the pairs are sorted by name
/// and value, which is how S3 canonicalises whatever encoding the client chose.
/// `headers` are (lower-case name, value) including `host`, sorted by name.
pub fn canonical_request<'q>(
    method: Method,
    path: &str,
    query: impl Iterator<Item = (&'q str, &'q str)>,
    headers: &[(&str, &str)],
) -> String {
    let mut pairs: Vec<_> = query
        .map(|(k, v)| (canonical_component(k), canonical_component(v)))
        .collect();
    // Our own auth parameters already arrive in canonical order; skip the sort then.
    if !pairs.is_sorted() {
        pairs.sort_unstable();
    }
    write_canonical_request(
        method.as_str(),
        path,
        &pairs,
        headers,
        &[' '],
        UNSIGNED_PAYLOAD,
    )
}

/// Stage 2: the string to sign.
pub fn string_to_sign(amz_date: &str, region: &str, canonical_request: &str) -> String {
    let digest: [u8; 64] = hex_lower(&Sha256::digest(canonical_request.as_bytes()));
    let mut out = String::with_capacity(160);
    out.push_str(ALGORITHM);
    out.push('\n');
    out.push_str(amz_date);
    out.push('\n');
    out.push_str(amz_date.get(..8).unwrap_or(amz_date));
    out.push('/');
    out.push_str(region);
    out.push('/');
    out.push_str(SERVICE);
    out.push_str("/aws4_request\n");
    out.push_str(std::str::from_utf8(&digest).unwrap_or_default());
    out
}

/// Stage 4: the hex signature of `string_to_sign` under a keyed signing MAC.
pub fn signature(mut signing_mac: HmacSha256, string_to_sign: &str) -> [u8; 64] {
    signing_mac.update(string_to_sign.as_bytes());
    hex_lower(&signing_mac.finalize().into_bytes())
}

fn header_list<'a>(host: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut headers = Vec::with_capacity(1 + extra.len());
    headers.push(("host", host));
    headers.extend_from_slice(extra);
    headers.sort_unstable_by(|a, b| a.0.cmp(b.0));
    headers
}

/// The result of [`presign`]: the query to append after `?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presigned {
    /// Extra parameters (raw, in the order given) then the auth parameters, `X-Amz-Signature`
    /// last, as botocore orders them.
    pub query: String,
    /// The hex signature.
    pub signature: String,
}

/// Presigns `req` with `creds` (stages 1–4). The caller prefixes the URL.
pub fn presign(req: &Request<'_>, creds: &Credentials) -> Presigned {
    let auth = AuthParams::new(
        req,
        &creds.access_key_id,
        creds.session_token.as_ref().map(Secret::expose),
    );
    let headers = header_list(req.host, req.headers);
    let creq = canonical_request(
        req.method,
        req.path,
        req.params.iter().map(|p| split_pair(p)).chain(auth.pairs()),
        &headers,
    );
    let sts = string_to_sign(&auth.date, req.region, &creq);
    let date8: [u8; 8] = auth.date.as_bytes()[..8].try_into().unwrap_or([b'0'; 8]);
    let sig = signature(creds.signing_mac(&date8, req.region), &sts);
    let sig = std::str::from_utf8(&sig).unwrap_or_default();

    let mut query = String::with_capacity(320);
    for p in req.params {
        query.push_str(p);
        query.push('&');
    }
    for (k, v) in auth.pairs() {
        query.push_str(k);
        query.push('=');
        query.push_str(v);
        query.push('&');
    }
    query.push_str("X-Amz-Signature=");
    query.push_str(sig);
    Presigned {
        query,
        signature: sig.to_owned(),
    }
}

/// The SigV4 parameters of a URL that arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The whole raw query (needed to rebuild the canonical query exactly).
    pub query: &'a str,
    /// Access key named in `X-Amz-Credential`.
    pub access_key_id: String,
    /// Region named in the credential scope.
    pub region: String,
    /// `X-Amz-Date`, as written.
    pub amz_date: String,
    /// `X-Amz-Date` as Unix seconds.
    pub signed_at: u64,
    /// `X-Amz-Expires`.
    pub expires_in: u64,
    /// `X-Amz-SignedHeaders`, decoded and split.
    pub signed_headers: Vec<String>,
    /// Whether `X-Amz-Security-Token` is present.
    pub has_security_token: bool,
    /// `X-Amz-Signature` (64 lower-case hex digits).
    pub signature: &'a str,
    /// Every non-auth parameter as its raw `name=value` segment, in order.
    pub params: Vec<&'a str>,
}

impl Parsed<'_> {
    /// Unix seconds at which the URL stops being valid.
    pub fn expires_at(&self) -> u64 {
        self.signed_at.saturating_add(self.expires_in)
    }
}

/// Whether `query` carries SigV4 query authentication at all.
pub fn is_sigv4(query: &str) -> bool {
    super::url::query_pairs(query)
        .any(|(k, _)| k == "X-Amz-Signature" || k == "X-Amz-Algorithm" || k == "X-Amz-Credential")
}

/// Parses the SigV4 parameters of a raw query. Anything malformed, duplicated or out of range
/// (`X-Amz-Expires` outside 1..=604800, a credential date that is not `X-Amz-Date`'s) is an
/// `InvalidSignature`: S3 would refuse such a URL, so it is never re-signed.
pub fn parse(query: &str) -> Result<Parsed<'_>, Error> {
    let bad = Error::InvalidSignature;
    let mut found: [Option<&str>; 7] = [None; 7];
    let mut params = Vec::new();
    for seg in super::url::query_segments(query) {
        let (k, v) = split_pair(seg);
        match AUTH_PARAMS.iter().position(|a| *a == k) {
            Some(i) if found[i].is_some() => return Err(bad("duplicate SigV4 parameter")),
            Some(i) => found[i] = Some(v),
            None => params.push(seg),
        }
    }
    let [alg, cred, date, expires, signed_headers, sig, token] = found;
    let missing = || bad("incomplete SigV4 query parameters");
    if alg.ok_or_else(missing)? != ALGORITHM {
        return Err(bad("unsupported X-Amz-Algorithm"));
    }
    let cred = super::encoding::percent_decode(cred.ok_or_else(missing)?);
    let cred = std::str::from_utf8(&cred).map_err(|_| bad("malformed X-Amz-Credential"))?;
    let parts: Vec<&str> = cred.split('/').collect();
    let [ak, cdate, region, service, terminator] = parts[..] else {
        return Err(bad("malformed X-Amz-Credential"));
    };
    let amz_date = date.ok_or_else(missing)?;
    let signed_at = parse_amz_date(amz_date).ok_or(bad("malformed X-Amz-Date"))?;
    if ak.is_empty()
        || region.is_empty()
        || service != SERVICE
        || terminator != "aws4_request"
        || amz_date.get(..8) != Some(cdate)
    {
        return Err(bad("malformed X-Amz-Credential"));
    }
    let expires_in = expires
        .ok_or_else(missing)?
        .parse::<u64>()
        .ok()
        .filter(|e| (1..=MAX_EXPIRES).contains(e))
        .ok_or(bad("X-Amz-Expires must be between 1 and 604800"))?;
    let signature = sig.ok_or_else(missing)?;
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("malformed X-Amz-Signature"));
    }
    let sh = super::encoding::percent_decode(signed_headers.ok_or_else(missing)?);
    let sh = std::str::from_utf8(&sh).map_err(|_| bad("malformed X-Amz-SignedHeaders"))?;
    let signed_headers: Vec<String> = sh.split(';').map(str::to_owned).collect();
    if !signed_headers.iter().any(|h| h == "host")
        || signed_headers
            .iter()
            .any(|h| h.is_empty() || h.bytes().any(|b| b.is_ascii_uppercase()))
    {
        return Err(bad("malformed X-Amz-SignedHeaders"));
    }
    Ok(Parsed {
        query,
        access_key_id: ak.to_owned(),
        region: region.to_owned(),
        amz_date: amz_date.to_owned(),
        signed_at,
        expires_in,
        signed_headers,
        has_security_token: token.is_some(),
        signature,
        params,
    })
}

/// Recomputes the signature of a parsed URL and compares it in constant time.
/// `host` is the signing host (no default port); `header` looks up any other signed header
/// of the request (`range`). A signed header the request lacks fails verification.
pub fn verify<'h>(
    parsed: &Parsed<'_>,
    method: Method,
    host: &'h str,
    path: &str,
    header: impl Fn(&str) -> Option<&'h str>,
    creds: &Credentials,
) -> bool {
    if parsed.access_key_id != creds.access_key_id {
        return false;
    }
    let mut headers = Vec::with_capacity(parsed.signed_headers.len());
    for name in &parsed.signed_headers {
        let value = if name == "host" {
            Some(host)
        } else {
            header(name)
        };
        match value {
            Some(v) => headers.push((name.as_str(), v)),
            None => return false,
        }
    }
    headers.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let query = super::url::query_pairs(parsed.query).filter(|(k, _)| *k != "X-Amz-Signature");
    let creq = canonical_request(method, path, query, &headers);
    let sts = string_to_sign(&parsed.amz_date, &parsed.region, &creq);
    let date8: [u8; 8] = parsed.amz_date.as_bytes()[..8]
        .try_into()
        .unwrap_or([b'0'; 8]);
    let expected = signature(creds.checking_mac(&date8, &parsed.region), &sts);
    // Compared as written: S3 signatures are lower-case hex, and a case change is a tamper.
    expected.ct_eq(parsed.signature.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_key_matches_aws_documentation() {
        // AWS SigV4 docs, "Examples of how to derive a signing key".
        let key = derive_signing_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            b"20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn signing_key_cache_returns_the_derived_key_and_stays_bounded() {
        let cache = SigningKeyCache::default();
        let secret = Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        let direct = derive_signing_key(secret.expose(), b"20130524", "us-east-1", "s3");
        let mac = |m: HmacSha256| m.chain_update(b"x").finalize().into_bytes();
        let expected = mac(HmacSha256::new_from_slice(&direct).unwrap());
        assert_eq!(
            mac(cache.get(&secret, b"20130524", "us-east-1", "s3")),
            expected
        );
        assert_eq!(
            mac(cache.get(&secret, b"20130524", "us-east-1", "s3")),
            expected,
            "hit"
        );
        for day in 0..10u8 {
            let date = [b'2', b'0', b'1', b'3', b'0', b'6', b'0', b'0' + day];
            cache.get(&secret, &date, "us-east-1", "s3");
        }
        assert_eq!(cache.slots.read().unwrap().len(), CACHE_SLOTS);
    }

    #[test]
    fn checking_a_url_never_pushes_out_the_keys_signing_uses() {
        let cache = SigningKeyCache::default();
        let secret = Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        let derived = std::cell::Cell::new(0);
        let derive = |date: &[u8; 8], region: &str| {
            derived.set(derived.get() + 1);
            derive_signing_key(secret.expose(), date, region, "s3")
        };
        let mac = |m: HmacSha256| m.chain_update(b"x").finalize().into_bytes();
        let live = b"20130524";
        let signing = cache.get_or_derive(live, "us-east-1", "s3", KeyUse::Signing, || {
            derive(live, "us-east-1")
        });
        assert_eq!(derived.get(), 1);
        // URLs with made-up dates and regions: each checked with its own key, none kept.
        for day in 0..10u8 {
            let date = [b'2', b'0', b'1', b'3', b'0', b'6', b'0', b'0' + day];
            let region = format!("made-up-{day}");
            let checking = cache.get_or_derive(&date, &region, "s3", KeyUse::Checking, || {
                derive(&date, &region)
            });
            let direct = derive_signing_key(secret.expose(), &date, &region, "s3");
            assert_eq!(
                mac(checking),
                mac(HmacSha256::new_from_slice(&direct).unwrap())
            );
        }
        assert_eq!(derived.get(), 11);
        assert_eq!(cache.slots.read().unwrap().len(), 1);
        // The live date's key is still cached, for checking and for signing alike.
        let again = cache.get_or_derive(live, "us-east-1", "s3", KeyUse::Checking, || {
            derive(live, "us-east-1")
        });
        assert_eq!(mac(again), mac(signing.clone()));
        cache.get_or_derive(live, "us-east-1", "s3", KeyUse::Signing, || {
            derive(live, "us-east-1")
        });
        assert_eq!(derived.get(), 11);
    }

    #[test]
    fn header_values_are_trimmed_and_collapsed() {
        let mut s = String::new();
        push_header_value(&mut s, "  bytes=0-1   x ", &[' ']);
        assert_eq!(s, "bytes=0-1 x");
    }
}
