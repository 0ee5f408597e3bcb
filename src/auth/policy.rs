//! Who may read which object key. One function, called before any signing or serving.

use super::Principal;
use crate::Error;
use crate::config::Access;
use crate::sign::encoding::percent_decode;

/// Whether `principal` may read everything under `raw_prefix` (a CloudFront wildcard
/// policy's fixed part, relative to the origin): admins always, org callers inside `{org}/`.
pub fn may_read_prefix(principal: &Principal, raw_prefix: &str) -> Result<(), Error> {
    if principal.is_admin() {
        return Ok(());
    }
    let prefix = percent_decode(raw_prefix);
    match principal.org() {
        Some(org) if prefix.starts_with(format!("{org}/").as_bytes()) => Ok(()),
        _ => Err(Error::Forbidden(
            "the URL's policy covers keys outside the caller's org",
        )),
    }
}

/// Whether `principal` may read `raw_key` (as it appears in the path) on a route with
/// `access`. An org-scoped caller reads only keys under `{org}/` — compared on the decoded
/// key, since `acme%2Fx` and `acme/x` name the same S3 object.
pub fn may_read(access: Access, principal: &Principal, raw_key: &str) -> Result<(), Error> {
    match access {
        Access::Public => Ok(()),
        _ if !principal.is_authenticated() => Err(Error::Unauthorized("credentials required")),
        Access::Authenticated => in_scope(principal, raw_key),
        Access::Org => match principal.org() {
            Some(_) => in_scope(principal, raw_key),
            None if principal.is_admin() => Ok(()),
            None => Err(Error::Forbidden("the caller belongs to no org")),
        },
    }
}

/// An org-scoped principal stays inside `{org}/` on every route that needs credentials.
/// A key with `.` or `..` segments is refused outright: S3 keeps them literally, but an origin
/// or front end that normalises paths would serve another org's object.
fn in_scope(principal: &Principal, raw_key: &str) -> Result<(), Error> {
    let key = percent_decode(raw_key);
    if key
        .split(|b| *b == b'/')
        .any(|seg| seg == b"." || seg == b"..")
    {
        return Err(Error::Forbidden(
            "keys with . or .. segments are not served to scoped callers",
        ));
    }
    let Some(org) = principal.org() else {
        return Ok(());
    };
    let inside =
        key.len() > org.len() + 1 && key.starts_with(org.as_bytes()) && key[org.len()] == b'/';
    if inside {
        Ok(())
    } else {
        Err(Error::Forbidden("the key is outside the caller's org"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKeyKind;

    fn org(o: &str) -> Principal {
        Principal::ApiKey {
            kind: ApiKeyKind::Public,
            org: Some(o.into()),
            index: 0,
        }
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
