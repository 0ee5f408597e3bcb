//! Who is calling, and what they may read. Pure: headers in, a [`Principal`] out; a principal
//! and a key in, a decision out. The proxy calls [`authenticate`] once per request and
//! [`policy::may_read`] wherever a key is about to be signed or served.
//!
//! - [`api_key`]: `sk_…` / `pk_…` keys, stored as SHA-256, compared in constant time.
//! - [`policy`]: route access (`public` / `authenticated` / `org`) and org scope.

pub mod api_key;
pub mod policy;

use http::HeaderMap;

use crate::Error;
use crate::config::{ApiKeyKind, Auth};

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
            Principal::ApiKey { org, .. } => org.as_deref(),
        }
    }
}

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
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Authenticates a request from its headers. No credentials → `Anonymous`; credentials that
/// do not check out → `401 unauthorized` (a bad key is never silently anonymous).
pub fn authenticate(auth: &Auth, headers: &HeaderMap) -> Result<Principal, Error> {
    let Some(token) = bearer(headers) else {
        if headers.contains_key(http::header::AUTHORIZATION) {
            return Err(Error::Unauthorized(
                "unsupported Authorization scheme; use Bearer",
            ));
        }
        return Ok(Principal::Anonymous);
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
    Err(Error::Unauthorized("invalid credentials"))
}
