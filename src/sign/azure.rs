//! Azure Blob service SAS with the storage account key, for the SAS versions whose blob
//! string-to-sign has sixteen lines (`2020-12-06` through `2025-07-05`): `sp`, `st`, `se`, the
//! canonicalized resource `/blob/<account>/<container>/<blob, decoded>`, `si`, `sip`, `spr`,
//! `sv`, `sr`, the snapshot time, `ses`, `rscc`, `rscd`, `rsce`, `rscl`, `rsct`, joined by
//! newlines (an absent one is an empty line). `sig` is the base64 HMAC-SHA256 of it under the
//! base64-decoded account key.
//!
//! The token is written in the order `azure-storage-blob` writes it (`st se sp sip spr sv sr
//! rscc rscd rsce rscl rsct sig`), every value percent-encoded keeping `A-Z a-z 0-9 - . _ ~`
//! and `/`. A user-delegation SAS (`skoid` and friends) is recognised but cannot be verified
//! without the delegation key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::encoding::{is_unreserved, percent_decode};
use super::{Error, keyed};

type HmacSha256 = hmac::Hmac<Sha256>;

/// The SAS version edgesign signs with unless `sas_version` says otherwise.
pub const DEFAULT_VERSION: &str = "2025-07-05";
/// The oldest version with this string-to-sign.
pub const OLDEST_VERSION: &str = "2020-12-06";
/// The newest version edgesign implements.
pub const NEWEST_VERSION: &str = "2025-07-05";

/// Whether edgesign implements SAS version `v` (a `YYYY-MM-DD` from `2020-12-06` to
/// `2025-07-05`: the blob service SAS string-to-sign is the same across them).
pub fn supports_version(v: &str) -> bool {
    let b = v.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
        && (OLDEST_VERSION..=NEWEST_VERSION).contains(&v)
}

/// An account key.
#[derive(Clone)]
pub struct AccountKey(Vec<u8>);

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountKey(**redacted**)")
    }
}

impl AccountKey {
    /// The key from its base64 form, as the portal shows it. The error holds no key.
    pub fn from_base64(b64: &str) -> Result<AccountKey, String> {
        STANDARD
            .decode(b64.trim())
            .ok()
            .filter(|k| !k.is_empty())
            .map(AccountKey)
            .ok_or_else(|| "not a base64 account key".to_owned())
    }

    /// The base64 signature of `string_to_sign`.
    pub fn sign(&self, string_to_sign: &str) -> String {
        let mut mac: HmacSha256 = keyed(&self.0);
        mac.update(string_to_sign.as_bytes());
        STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Whether `sig` (decoded from the URL) is this key's over `string_to_sign`.
    pub fn verifies(&self, string_to_sign: &str, sig: &str) -> bool {
        self.sign(string_to_sign)
            .as_bytes()
            .ct_eq(sig.as_bytes())
            .into()
    }
}

/// The fields of a blob service SAS (decoded values; `None` is absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    /// `sp`.
    pub permissions: String,
    /// `st`.
    pub start: Option<String>,
    /// `se`.
    pub expiry: String,
    /// `si`.
    pub identifier: Option<String>,
    /// `sip`.
    pub ip: Option<String>,
    /// `spr`.
    pub protocol: Option<String>,
    /// `sv`.
    pub version: String,
    /// `sr`.
    pub resource: String,
    /// `snapshot` time signed for `sr=bs` (none for `sr=b`).
    pub snapshot: Option<String>,
    /// `ses`.
    pub encryption_scope: Option<String>,
    /// `rscc`, `rscd`, `rsce`, `rscl`, `rsct`.
    pub overrides: [Option<String>; 5],
}

/// The override parameters, in the string-to-sign's (and the token's) order.
pub const OVERRIDES: [&str; 5] = ["rscc", "rscd", "rsce", "rscl", "rsct"];

/// `/blob/<account>/<container>/<blob>`, the blob name decoded.
pub fn canonicalized_resource(account: &str, container: &str, blob: &str) -> String {
    format!("/blob/{account}/{container}/{blob}")
}

/// Stage 1: the string to sign.
pub fn string_to_sign(f: &Fields, canonicalized_resource: &str) -> String {
    let o = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut lines: Vec<String> = vec![
        f.permissions.clone(),
        o(&f.start),
        f.expiry.clone(),
        canonicalized_resource.to_owned(),
        o(&f.identifier),
        o(&f.ip),
        o(&f.protocol),
        f.version.clone(),
        f.resource.clone(),
        o(&f.snapshot),
        o(&f.encryption_scope),
    ];
    lines.extend(f.overrides.iter().map(o));
    lines.join("\n")
}

fn push_encoded(out: &mut String, value: &str) {
    for &b in value.as_bytes() {
        if is_unreserved(b) || b == b'/' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Stage 2: the token (the query after `?`), in `azure-storage-blob`'s order.
pub fn token(f: &Fields, sig: &str) -> String {
    let mut out = String::with_capacity(256);
    let mut put = |name: &str, value: Option<&str>| {
        if let Some(v) = value {
            if !out.is_empty() {
                out.push('&');
            }
            out.push_str(name);
            out.push('=');
            push_encoded(&mut out, v);
        }
    };
    put("st", f.start.as_deref());
    put("se", Some(&f.expiry));
    put("sp", Some(&f.permissions));
    put("sip", f.ip.as_deref());
    put("spr", f.protocol.as_deref());
    put("sv", Some(&f.version));
    put("ses", f.encryption_scope.as_deref());
    put("sr", Some(&f.resource));
    put("si", f.identifier.as_deref());
    for (name, v) in OVERRIDES.iter().zip(&f.overrides) {
        put(name, v.as_deref());
    }
    put("sig", Some(sig));
    out
}

/// Signs `f` for `resource` (see [`canonicalized_resource`]) with `key`: the token.
pub fn sign(f: &Fields, resource: &str, key: &AccountKey) -> String {
    token(f, &key.sign(&string_to_sign(f, resource)))
}

/// Unix seconds → `YYYY-MM-DDTHH:MM:SSZ`, the form SAS times take.
pub fn time(unix: u64) -> String {
    super::encoding::rfc3339(unix)
}

/// A SAS time (`YYYY-MM-DD`, `YYYY-MM-DDTHH:MMZ`, `YYYY-MM-DDTHH:MM:SSZ`, with an optional
/// fraction of a second) → Unix seconds.
pub fn parse_time(s: &str) -> Option<u64> {
    let (date, rest) = s.split_at_checked(10)?;
    let compact: String = date.split('-').collect();
    if compact.len() != 8 || date.as_bytes().get(4) != Some(&b'-') {
        return None;
    }
    let clock = match rest {
        "" => "000000".to_owned(),
        r => {
            let r = r.strip_prefix('T')?.strip_suffix('Z')?;
            let r = r.split_once('.').map_or(r, |(whole, frac)| {
                if frac.bytes().all(|b| b.is_ascii_digit()) {
                    whole
                } else {
                    "bad"
                }
            });
            match r.len() {
                5 => format!("{}00", r.replace(':', "")),
                8 => r.replace(':', ""),
                _ => return None,
            }
        }
    };
    super::encoding::parse_amz_date(&format!("{compact}T{clock}Z"))
}

/// The SAS of a URL that arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The whole raw query.
    pub query: &'a str,
    /// The signed fields, decoded.
    pub fields: Fields,
    /// `sig`, decoded.
    pub sig: String,
    /// `se` as Unix seconds.
    pub expires_at: u64,
    /// `st` as Unix seconds.
    pub starts_at: Option<u64>,
    /// A user-delegation SAS (`skoid` present): signed with a delegation key edgesign
    /// does not hold.
    pub user_delegation: bool,
    /// The raw segments that are not part of the SAS, in URL order.
    pub extra: Vec<&'a str>,
}

/// Whether a SAS's `sip` (one IPv4 address, or a range `first-last`) admits `client`.
/// Anything else admits nobody: a condition edgesign cannot read fails closed.
pub fn ip_admits(sip: &str, client: std::net::IpAddr) -> bool {
    let std::net::IpAddr::V4(client) = client.to_canonical() else {
        return false;
    };
    let (first, last) = sip.split_once('-').unwrap_or((sip, sip));
    match (
        first.trim().parse::<std::net::Ipv4Addr>(),
        last.trim().parse::<std::net::Ipv4Addr>(),
    ) {
        (Ok(first), Ok(last)) => first <= client && client <= last,
        _ => false,
    }
}

/// Whether `query` carries a SAS (`sig` with `sv`).
pub fn is_sas(query: &str) -> bool {
    let has = |n: &str| {
        query
            .split('&')
            .any(|s| s.split_once('=').map_or(s, |(k, _)| k) == n)
    };
    has("sig") && has("sv")
}

/// The SAS parameters edgesign reads or signs (others are kept as extra segments).
const SAS_NAMES: [&str; 17] = [
    "sv", "st", "se", "sr", "sp", "sip", "spr", "si", "ses", "sig", "rscc", "rscd", "rsce", "rscl",
    "rsct", "skoid", "snapshot",
];

/// Reads the SAS of `query`. A missing, repeated or malformed field is `InvalidSignature`.
pub fn parse(query: &str) -> Result<Parsed<'_>, Error> {
    let mut got: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    let mut extra = Vec::new();
    for seg in query.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = seg.split_once('=').unwrap_or((seg, ""));
        if SAS_NAMES.contains(&k) {
            let v = String::from_utf8(percent_decode(v).into_owned())
                .map_err(|_| Error::InvalidSignature("a SAS value is not UTF-8"))?;
            if got.insert(k, v).is_some() {
                return Err(Error::InvalidSignature("a SAS parameter is repeated"));
            }
        } else if k.starts_with("sk") || k.starts_with("sa") || k.starts_with("su") || k == "sdd" {
            // Delegation fields (sktid, skt, ske, sks, skv, saoid, suoid, scid…) and other
            // signed fields this version of edgesign does not sign.
            got.insert("skoid", String::new());
        } else {
            extra.push(seg);
        }
    }
    let mut take = |k: &str| got.remove(k);
    let user_delegation = take("skoid").is_some();
    let sig = take("sig").ok_or(Error::InvalidSignature("the SAS has no sig"))?;
    let version = take("sv").ok_or(Error::InvalidSignature("the SAS has no sv"))?;
    let expiry = take("se").ok_or(Error::InvalidSignature("the SAS has no se"))?;
    let expires_at = parse_time(&expiry).ok_or(Error::InvalidSignature("bad se"))?;
    let start = take("st");
    let starts_at = match &start {
        Some(s) => Some(parse_time(s).ok_or(Error::InvalidSignature("bad st"))?),
        None => None,
    };
    let fields = Fields {
        permissions: take("sp").ok_or(Error::InvalidSignature("the SAS has no sp"))?,
        start,
        expiry,
        identifier: take("si"),
        ip: take("sip"),
        protocol: take("spr"),
        version,
        resource: take("sr").ok_or(Error::InvalidSignature("the SAS has no sr"))?,
        snapshot: take("snapshot"),
        encryption_scope: take("ses"),
        overrides: OVERRIDES.map(&mut take),
    };
    Ok(Parsed {
        query,
        fields,
        sig,
        expires_at,
        starts_at,
        user_delegation,
        extra,
    })
}

/// Verifies `parsed` for the blob `resource` (see [`canonicalized_resource`]) with `key`.
/// Expiry, start, protocol and address are the caller's to judge.
pub fn verify(parsed: &Parsed<'_>, resource: &str, key: &AccountKey) -> Result<(), Error> {
    if parsed.user_delegation {
        return Err(Error::InvalidSignature(
            "a user-delegation SAS cannot be verified without its delegation key",
        ));
    }
    if !supports_version(&parsed.fields.version) {
        return Err(Error::InvalidSignature(
            "a SAS version edgesign does not implement",
        ));
    }
    if parsed.fields.resource != "b" && parsed.fields.resource != "bs" {
        return Err(Error::InvalidSignature("not a blob SAS"));
    }
    if key.verifies(&string_to_sign(&parsed.fields, resource), &parsed.sig) {
        Ok(())
    } else {
        Err(Error::InvalidSignature("the signature does not verify"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_admits_one_address_or_a_range() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(ip_admits("168.1.5.65", ip("168.1.5.65")));
        assert!(!ip_admits("168.1.5.65", ip("168.1.5.66")));
        assert!(ip_admits("168.1.5.60-168.1.5.70", ip("168.1.5.70")));
        assert!(ip_admits("168.1.5.60-168.1.5.70", ip("::ffff:168.1.5.61")));
        assert!(!ip_admits("168.1.5.60-168.1.5.70", ip("168.1.5.71")));
        assert!(!ip_admits("168.1.5.60-168.1.5.70", ip("2001:db8::1")));
        assert!(!ip_admits("not an address", ip("168.1.5.60")));
    }
}
