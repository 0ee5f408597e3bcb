//! JWT bearer tokens (RFC 7519) with HS256 and RS256 (RFC 7518 §3.2, §3.3), verified with
//! the card's `hmac` and `rsa` crates. Pure: the token, the config and `now` in; claims out.
//!
//! Only the two algorithms are accepted, and each only with its own kind of key: `alg: none`
//! is refused, and an HS256 token is never checked against an RSA public key (the classic
//! algorithm-confusion attack), because HS256 uses `jwt_hs256_secret` and nothing else.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rsa::signature::Verifier;
use serde_json::Value;
use sha2::Sha256;

use super::Auth;
use super::jwks::JwkSet;
use crate::Error;

/// Clock skew allowed on `exp` and `nbf`.
pub const LEEWAY: u64 = 30;
/// Longest token considered (a bound on work for hostile input).
pub const MAX_TOKEN_LEN: usize = 8192;

/// What a verified token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// `sub`, when present.
    pub subject: Option<String>,
    /// The org claim (`auth.org_claim`), when present.
    pub org: Option<String>,
}

fn b64(part: &str) -> Result<Vec<u8>, Error> {
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| Error::Unauthorized("malformed token"))
}

/// Whether `token` looks like a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

/// The `kid` of an RS256 token that `jwks` does not hold, when the token names one: the
/// case in which a fresh copy of the key set may help.
pub fn unknown_kid(token: &str, jwks: &JwkSet) -> Option<String> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let header: Value = serde_json::from_slice(&b64(token.split('.').next()?).ok()?).ok()?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return None;
    }
    let kid = header.get("kid")?.as_str()?;
    (jwks.get(kid).is_none() && kid.len() <= 256).then(|| kid.to_owned())
}

/// Verifies signature, `exp`, `nbf`, and `iss` / `aud` when configured. RS256 tokens are
/// checked against the key `jwks` holds under their `kid`, else against the configured
/// public key files.
pub fn verify(auth: &Auth, token: &str, now: u64, jwks: &JwkSet) -> Result<Claims, Error> {
    let bad = Error::Unauthorized;
    if token.len() > MAX_TOKEN_LEN {
        return Err(bad("token too long"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("malformed token"));
    };
    let header: Value =
        serde_json::from_slice(&b64(h)?).map_err(|_| bad("malformed token header"))?;
    // RFC 7515 §4.1.11: a recipient must refuse a token whose `crit` names extensions it
    // does not understand, and this one understands none.
    if header.get("crit").is_some() {
        return Err(bad(
            "token header has crit extensions, which are not supported",
        ));
    }
    let signing_input = &token[..h.len() + 1 + p.len()];
    let sig = b64(s)?;
    match header.get("alg").and_then(Value::as_str) {
        Some("HS256") => {
            let secret = auth
                .jwt_hs256_secret
                .as_ref()
                .ok_or(bad("HS256 tokens are not accepted"))?;
            let mut mac: Hmac<Sha256> = crate::sign::keyed(secret.expose().as_bytes());
            mac.update(signing_input.as_bytes());
            mac.verify_slice(&sig)
                .map_err(|_| bad("invalid token signature"))?;
        }
        Some("RS256") => {
            let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice())
                .map_err(|_| bad("invalid token signature"))?;
            let check = |k: &rsa::RsaPublicKey| {
                rsa::pkcs1v15::VerifyingKey::<Sha256>::new(k.clone())
                    .verify(signing_input.as_bytes(), &sig)
                    .is_ok()
            };
            let by_kid = header
                .get("kid")
                .and_then(Value::as_str)
                .and_then(|kid| jwks.get(kid));
            let ok = match by_kid {
                Some(k) => check(k),
                None => auth.jwt_rs256_public_keys.iter().any(check),
            };
            if !ok {
                return Err(bad("invalid token signature"));
            }
        }
        _ => return Err(bad("unsupported token algorithm")),
    }
    let claims: Value =
        serde_json::from_slice(&b64(p)?).map_err(|_| bad("malformed token claims"))?;
    let exp = claims
        .get("exp")
        .and_then(Value::as_u64)
        .ok_or(bad("token has no exp"))?;
    if now >= exp.saturating_add(LEEWAY) {
        return Err(bad("token expired"));
    }
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_u64().ok_or(bad("malformed nbf"))?;
        if now.saturating_add(LEEWAY) < nbf {
            return Err(bad("token not valid yet"));
        }
    }
    if let Some(iss) = &auth.issuer
        && claims.get("iss").and_then(Value::as_str) != Some(iss.as_str())
    {
        return Err(bad("token issuer not accepted"));
    }
    if let Some(aud) = &auth.audience {
        let ok = match claims.get("aud") {
            Some(Value::String(a)) => a == aud,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(aud.as_str())),
            _ => false,
        };
        if !ok {
            return Err(bad("token audience not accepted"));
        }
    }
    Ok(Claims {
        subject: optional_text(&claims, "sub", "the token's sub is not a string")?,
        org: org_claim(&claims, &auth.org_claim)?,
    })
}

/// A claim that may be absent but, when present, must be a string: a claim of another type
/// is never read as "absent" (for `sub` that would merge rate-limit buckets and identities).
fn optional_text(claims: &Value, name: &str, why: &'static str) -> Result<Option<String>, Error> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Error::Unauthorized(why)),
    }
}

/// The org claim. Absent means no org (which is not an admin); present, it must be a usable
/// scope: a non-empty string that is one path segment. A list (Keycloak's `organization`), a
/// number, an object, `true`, `""` or `"a/b"` would otherwise become no scope, or a scope
/// that `//` walks out of, and so read other orgs' objects.
fn org_claim(claims: &Value, name: &str) -> Result<Option<String>, Error> {
    let bad = Error::Unauthorized("the token's org claim is not a single org name");
    match optional_text(
        claims,
        name,
        "the token's org claim is not a single org name",
    )? {
        None => {
            if claims.get(name).is_some() {
                return Err(bad); // `null`: present but not a name.
            }
            Ok(None)
        }
        Some(org) if valid_org(&org) => Ok(Some(org)),
        Some(_) => Err(bad),
    }
}

/// Whether `org` can scope keys: one path segment of letters, digits, `.`, `_` and `-`, not
/// starting with `.`. Nothing a front could decode (`%`), split (`/`, `\`), read as a path
/// parameter (`;`) or a dot segment, and no `:`, which separates org from subject in rate-limit
/// identities.
pub fn valid_org(org: &str) -> bool {
    !org.is_empty()
        && !org.starts_with('.')
        && org
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_org_claim_name_is_configurable() {
        let secret = "an-hs256-secret-that-is-long-enough-0123456789";
        let auth = Auth {
            org_claim: "https://example.com/tenant".into(),
            cookie: "s".into(),
            jwt_hs256_secret: Some(crate::secret::Secret::new(secret)),
            jwt_rs256_public_keys: vec![],
            jwks: None,
            issuer: None,
            audience: None,
            api_keys: vec![],
        };
        let b64 = |v: &str| URL_SAFE_NO_PAD.encode(v);
        let head = b64(r#"{"alg":"HS256"}"#);
        let body = b64(r#"{"exp":2000000000,"org":"wrong","https://example.com/tenant":"acme"}"#);
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{head}.{body}").as_bytes());
        let token = format!(
            "{head}.{body}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        let claims = verify(&auth, &token, 1_900_000_000, &JwkSet::default()).unwrap();
        assert_eq!(claims.org.as_deref(), Some("acme"));
    }
}
