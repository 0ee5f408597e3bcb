//! Who is calling, and what they may read. Pure: headers in, a [`Principal`] out; a principal
//! and a key in, a decision out. The proxy calls [`authenticate`] once per request and
//! [`policy::may_read`] wherever a key is about to be signed or served.
//!
//! - [`api_key`]: `sk_…` / `pk_…` keys, stored as SHA-256, compared in constant time.
//! - [`jwt`]: HS256 / RS256 bearer tokens (header or cookie), `exp`, `nbf`, `iss`, `aud`.
//! - [`keypath`]: an object key in every form an origin or a front might read it.
//! - [`overrides`]: which `response-*` overrides a stable link may carry.
//! - [`policy`]: route access (`public` / `authenticated` / `org`) and org scope.

pub mod api_key;
pub mod jwks;
pub mod jwt;
pub mod keypath;
pub mod overrides;
pub mod policy;
pub mod revoke;

use http::HeaderMap;

use crate::Error;
use crate::secret::Secret;
use jwks::JwkSet;

/// `secret` or `public` API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyKind {
    /// `sk_…`: may mint.
    Secret,
    /// `pk_…`: may read.
    Public,
}

/// One API key, stored as its SHA-256.
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// SHA-256 of the key.
    pub sha256: [u8; 32],
    /// secret | public.
    pub kind: ApiKeyKind,
    /// Org scope.
    pub org: Option<String>,
}

/// `[auth]`.
#[derive(Debug)]
pub struct Auth {
    /// JWT claim naming the org.
    pub org_claim: String,
    /// Cookie that may carry a JWT.
    pub cookie: String,
    /// HS256 secret.
    pub jwt_hs256_secret: Option<Secret>,
    /// RS256 public keys.
    pub jwt_rs256_public_keys: Vec<rsa::RsaPublicKey>,
    /// Where RS256 keys are published by `kid` (`jwks_url`), and how often they are read
    /// again.
    pub jwks: Option<JwksSource>,
    /// Required `iss`.
    pub issuer: Option<String>,
    /// Required `aud`.
    pub audience: Option<String>,
    /// API keys.
    pub api_keys: Vec<ApiKey>,
}

/// `auth.jwks_url` and `auth.jwks_refresh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksSource {
    /// The JWKS document's URL (http or https).
    pub url: String,
    /// How often it is fetched again.
    pub refresh: std::time::Duration,
}

/// The `kid` of the request's RS256 token when `jwks` does not hold it (a fresh copy of the
/// key set may know it).
pub fn unknown_kid(auth: &Auth, headers: &HeaderMap, jwks: &JwkSet) -> Option<String> {
    let token = bearer(headers).or_else(|| cookie(headers, &auth.cookie))?;
    jwt::unknown_kid(token, jwks)
}

/// An authenticated (or anonymous) caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials.
    Anonymous,
    /// An API key from config.
    ApiKey {
        /// secret (`sk_`) or public (`pk_`).
        kind: ApiKeyKind,
        /// Org scope; `None` reads everything.
        org: Option<String>,
        /// Index in `[[auth.api_keys]]`, a stable, non-secret identity for rate limits and logs.
        index: usize,
    },
    /// A verified JWT.
    Jwt {
        /// `sub`.
        subject: Option<String>,
        /// The org claim.
        org: Option<String>,
    },
}

impl Principal {
    /// Whether any credentials were presented and accepted.
    pub fn is_authenticated(&self) -> bool {
        !matches!(self, Principal::Anonymous)
    }

    /// The org this caller is confined to, if any.
    pub fn org(&self) -> Option<&str> {
        match self {
            Principal::Anonymous => None,
            Principal::ApiKey { org, .. } | Principal::Jwt { org, .. } => org.as_deref(),
        }
    }

    /// An API key configured without an org: reads every key. (A JWT without an org claim is
    /// *not* an admin: an identity provider that forgets the claim must not grant everything.)
    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::ApiKey { org: None, .. })
    }

    /// Whether this caller may mint URLs through the signing APIs: secret keys and users
    /// with a session token; public keys and anonymous callers only read.
    pub fn may_mint(&self) -> bool {
        matches!(
            self,
            Principal::ApiKey {
                kind: ApiKeyKind::Secret,
                ..
            } | Principal::Jwt { .. }
        )
    }

    /// The identity a rate limit counts against; anonymous callers count per address
    /// (`ip`, an IPv6 one by its `/ipv6_prefix` network, see [`RateKey::address`]). Never a
    /// secret: API keys by their config index, tokens by org and subject.
    pub fn rate_key(&self, ip: std::net::IpAddr, ipv6_prefix: u8) -> RateKey {
        match self {
            Principal::Anonymous => RateKey::address(ip, ipv6_prefix),
            Principal::ApiKey { index, .. } => RateKey::ApiKey(*index),
            Principal::Jwt { subject, org } => RateKey::Token(
                format!(
                    "{}:{}",
                    org.as_deref().unwrap_or(""),
                    subject.as_deref().unwrap_or("")
                )
                .into(),
            ),
        }
    }
}

/// What a rate-limit bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// An anonymous caller's (or a failed login's) client address; for IPv6, its network.
    Address(std::net::IpAddr),
    /// An API key, by its index in the config.
    ApiKey(usize),
    /// A token's `org:subject`.
    Token(Box<str>),
}

impl RateKey {
    /// The bucket's name in the fleet's Redis, the same on every replica: an address as
    /// written, an API key by the first 16 hex digits of its SHA-256 (never the key), a
    /// token by `org:subject`.
    pub fn fleet_name(&self, auth: &Auth) -> String {
        match self {
            RateKey::Address(ip) => format!("ip:{ip}"),
            RateKey::ApiKey(index) => match auth.api_keys.get(*index) {
                Some(k) => format!("key:{}", &hex::encode(k.sha256)[..16]),
                None => format!("key:#{index}"),
            },
            RateKey::Token(id) => format!("jwt:{id}"),
        }
    }

    /// The bucket of a client address: an IPv4 address alone, an IPv6 address by its
    /// `/ipv6_prefix` network. One host holds a whole /64 (RFC 4291 §2.5.1 interface
    /// identifiers; privacy addresses rotate inside it), so per-address buckets would let a
    /// single client take 2^64 budgets.
    pub fn address(ip: std::net::IpAddr, ipv6_prefix: u8) -> RateKey {
        RateKey::Address(match ip.to_canonical() {
            std::net::IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let keep = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - keep).unwrap_or(0);
                std::net::IpAddr::V6((bits & mask).into())
            }
            v4 => v4,
        })
    }
}

/// The value of cookie `name`, if the request carries it.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Header names as constants: a `&str` name is parsed and checked again on every lookup.
static X_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");
static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// The bearer credential of a request: `Authorization: Bearer <token>` or `X-Api-Key`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let (scheme, token) = v.trim().split_once(' ')?;
        return scheme.eq_ignore_ascii_case("bearer").then(|| token.trim());
    }
    headers
        .get(&X_API_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Authenticates a request from its headers at `now`: `Authorization: Bearer` (API key or
/// JWT), `X-Api-Key`, or the session cookie (JWT). No credentials → `Anonymous`; credentials
/// that do not check out → `401 unauthorized` (a bad key is never silently anonymous).
pub fn authenticate(
    auth: &Auth,
    headers: &HeaderMap,
    now: u64,
    jwks: &JwkSet,
) -> Result<Principal, Error> {
    let token = match bearer(headers) {
        Some(t) => t,
        None if headers.contains_key(http::header::AUTHORIZATION) => {
            return Err(Error::Unauthorized(
                "unsupported Authorization scheme; use Bearer",
            ));
        }
        // A cookie is ambient: a stale session must not break capability URLs or public
        // routes, so a cookie that does not verify counts as no credentials.
        None => {
            return Ok(match cookie(headers, &auth.cookie) {
                Some(t) if jwt::looks_like_jwt(t) => jwt::verify(auth, t, now, jwks)
                    .map(|c| Principal::Jwt {
                        subject: c.subject,
                        org: c.org,
                    })
                    .unwrap_or(Principal::Anonymous),
                _ => Principal::Anonymous,
            });
        }
    };
    if token.starts_with("sk_") || token.starts_with("pk_") {
        return api_key::lookup(&auth.api_keys, token)
            .map(|(index, k)| Principal::ApiKey {
                kind: k.kind,
                org: k.org.clone(),
                index,
            })
            .ok_or(Error::Unauthorized("invalid API key"));
    }
    if jwt::looks_like_jwt(token) {
        let claims = jwt::verify(auth, token, now, jwks)?;
        return Ok(Principal::Jwt {
            subject: claims.subject,
            org: claims.org,
        });
    }
    Err(Error::Unauthorized("invalid credentials"))
}

/// The client's address: the peer, or — when the peer is a trusted proxy — the rightmost
/// `X-Forwarded-For` hop that is not itself a trusted proxy. Untrusted peers cannot choose
/// their own address (and so their own rate-limit bucket). Addresses are compared in
/// canonical form, so an IPv4 peer on a dual-stack listener (`::ffff:10.0.0.1`) is the same
/// peer as `10.0.0.1`. A hop that cannot be read (not an address, an address with a port
/// and brackets is read) ends the walk at [`UNREADABLE_CLIENT`]: the hops before it are
/// whatever the client wrote, so none of them is believed.
pub fn client_ip(
    peer: std::net::IpAddr,
    headers: &HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    for value in headers.get_all(&X_FORWARDED_FOR).iter().rev() {
        let Ok(value) = value.to_str() else {
            return UNREADABLE_CLIENT;
        };
        for hop in value.rsplit(',') {
            match forwarded_hop(hop.trim()) {
                Some(ip) if is_trusted(&ip) => continue,
                Some(ip) => return ip,
                None => return UNREADABLE_CLIENT,
            }
        }
    }
    peer
}

/// Where a request comes from when a trusted proxy forwarded a hop edgesign cannot read: an
/// address that no configured network holds (and one rate-limit bucket for all such
/// requests).
pub const UNREADABLE_CLIENT: std::net::IpAddr =
    std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);

/// One `X-Forwarded-For` hop: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or
/// `[2001:db8::1]:5678`, in canonical form.
fn forwarded_hop(hop: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = hop.parse::<std::net::IpAddr>() {
        return Some(ip.to_canonical());
    }
    hop.parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "1.2.3.4, 6.6.6.6, 10.0.0.2".parse().unwrap(),
        );
        assert_eq!(
            client_ip("10.0.0.1".parse().unwrap(), &h, &trusted).to_string(),
            "6.6.6.6"
        );
        assert_eq!(
            client_ip("8.8.8.8".parse().unwrap(), &h, &trusted).to_string(),
            "8.8.8.8"
        );
        assert_eq!(
            client_ip("10.0.0.1".parse().unwrap(), &HeaderMap::new(), &trusted).to_string(),
            "10.0.0.1"
        );
    }

    #[test]
    fn forwarded_for_survives_dual_stack_ports_and_garbage() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let with = |xff: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-for", xff.parse().unwrap());
            h
        };
        // A load balancer reached over a dual-stack listener is still trusted.
        assert_eq!(
            client_ip(ip("::ffff:10.0.1.5"), &with("203.0.113.9"), &trusted),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("::ffff:8.8.8.8"), &with("203.0.113.9"), &trusted),
            ip("8.8.8.8")
        );
        // Hops with ports, brackets, mapped forms.
        for (xff, client) in [
            ("6.6.6.6, 203.0.113.9:5123", "203.0.113.9"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("::ffff:203.0.113.9, 10.0.0.2", "203.0.113.9"),
        ] {
            assert_eq!(
                client_ip(ip("10.0.0.1"), &with(xff), &trusted),
                ip(client),
                "{xff}"
            );
        }
        // A hop the proxy wrote that cannot be read: nothing to its left is believed, so a
        // client cannot slip a private address in front of it.
        for xff in ["10.0.0.7, unknown", "10.0.0.7, ", "10.0.0.7,,10.0.0.2"] {
            assert_eq!(
                client_ip(ip("10.0.0.1"), &with(xff), &trusted),
                UNREADABLE_CLIENT,
                "{xff}"
            );
        }
        // Several header lines are one list, read from the last.
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "10.0.0.5".parse().unwrap());
        h.append("x-forwarded-for", "198.51.100.1, 10.0.0.3".parse().unwrap());
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("198.51.100.1"));
    }
}
