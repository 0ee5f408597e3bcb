//! CloudFront signed URLs: canned and custom policies, RSA-2048 PKCS#1 v1.5 over SHA-1 or
//! SHA-256 (`Hash-Algorithm=SHA256`), EC P-256 with RFC 6979 deterministic nonces, and
//! CloudFront's base64 alphabet.
//!
//! Reference: CloudFront developer guide, "Create a signed URL using a canned policy" and
//! "… using a custom policy". The policy JSON is signed byte for byte, so canned policies
//! are built in the exact compact form AWS's SDKs emit, and custom policies are edited in
//! place (key order kept) when a URL is re-signed.

use hmac::{Mac, SimpleHmac};
use p256::elliptic_curve::{Field, PrimeField};
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{RandomizedSigner, SignatureEncoding, Verifier};
use rsa::traits::PublicKeyParts;
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::Error;
use super::encoding::{cloudfront_b64_decode, cloudfront_b64_encode};
use super::url::RawUrl;

/// Query parameters that carry CloudFront authentication; everything else is "extra".
pub const AUTH_PARAMS: [&str; 5] = [
    "Expires",
    "Policy",
    "Signature",
    "Key-Pair-Id",
    "Hash-Algorithm",
];

/// The digest under the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// The default; URLs carry no `Hash-Algorithm`.
    Sha1,
    /// URLs carry `Hash-Algorithm=SHA256`.
    Sha256,
}

impl HashAlgorithm {
    /// `SHA1` / `SHA256`, as in config and in `Hash-Algorithm`.
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlgorithm::Sha1 => "SHA1",
            HashAlgorithm::Sha256 => "SHA256",
        }
    }

    /// Parses `SHA1` / `SHA256`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "SHA1" => Some(HashAlgorithm::Sha1),
            "SHA256" => Some(HashAlgorithm::Sha256),
            _ => None,
        }
    }

    fn digest(self, msg: &[u8]) -> Vec<u8> {
        match self {
            HashAlgorithm::Sha1 => Sha1::digest(msg).to_vec(),
            HashAlgorithm::Sha256 => Sha256::digest(msg).to_vec(),
        }
    }
}

/// A CloudFront signing key: RSA-2048 or EC P-256.
pub enum PrivateKey {
    /// RSA, with both PKCS#1 v1.5 signers prepared.
    Rsa {
        /// Signer over SHA-1.
        sha1: Box<rsa::pkcs1v15::SigningKey<Sha1>>,
        /// Signer over SHA-256.
        sha256: Box<rsa::pkcs1v15::SigningKey<Sha256>>,
        /// The matching public key.
        public: rsa::RsaPublicKey,
    },
    /// EC P-256.
    Ec(p256::ecdsa::SigningKey),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PrivateKey::Rsa { .. } => f.write_str("PrivateKey::Rsa(**redacted**)"),
            PrivateKey::Ec(_) => f.write_str("PrivateKey::Ec(**redacted**)"),
        }
    }
}

/// A CloudFront verification key.
#[derive(Debug, Clone)]
pub enum PublicKey {
    /// RSA.
    Rsa(rsa::RsaPublicKey),
    /// EC P-256.
    Ec(p256::ecdsa::VerifyingKey),
}

impl PrivateKey {
    /// Reads a PEM private key: RSA (PKCS#1 or PKCS#8, 2048 bits) or EC P-256 (PKCS#8 or
    /// SEC1). The error never contains key material.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let rsa_key = rsa::RsaPrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(pem));
        if let Ok(key) = rsa_key {
            if key.size() != 256 {
                return Err(format!(
                    "RSA key is {} bits; CloudFront requires RSA-2048",
                    key.size() * 8
                ));
            }
            key.validate()
                .map_err(|_| "RSA key is inconsistent".to_owned())?;
            let public = key.to_public_key();
            return Ok(PrivateKey::Rsa {
                sha1: Box::new(rsa::pkcs1v15::SigningKey::<Sha1>::new(key.clone())),
                sha256: Box::new(rsa::pkcs1v15::SigningKey::<Sha256>::new(key)),
                public,
            });
        }
        if let Ok(key) =
            p256::SecretKey::from_pkcs8_pem(pem).or_else(|_| p256::SecretKey::from_sec1_pem(pem))
        {
            return Ok(PrivateKey::Ec(p256::ecdsa::SigningKey::from(key)));
        }
        Err("not a PEM RSA-2048 or EC P-256 private key".to_owned())
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        match self {
            PrivateKey::Rsa { public, .. } => PublicKey::Rsa(public.clone()),
            PrivateKey::Ec(k) => PublicKey::Ec(*k.verifying_key()),
        }
    }

    /// Signs `msg` (the policy JSON bytes). RSA PKCS#1 v1.5 is deterministic; ECDSA uses an
    /// RFC 6979 nonce derived with the same hash, so the same policy always gives the same
    /// URL (cache-stable) and matches openssl / python-ecdsa output. DER-encoded for EC.
    pub fn sign(&self, alg: HashAlgorithm, msg: &[u8]) -> Result<Vec<u8>, Error> {
        match (self, alg) {
            // Blinded with OS randomness (RUSTSEC-2023-0071, see SECURITY.md); PKCS#1 v1.5
            // output is deterministic all the same.
            (PrivateKey::Rsa { sha1, .. }, HashAlgorithm::Sha1) => sha1
                .try_sign_with_rng(&mut rsa::rand_core::OsRng, msg)
                .map(|s| s.to_vec())
                .map_err(|_| Error::Internal("RSA signing failed".into())),
            (PrivateKey::Rsa { sha256, .. }, HashAlgorithm::Sha256) => sha256
                .try_sign_with_rng(&mut rsa::rand_core::OsRng, msg)
                .map(|s| s.to_vec())
                .map_err(|_| Error::Internal("RSA signing failed".into())),
            (PrivateKey::Ec(k), alg) => ecdsa_sign(k, alg, &alg.digest(msg)),
        }
    }
}

/// RFC 6979 §3.2 nonce for P-256 with HMAC over the message hash `D`. The `rfc6979` crate
/// only supports a hash as wide as the curve (SHA-256), but CloudFront's default is SHA-1,
/// whose 160-bit output needs two HMAC blocks per candidate (step h).
fn rfc6979_nonce<D>(x: &[u8; 32], h1: &[u8]) -> Option<p256::Scalar>
where
    D: Digest + hmac::digest::core_api::BlockSizeUser + Clone,
{
    let hmac = |k: &[u8], parts: &[&[u8]]| -> Vec<u8> {
        let mut m: SimpleHmac<D> = super::keyed(k);
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    };
    // bits2octets(h1): h1 is at most 256 bits here, so bits2int is its value; reduce mod q.
    let z = ecdsa::hazmat::bits2field::<p256::NistP256>(h1).ok()?;
    let z = <p256::Scalar as p256::elliptic_curve::ops::Reduce<p256::U256>>::reduce_bytes(&z);
    let h = z.to_repr();
    let hlen = <D as Digest>::output_size();
    let mut v = vec![0x01u8; hlen];
    let mut k = vec![0x00u8; hlen];
    k = hmac(&k, &[&v, &[0x00], x, &h]);
    v = hmac(&k, &[&v]);
    k = hmac(&k, &[&v, &[0x01], x, &h]);
    v = hmac(&k, &[&v]);
    for _ in 0..64 {
        let mut t = Vec::with_capacity(32 + hlen);
        while t.len() < 32 {
            v = hmac(&k, &[&v]);
            t.extend_from_slice(&v);
        }
        let bytes: [u8; 32] = t[..32].try_into().ok()?;
        let cand = Option::<p256::Scalar>::from(p256::Scalar::from_repr(bytes.into()));
        if let Some(c) = cand.filter(|c| !bool::from(c.is_zero())) {
            return Some(c);
        }
        k = hmac(&k, &[&v, &[0x00]]);
        v = hmac(&k, &[&v]);
    }
    None
}

fn ecdsa_sign(
    key: &p256::ecdsa::SigningKey,
    alg: HashAlgorithm,
    digest: &[u8],
) -> Result<Vec<u8>, Error> {
    let d: &p256::NonZeroScalar = key.as_nonzero_scalar();
    let x: [u8; 32] = d.to_repr().into();
    let k = match alg {
        HashAlgorithm::Sha1 => rfc6979_nonce::<Sha1>(&x, digest),
        HashAlgorithm::Sha256 => rfc6979_nonce::<Sha256>(&x, digest),
    }
    .ok_or_else(|| Error::Internal("RFC 6979 nonce generation failed".into()))?;
    let z = ecdsa::hazmat::bits2field::<p256::NistP256>(digest)
        .map_err(|_| Error::Internal("bad digest length".into()))?;
    let (sig, _) = ecdsa::hazmat::sign_prehashed::<p256::NistP256, p256::Scalar>(d, k, &z)
        .map_err(|_| Error::Internal("ECDSA signing failed".into()))?;
    Ok(sig.to_der().as_bytes().to_vec())
}

impl PublicKey {
    /// Reads a PEM public key (SPKI, or PKCS#1 for RSA).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        if let Ok(k) = rsa::RsaPublicKey::from_public_key_pem(pem)
            .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
        {
            return Ok(PublicKey::Rsa(k));
        }
        if let Ok(k) = p256::PublicKey::from_public_key_pem(pem) {
            return Ok(PublicKey::Ec(k.into()));
        }
        Err("not a PEM RSA or EC P-256 public key".to_owned())
    }

    /// Whether `sig` is a valid signature of `msg` under this key.
    pub fn verify(&self, alg: HashAlgorithm, msg: &[u8], sig: &[u8]) -> bool {
        match self {
            PublicKey::Rsa(k) => {
                let Ok(sig) = rsa::pkcs1v15::Signature::try_from(sig) else {
                    return false;
                };
                match alg {
                    HashAlgorithm::Sha1 => rsa::pkcs1v15::VerifyingKey::<Sha1>::new(k.clone())
                        .verify(msg, &sig)
                        .is_ok(),
                    HashAlgorithm::Sha256 => rsa::pkcs1v15::VerifyingKey::<Sha256>::new(k.clone())
                        .verify(msg, &sig)
                        .is_ok(),
                }
            }
            PublicKey::Ec(k) => {
                let Ok(sig) = p256::ecdsa::Signature::from_der(sig) else {
                    return false;
                };
                use p256::ecdsa::signature::hazmat::PrehashVerifier;
                k.verify_prehash(&alg.digest(msg), &sig).is_ok()
            }
        }
    }
}

/// The canned policy CloudFront reconstructs from `Expires` (byte-exact, compact JSON).
pub fn canned_policy(resource: &str, expires: u64) -> String {
    format!(
        r#"{{"Statement":[{{"Resource":{},"Condition":{{"DateLessThan":{{"AWS:EpochTime":{expires}}}}}}}]}}"#,
        json_string(resource)
    )
}

/// A custom policy in botocore's compact form and key order (`Resource`, then `Condition`
/// with `DateLessThan`, `IpAddress`, `DateGreaterThan`). A bare IP becomes `/32`, as botocore
/// writes it.
pub fn custom_policy(
    resource: &str,
    date_less_than: u64,
    source_ip: Option<&str>,
    date_greater_than: Option<u64>,
) -> String {
    let mut cond = format!(r#"{{"DateLessThan":{{"AWS:EpochTime":{date_less_than}}}"#);
    if let Some(ip) = source_ip {
        let cidr = if ip.contains('/') {
            ip.to_owned()
        } else {
            format!("{ip}/32")
        };
        cond.push_str(&format!(
            r#","IpAddress":{{"AWS:SourceIp":{}}}"#,
            json_string(&cidr)
        ));
    }
    if let Some(t) = date_greater_than {
        cond.push_str(&format!(r#","DateGreaterThan":{{"AWS:EpochTime":{t}}}"#));
    }
    format!(
        r#"{{"Statement":[{{"Resource":{},"Condition":{cond}}}}}]}}"#,
        json_string(resource)
    )
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// The conditions of a policy, read for expiry and re-signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conditions {
    /// `Resource` (may hold `*` and `?` wildcards).
    pub resource: String,
    /// `DateLessThan`: the expiry.
    pub date_less_than: u64,
    /// `DateGreaterThan`: not valid before.
    pub date_greater_than: Option<u64>,
    /// `IpAddress` / `AWS:SourceIp` (CIDR).
    pub source_ip: Option<String>,
}

fn epoch_of(v: &Value, cond: &str) -> Option<u64> {
    v.get(cond)?.get("AWS:EpochTime")?.as_u64()
}

/// Reads a custom policy's single statement.
pub fn parse_policy(json: &[u8]) -> Result<(Value, Conditions), Error> {
    let bad = || Error::InvalidSignature("malformed CloudFront policy");
    let value: Value = serde_json::from_slice(json).map_err(|_| bad())?;
    let statements = value
        .get("Statement")
        .and_then(Value::as_array)
        .ok_or_else(bad)?;
    let [statement] = statements.as_slice() else {
        return Err(bad());
    };
    let resource = statement
        .get("Resource")
        .and_then(Value::as_str)
        .unwrap_or("*")
        .to_owned();
    let cond = statement.get("Condition").ok_or_else(bad)?;
    let conditions = Conditions {
        resource,
        date_less_than: epoch_of(cond, "DateLessThan").ok_or_else(bad)?,
        date_greater_than: epoch_of(cond, "DateGreaterThan"),
        // An `IpAddress` that is not one CIDR string is kept as its JSON, which no address
        // matches: a condition edgesign cannot read fails closed.
        source_ip: cond.get("IpAddress").map(|v| {
            v.get("AWS:SourceIp")
                .and_then(Value::as_str)
                .map_or_else(|| v.to_string(), str::to_owned)
        }),
    };
    Ok((value, conditions))
}

/// The same custom policy with a new `DateLessThan`, every other byte of meaning kept (key
/// order, `Resource` wildcards, `DateGreaterThan`, `IpAddress`).
pub fn policy_with_expiry(mut policy: Value, expires: u64) -> String {
    if let Some(slot) = policy
        .get_mut("Statement")
        .and_then(|s| s.get_mut(0))
        .and_then(|s| s.get_mut("Condition"))
        .and_then(|c| c.get_mut("DateLessThan"))
        .and_then(|d| d.get_mut("AWS:EpochTime"))
    {
        *slot = Value::from(expires);
    }
    policy.to_string()
}

/// Whether a policy's `AWS:SourceIp` (a CIDR, or a bare address) admits `client`. Anything
/// else admits nobody.
pub fn source_ip_admits(range: &str, client: std::net::IpAddr) -> bool {
    let client = client.to_canonical();
    range
        .parse::<ipnet::IpNet>()
        .or_else(|_| range.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .is_ok_and(|net| net.contains(&client))
}

/// CloudFront's wildcard match for `Resource`: `*` any run of characters, `?` exactly one.
pub fn resource_matches(pattern: &str, url: &str) -> bool {
    let (p, u) = (pattern.as_bytes(), url.as_bytes());
    let (mut pi, mut ui) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ui < u.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == u[ui]) {
            pi += 1;
            ui += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ui));
            pi += 1;
        } else if let Some((sp, su)) = star {
            pi = sp + 1;
            ui = su + 1;
            star = Some((sp, su + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// The CloudFront parameters of a URL that arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// `Expires` (canned policy).
    pub expires: Option<u64>,
    /// The decoded `Policy` JSON (custom policy).
    pub policy: Option<Vec<u8>>,
    /// The decoded signature.
    pub signature: Vec<u8>,
    /// `Key-Pair-Id`.
    pub key_pair_id: &'a str,
    /// `Hash-Algorithm` (SHA-1 when absent).
    pub hash: HashAlgorithm,
    /// Every other parameter as its raw `name=value` segment, in order.
    pub params: Vec<&'a str>,
}

/// Whether `query` carries CloudFront authentication.
pub fn is_cloudfront(query: &str) -> bool {
    let mut sig = false;
    let mut kp = false;
    for (k, _) in super::url::query_pairs(query) {
        sig |= k == "Signature";
        kp |= k == "Key-Pair-Id";
    }
    sig && kp
}

/// Parses CloudFront's parameters. Exactly one of `Expires` / `Policy` must be present.
pub fn parse(query: &str) -> Result<Parsed<'_>, Error> {
    let bad = Error::InvalidSignature;
    let mut found: [Option<&str>; 5] = [None; 5];
    let mut params = Vec::new();
    for seg in super::url::query_segments(query) {
        let (k, v) = super::url::split_pair(seg);
        match AUTH_PARAMS.iter().position(|a| *a == k) {
            Some(i) if found[i].is_some() => return Err(bad("duplicate CloudFront parameter")),
            Some(i) => found[i] = Some(v),
            None => params.push(seg),
        }
    }
    let [expires, policy, signature, key_pair_id, hash] = found;
    let expires = match expires {
        Some(e) => Some(e.parse::<u64>().map_err(|_| bad("malformed Expires"))?),
        None => None,
    };
    let policy = match policy {
        Some(p) => Some(cloudfront_b64_decode(p).ok_or(bad("malformed Policy"))?),
        None => None,
    };
    if expires.is_some() == policy.is_some() {
        return Err(bad(
            "a CloudFront URL carries exactly one of Expires and Policy",
        ));
    }
    let signature = cloudfront_b64_decode(signature.ok_or(bad("missing Signature"))?)
        .ok_or(bad("malformed Signature"))?;
    let key_pair_id = key_pair_id
        .filter(|k| !k.is_empty())
        .ok_or(bad("missing Key-Pair-Id"))?;
    let hash = match hash {
        None => HashAlgorithm::Sha1,
        Some(h) => HashAlgorithm::parse(h).ok_or(bad("unsupported Hash-Algorithm"))?,
    };
    Ok(Parsed {
        expires,
        policy,
        signature,
        key_pair_id,
        hash,
        params,
    })
}

/// The URL a policy's `Resource` is matched against: the request URL without CloudFront's own
/// parameters, extra parameters kept raw and in order.
pub fn resource_url(url: &RawUrl<'_>, params: &[&str]) -> String {
    super::url::join(
        &format!("{}://{}{}", url.scheme.as_str(), url.authority, url.path),
        params,
    )
}

/// Verifies a parsed URL against `key`; on success returns its conditions (the canned policy
/// is rebuilt from `resource`). The signature is checked before the policy is read, so only
/// genuine policies are ever parsed or matched.
pub fn verify(parsed: &Parsed<'_>, resource: &str, key: &PublicKey) -> Option<Conditions> {
    let conditions = match (&parsed.policy, parsed.expires) {
        (Some(policy), _) => {
            if !key.verify(parsed.hash, policy, &parsed.signature) {
                return None;
            }
            let (_, c) = parse_policy(policy).ok()?;
            if !resource_matches(&c.resource, resource) {
                return None;
            }
            c
        }
        (None, Some(expires)) => {
            let policy = canned_policy(resource, expires);
            if !key.verify(parsed.hash, policy.as_bytes(), &parsed.signature) {
                return None;
            }
            Conditions {
                resource: resource.to_owned(),
                date_less_than: expires,
                date_greater_than: None,
                source_ip: None,
            }
        }
        (None, None) => return None,
    };
    Some(conditions)
}

/// What to sign: a canned policy (expiry only) or a custom policy document.
#[derive(Debug, Clone)]
pub enum PolicyKind {
    /// `Expires=` URL; CloudFront rebuilds the policy from the URL.
    Canned {
        /// DateLessThan.
        expires: u64,
    },
    /// `Policy=` URL carrying this exact JSON.
    Custom(String),
}

/// Signs `url` (the resource URL: no CloudFront parameters) and returns the full signed URL,
/// parameters in botocore's order (`Expires|Policy`, `Signature`, `Key-Pair-Id`, then
/// `Hash-Algorithm` for SHA-256).
pub fn sign(
    url: &str,
    policy: &PolicyKind,
    key: &PrivateKey,
    key_pair_id: &str,
    hash: HashAlgorithm,
) -> Result<String, Error> {
    let mut out = String::with_capacity(url.len() + 512);
    out.push_str(url);
    out.push(if url.contains('?') { '&' } else { '?' });
    let signature = match policy {
        PolicyKind::Canned { expires } => {
            let p = canned_policy(url, *expires);
            out.push_str(&format!("Expires={expires}"));
            key.sign(hash, p.as_bytes())?
        }
        PolicyKind::Custom(json) => {
            out.push_str("Policy=");
            out.push_str(&cloudfront_b64_encode(json.as_bytes()));
            key.sign(hash, json.as_bytes())?
        }
    };
    out.push_str("&Signature=");
    out.push_str(&cloudfront_b64_encode(&signature));
    out.push_str("&Key-Pair-Id=");
    out.push_str(key_pair_id);
    if hash == HashAlgorithm::Sha256 {
        out.push_str("&Hash-Algorithm=SHA256");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_like_cloudfront() {
        assert!(resource_matches(
            "https://d.net/videos/*",
            "https://d.net/videos/a.mp4"
        ));
        assert!(resource_matches("*", "https://d.net/x"));
        assert!(resource_matches(
            "https://d.net/?.txt",
            "https://d.net/a.txt"
        ));
        assert!(!resource_matches(
            "https://d.net/?.txt",
            "https://d.net/ab.txt"
        ));
        assert!(!resource_matches(
            "https://d.net/videos/*",
            "https://d.net/audio/a.mp3"
        ));
        assert!(resource_matches(
            "https://d.net/*/a*b",
            "https://d.net/x/y/a--b"
        ));
    }

    #[test]
    fn custom_policy_keeps_key_order_when_reexpired() {
        let json = r#"{"Statement":[{"Resource":"https://d/v/*","Condition":{"DateLessThan":{"AWS:EpochTime":1},"DateGreaterThan":{"AWS:EpochTime":0},"IpAddress":{"AWS:SourceIp":"192.0.2.0/24"}}}]}"#;
        let (v, c) = parse_policy(json.as_bytes()).unwrap();
        assert_eq!(c.source_ip.as_deref(), Some("192.0.2.0/24"));
        let odd = r#"{"Statement":[{"Resource":"*","Condition":{"DateLessThan":{"AWS:EpochTime":1},"IpAddress":{"AWS:SourceIp":["192.0.2.0/24"]}}}]}"#;
        let (_, c) = parse_policy(odd.as_bytes()).unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(!source_ip_admits(
            c.source_ip.as_deref().unwrap(),
            ip("192.0.2.7")
        ));
        assert!(source_ip_admits("192.0.2.0/24", ip("192.0.2.7")));
        assert!(source_ip_admits("192.0.2.0/24", ip("::ffff:192.0.2.7")));
        assert!(!source_ip_admits("192.0.2.0/24", ip("192.0.3.7")));
        assert!(source_ip_admits("192.0.2.7", ip("192.0.2.7")));
        assert!(source_ip_admits("2001:db8::/32", ip("2001:db8::1")));
        assert!(!source_ip_admits("2001:db8::/32", ip("192.0.2.7")));
        assert!(!source_ip_admits("not an address", ip("192.0.2.7")));
        assert_eq!(policy_with_expiry(v, 99), json.replace(":1}", ":99}"));
    }
}
