//! Who may read which object key. Called before any signing or serving.
//!
//! Every check here judges the key in every form an origin or a front might read it
//! ([`keypath`]): a key that climbs above its root is refused, and a scope holds only if it
//! holds for the key as written and resolved.

use super::Principal;
use super::keypath::{self, Judged};
use crate::Error;
use crate::route::Access;

/// How far in the future a URL's validity may start (SigV4 `X-Amz-Date`, CloudFront
/// `DateGreaterThan`) and still be served: S3 allows 15 minutes of clock skew.
pub const CLOCK_SKEW: u64 = 900;

/// What to do with a genuine signed URL at `now` (the table in docs/http.md, signed URLs on a route).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not valid yet, even allowing for clock skew: refused.
    NotYetValid,
    /// Valid: served as it is (the URL is a capability).
    Serve,
    /// Expired, but inside the route's `stale_grace`: re-signed without credentials.
    RenewInGrace,
    /// Expired: re-signed only for a caller who may read the key.
    RenewForCaller,
}

/// The decision for a genuine URL valid from `valid_from` (when it says) until
/// `expires_at`, on a route whose `stale_grace` is that many seconds.
pub fn verdict(expires_at: u64, valid_from: Option<u64>, now: u64, stale_grace: u64) -> Verdict {
    if valid_from.is_some_and(|t| t > now.saturating_add(CLOCK_SKEW)) {
        Verdict::NotYetValid
    } else if now < expires_at {
        Verdict::Serve
    } else if now < expires_at.saturating_add(stale_grace) {
        Verdict::RenewInGrace
    } else {
        Verdict::RenewForCaller
    }
}

/// Whether every form of `key` lies under one of `prefixes` (an origin's `public_prefixes`).
pub fn under_any(prefixes: &[String], key: &Judged<'_>) -> bool {
    prefixes.iter().any(|p| key.all_start_with(p.as_bytes()))
}

/// Whether `principal` may read everything under `raw_prefix` (a CloudFront wildcard
/// policy's fixed part, relative to the origin): admins always, org callers inside `{org}/`
/// (in every form the prefix might take).
pub fn may_read_prefix(principal: &Principal, raw_prefix: &str) -> Result<(), Error> {
    let prefix = keypath::judge_wildcard_prefix(raw_prefix)?;
    if principal.is_admin() {
        return Ok(());
    }
    match principal.org() {
        Some(org) if prefix.all_start_with(format!("{org}/").as_bytes()) => Ok(()),
        _ => Err(Error::Forbidden(
            "the URL's policy covers keys outside the caller's org",
        )),
    }
}

/// Whether `principal` may read `raw_key` (as it appears in the path) on a route with
/// `access`. An org-scoped caller reads only keys under `{org}/` — compared on the decoded
/// key, since `acme%2Fx` and `acme/x` name the same S3 object, and on its resolved forms,
/// since `acme/../other/x` names another org's object wherever dot segments are resolved.
pub fn may_read(access: Access, principal: &Principal, raw_key: &str) -> Result<(), Error> {
    let key = keypath::judge(raw_key)?;
    match access {
        Access::Public => Ok(()),
        _ if !principal.is_authenticated() => Err(Error::Unauthorized("credentials required")),
        Access::Authenticated => in_scope(principal, &key),
        Access::Org => match principal.org() {
            Some(_) => in_scope(principal, &key),
            None if principal.is_admin() => Ok(()),
            None => Err(Error::Forbidden("the caller belongs to no org")),
        },
    }
}

/// An org-scoped principal stays inside `{org}/` on every route that needs credentials.
fn in_scope(principal: &Principal, key: &Judged<'_>) -> Result<(), Error> {
    let Some(org) = principal.org() else {
        return Ok(());
    };
    if key.all_inside(org) {
        Ok(())
    } else {
        Err(Error::Forbidden("the key is outside the caller's org"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ApiKeyKind;

    fn org(o: &str) -> Principal {
        Principal::ApiKey {
            kind: ApiKeyKind::Public,
            org: Some(o.into()),
            index: 0,
        }
    }

    #[test]
    fn the_verdict_follows_the_table() {
        use Verdict::*;
        // Valid from 1000 until 2000; grace 100.
        for (now, want) in [
            (0, NotYetValid),
            (99, NotYetValid),
            (100, Serve),
            (1000, Serve),
            (1999, Serve),
            (2000, RenewInGrace),
            (2099, RenewInGrace),
            (2100, RenewForCaller),
            (u64::MAX, RenewForCaller),
        ] {
            assert_eq!(verdict(2000, Some(1000), now, 100), want, "at {now}");
        }
        // Beyond the skew allowance: not yet valid. No grace: straight to the caller.
        assert_eq!(verdict(5000, Some(2000), 1099, 0), NotYetValid);
        assert_eq!(verdict(5000, Some(2000), 1100, 0), Serve);
        assert_eq!(verdict(2000, None, 2000, 0), RenewForCaller);
        assert_eq!(verdict(u64::MAX, None, 1, u64::MAX), Serve);
    }

    #[test]
    fn org_scope_is_a_whole_segment() {
        assert!(may_read(Access::Org, &org("acme"), "acme/a.pdf").is_ok());
        assert!(may_read(Access::Org, &org("acme"), "acme%2Fa.pdf").is_ok());
        assert_eq!(
            may_read(Access::Org, &org("acme"), "acme-evil/a.pdf")
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(
            may_read(Access::Org, &org("acme"), "acme/")
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(
            may_read(Access::Authenticated, &org("acme"), "other/x")
                .unwrap_err()
                .status(),
            403
        );
        assert_eq!(
            may_read(Access::Org, &Principal::Anonymous, "acme/x")
                .unwrap_err()
                .status(),
            401
        );
        assert!(may_read(Access::Public, &Principal::Anonymous, "x").is_ok());
        let no_org_token = Principal::Jwt {
            subject: Some("u".into()),
            org: None,
        };
        assert_eq!(
            may_read(Access::Org, &no_org_token, "acme/x")
                .unwrap_err()
                .status(),
            403
        );
        let admin = Principal::ApiKey {
            kind: ApiKeyKind::Secret,
            org: None,
            index: 1,
        };
        assert!(may_read(Access::Org, &admin, "acme/x").is_ok());
    }
}
