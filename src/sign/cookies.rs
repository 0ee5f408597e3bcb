//! CloudFront signed cookies: the same policies and signatures as signed URLs
//! ([`super::cloudfront`]), carried in cookies instead of the query, so that one grant covers
//! every object under a directory (the segments of an HLS or DASH playlist).
//!
//! Reference: CloudFront developer guide, "Set signed cookies using a custom policy" (and
//! "… a canned policy"): `CloudFront-Policy` (custom) or `CloudFront-Expires` (canned),
//! `CloudFront-Signature`, `CloudFront-Key-Pair-Id`, and the optional fourth cookie
//! `CloudFront-Hash-Algorithm=SHA256`. Values use CloudFront's base64 alphabet, which needs no
//! quoting in a cookie. Signing is deterministic (RSA PKCS#1 v1.5, ECDSA with RFC 6979), so
//! every replica sets the same cookies for a directory within a time bucket.

use super::Error;
use super::cloudfront::{self, HashAlgorithm, Parsed, PolicyKind, PrivateKey};
use super::encoding::cloudfront_b64_encode;

/// `CloudFront-Policy`: the custom policy, CloudFront base64.
pub const POLICY: &str = "CloudFront-Policy";
/// `CloudFront-Expires`: a canned policy's `DateLessThan`.
pub const EXPIRES: &str = "CloudFront-Expires";
/// `CloudFront-Signature`.
pub const SIGNATURE: &str = "CloudFront-Signature";
/// `CloudFront-Key-Pair-Id`.
pub const KEY_PAIR_ID: &str = "CloudFront-Key-Pair-Id";
/// `CloudFront-Hash-Algorithm` (`SHA256`; absent means SHA-1).
pub const HASH_ALGORITHM: &str = "CloudFront-Hash-Algorithm";

/// The names CloudFront reads, in the order edgesign sets them.
pub const NAMES: [&str; 5] = [POLICY, EXPIRES, SIGNATURE, KEY_PAIR_ID, HASH_ALGORITHM];

/// One set of signed cookies: `(name, value)` in the order they are set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSet(Vec<(&'static str, String)>);

impl CookieSet {
    /// The pairs, in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(n, v)| (*n, v.as_str()))
    }

    /// The value of cookie `name`, if the set has it.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The set as a `Cookie` request header value (`a=1; b=2`), which is also how a set is
    /// kept in the signature cache ([`CookieSet::from_header`] reads it back).
    pub fn header(&self) -> String {
        let mut out =
            String::with_capacity(self.0.iter().map(|(n, v)| n.len() + v.len() + 3).sum());
        for (n, v) in &self.0 {
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(n);
            out.push('=');
            out.push_str(v);
        }
        out
    }

    /// The set from [`CookieSet::header`]'s form; CloudFront's names only, others ignored.
    pub fn from_header(header: &str) -> CookieSet {
        CookieSet(
            header
                .split(';')
                .filter_map(|pair| {
                    let (n, v) = pair.trim().split_once('=')?;
                    let name = NAMES.iter().find(|k| **k == n)?;
                    Some((*name, v.to_owned()))
                })
                .collect(),
        )
    }

    /// One `Set-Cookie` header value per cookie: `Domain` when given (else a host-only
    /// cookie for the name the client asked), `Path=/`, `Secure`, `HttpOnly`,
    /// `SameSite=Lax`, and `Max-Age` in seconds (until the policy's `DateLessThan`).
    pub fn set_cookie_headers(&self, domain: Option<&str>, max_age: u64) -> Vec<String> {
        self.0
            .iter()
            .map(|(n, v)| {
                let domain = domain.map(|d| format!("; Domain={d}")).unwrap_or_default();
                format!(
                    "{n}={v}{domain}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}"
                )
            })
            .collect()
    }
}

/// Signs a cookie set. `resource` is the policy's `Resource` for a canned policy (one URL,
/// which the signature covers but the cookies do not carry); a custom policy carries its own.
pub fn sign(
    policy: &PolicyKind,
    resource: &str,
    key: &PrivateKey,
    key_pair_id: &str,
    hash: HashAlgorithm,
) -> Result<CookieSet, Error> {
    let mut pairs = Vec::with_capacity(4);
    let signature = match policy {
        PolicyKind::Canned { expires } => {
            pairs.push((EXPIRES, expires.to_string()));
            key.sign(
                hash,
                cloudfront::canned_policy(resource, *expires).as_bytes(),
            )?
        }
        PolicyKind::Custom(json) => {
            pairs.push((POLICY, cloudfront_b64_encode(json.as_bytes())));
            key.sign(hash, json.as_bytes())?
        }
    };
    pairs.push((SIGNATURE, cloudfront_b64_encode(&signature)));
    pairs.push((KEY_PAIR_ID, key_pair_id.to_owned()));
    if hash == HashAlgorithm::Sha256 {
        pairs.push((HASH_ALGORITHM, "SHA256".to_owned()));
    }
    Ok(CookieSet(pairs))
}

/// The CloudFront cookies of a request's `Cookie` headers, read like a signed URL's
/// parameters (into the same [`Parsed`], with no extra parameters). `None` when the request
/// carries none of CloudFront's cookies; a malformed, incomplete or repeated one is
/// `InvalidSignature` (two `CloudFront-Signature` cookies, say from two domains, are not
/// guessed between).
pub fn parse<'h>(headers: impl IntoIterator<Item = &'h str>) -> Option<Result<Parsed<'h>, Error>> {
    let mut found: [Option<&'h str>; 5] = [None; 5];
    let mut repeated = false;
    let mut any = false;
    for header in headers {
        for pair in header.split(';') {
            let Some((name, value)) = pair.trim().split_once('=') else {
                continue;
            };
            if let Some(i) = NAMES.iter().position(|n| *n == name) {
                any = true;
                repeated |= found[i].is_some();
                found[i] = Some(value);
            }
        }
    }
    if !any {
        return None;
    }
    Some(read(found, repeated))
}

fn read<'h>(found: [Option<&'h str>; 5], repeated: bool) -> Result<Parsed<'h>, Error> {
    let bad = Error::InvalidSignature;
    if repeated {
        return Err(bad("a CloudFront cookie is repeated"));
    }
    let [policy, expires, signature, key_pair_id, hash] = found;
    let expires = match expires {
        Some(e) => Some(
            e.parse::<u64>()
                .map_err(|_| bad("malformed CloudFront-Expires"))?,
        ),
        None => None,
    };
    let policy = match policy {
        Some(p) => Some(
            super::encoding::cloudfront_b64_decode(p).ok_or(bad("malformed CloudFront-Policy"))?,
        ),
        None => None,
    };
    if expires.is_some() == policy.is_some() {
        return Err(bad(
            "CloudFront cookies carry exactly one of CloudFront-Policy and CloudFront-Expires",
        ));
    }
    let signature = super::encoding::cloudfront_b64_decode(
        signature.ok_or(bad("missing CloudFront-Signature"))?,
    )
    .ok_or(bad("malformed CloudFront-Signature"))?;
    let key_pair_id = key_pair_id
        .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric()))
        .ok_or(bad("missing or malformed CloudFront-Key-Pair-Id"))?;
    let hash = match hash {
        None => HashAlgorithm::Sha1,
        Some(h) => HashAlgorithm::parse(h).ok_or(bad("unsupported CloudFront-Hash-Algorithm"))?,
    };
    Ok(Parsed {
        expires,
        policy,
        signature,
        key_pair_id,
        hash,
        params: Vec::new(),
    })
}

/// The directory of a raw key, as a cookie grant covers it: everything up to and including
/// its last `/` (`acme/videos/ep1/seg-001.ts` → `acme/videos/ep1/`); `""` for a key at the
/// top.
pub fn directory_of(raw_key: &str) -> &str {
    raw_key.rfind('/').map_or("", |i| &raw_key[..=i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_read_from_any_header_and_repeats_refused() {
        let sig = cloudfront_b64_encode(b"sig");
        let one = format!("a=b; CloudFront-Expires=10; CloudFront-Signature={sig}");
        let two = "CloudFront-Key-Pair-Id=K2JCJMDEHXQW5F; theme=dark";
        let parsed = parse([one.as_str(), two]).unwrap().unwrap();
        assert_eq!(parsed.expires, Some(10));
        assert_eq!(parsed.signature, b"sig");
        assert_eq!(parsed.key_pair_id, "K2JCJMDEHXQW5F");
        assert!(parse(["session=x; other=y"]).is_none());
        assert!(parse(std::iter::empty()).is_none());
        let twice = format!("{one}; CloudFront-Signature={sig}");
        assert!(parse([twice.as_str(), two]).unwrap().is_err());
        assert!(parse([one.as_str()]).unwrap().is_err(), "no key pair id");
        let both = format!("{one}; CloudFront-Policy=e30_");
        assert!(parse([both.as_str(), two]).unwrap().is_err());
        // Names are case-sensitive, as CloudFront's are.
        assert!(parse(["cloudfront-signature=x"]).is_none());
    }

    #[test]
    fn a_set_round_trips_through_its_header() {
        let set = CookieSet(vec![
            (POLICY, "eyJ9".into()),
            (SIGNATURE, "a~b-c_".into()),
            (KEY_PAIR_ID, "K1".into()),
        ]);
        assert_eq!(
            set.header(),
            "CloudFront-Policy=eyJ9; CloudFront-Signature=a~b-c_; CloudFront-Key-Pair-Id=K1"
        );
        assert_eq!(CookieSet::from_header(&set.header()), set);
        assert_eq!(
            set.set_cookie_headers(Some(".example.com"), 60)[1],
            "CloudFront-Signature=a~b-c_; Domain=.example.com; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=60"
        );
        assert_eq!(
            set.set_cookie_headers(None, 5)[2],
            "CloudFront-Key-Pair-Id=K1; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=5"
        );
    }

    #[test]
    fn a_key_s_directory() {
        assert_eq!(
            directory_of("acme/videos/ep1/seg-001.ts"),
            "acme/videos/ep1/"
        );
        assert_eq!(directory_of("top.m3u8"), "");
        assert_eq!(directory_of("a/"), "a/");
    }
}
