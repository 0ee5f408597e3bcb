//! `POST /v1/revocations`, `GET /v1/revocations`, `DELETE /v1/revocations/{id}`: taking back
//! an object key, a key prefix (each of one origin) or a principal. An admin (a secret key
//! without an org) may revoke anything; an org caller only inside its org (and its org's API
//! keys). Scope `"fleet"` with `[fleet]` (every replica within `sync_interval`), else
//! `"process"`. A new revocation drops this replica's cached URLs for what it covers at once;
//! every replica refuses it from the in-memory set before looking at its cache.

use std::sync::Arc;

use http::{Response, StatusCode};
use serde_json::{Value, json};

use super::{expires_in, string_field};
use crate::Error;
use crate::app::{App, Cx};
use crate::auth::revoke::{self, MAX_REASON, Revocation, Target};
use crate::respond::{self, Body};
use crate::sign::encoding::percent_decode;

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

fn origin_of(app: &App, json: &Value) -> Result<String, Error> {
    let name = string_field(json, "origin")?;
    app.config
        .origin(name)
        .map(|o| o.signer.name.clone())
        .ok_or_else(|| Error::BadRequest(format!("no origin is named {name:?}")))
}

/// `POST /v1/revocations`: `{"key"|"prefix", "origin"}` or `{"principal"}`, optional
/// `reason` and `expires_in`. `201 {"id", "scope", "effective_by"}`.
pub(super) async fn create(app: &Arc<App>, json: &Value, cx: &Cx) -> Result<Response<Body>, Error> {
    let present = |k: &str| json.get(k).is_some_and(|v| !v.is_null());
    let target = match (present("key"), present("prefix"), present("principal")) {
        (true, false, false) => Target::Key {
            origin: origin_of(app, json)?,
            key: plain(string_field(json, "key")?)?,
        },
        (false, true, false) => Target::Prefix {
            origin: origin_of(app, json)?,
            prefix: plain(string_field(json, "prefix")?)?,
        },
        (false, false, true) => {
            if present("origin") {
                return Err(Error::BadRequest(
                    "a principal is revoked everywhere: leave origin out".into(),
                ));
            }
            Target::Principal(principal(string_field(json, "principal")?)?)
        }
        _ => {
            return Err(Error::BadRequest(
                "give exactly one of key, prefix or principal".into(),
            ));
        }
    };
    revoke::may_revoke(&app.config.auth, &cx.principal, &target)?;
    if let Target::Principal(p) = &target
        && revoke::principal_id(&app.config.auth, &cx.principal).as_ref() == Some(p)
    {
        return Err(Error::BadRequest(
            "a caller cannot revoke itself (it could not take it back); ask an admin".into(),
        ));
    }
    if app.fleet.revocations().all().len() >= MAX_REVOCATIONS {
        return Err(Error::BadRequest(format!(
            "{MAX_REVOCATIONS} revocations are in force; delete some, or let them lapse (expires_in)"
        )));
    }
    let reason = match json.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if r.len() <= MAX_REASON => Some(r.clone()),
        Some(_) => {
            return Err(Error::BadRequest(format!(
                "reason must be a string of at most {MAX_REASON} bytes"
            )));
        }
    };
    let revocation = Revocation {
        id: app.fleet.new_id(),
        expires_at: expires_in(json)?.map(|e| cx.now + e),
        target,
        reason,
        created_at: cx.now,
    };
    app.fleet.add(revocation.clone(), cx.now).await?;
    // This replica's cached URLs for it go at once (the others never serve them: they ask
    // the revocations before their cache).
    if let Target::Key { origin, .. } | Target::Prefix { origin, .. } = &revocation.target
        && let Some((idx, _)) = crate::origins::by_name(&app.config.origins, origin)
    {
        let (set, name, now) = (app.fleet.revocations_full(), origin.clone(), cx.now);
        app.cache().drop_keys(idx, move |raw_key| {
            crate::auth::keypath::judge(raw_key).is_ok_and(|k| set.of_key(&name, &k, now).is_some())
        });
    }
    // Every replica re-reads within sync_interval of the write; rounded up to the second.
    let bound = app.fleet.bound().as_millis().div_ceil(1000) as u64;
    let body = json!({
        "id": revocation.id,
        "scope": app.fleet.scope(),
        "effective_by": rfc3339(cx.now + bound),
    });
    Ok(respond::json(StatusCode::CREATED, body.to_string()))
}

/// Most revocations in force at once: each one costs every request to its origin a little.
const MAX_REVOCATIONS: usize = 10_000;

/// A principal as a revocation names it: an API key's SHA-256 as the config writes it (64 hex
/// digits, any case), or a JWT `sub`. A key itself is refused: it would be stored and listed.
fn principal(p: &str) -> Result<String, Error> {
    if p.starts_with("sk_") || p.starts_with("pk_") {
        return Err(Error::BadRequest(
            "give the key's SHA-256 (edgesign hash-key), never the key itself".into(),
        ));
    }
    if p.is_empty() || p.len() > 256 || p.chars().any(char::is_control) {
        return Err(Error::BadRequest(
            "principal must be 1 to 256 printable characters".into(),
        ));
    }
    if p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(p.to_ascii_lowercase());
    }
    Ok(p.to_owned())
}

/// An object key or prefix as stored: printable, not a URL, no escapes to decode twice.
fn plain(key: &str) -> Result<String, Error> {
    let decoded = String::from_utf8(percent_decode(key).into_owned())
        .map_err(|_| Error::BadRequest("the key is not UTF-8".into()))?;
    if decoded.is_empty() || decoded.contains("://") || decoded.chars().any(char::is_control) {
        return Err(Error::BadRequest(
            "key and prefix are object keys as stored, like acme/report.pdf".into(),
        ));
    }
    crate::auth::keypath::judge(&decoded)?;
    let stored = crate::auth::revoke::folded(decoded.as_bytes()).map_or(decoded.clone(), |f| {
        String::from_utf8_lossy(&f).into_owned()
    });
    if stored.is_empty() {
        return Err(Error::BadRequest(
            "an empty key or prefix would revoke the whole origin; name it".into(),
        ));
    }
    Ok(stored)
}

/// `GET /v1/revocations`: those the caller may see (an org caller, its org's).
pub(super) fn list(app: &Arc<App>, cx: &Cx) -> Result<Response<Body>, Error> {
    super::require_minter(&cx.principal)?;
    let set = app.fleet.revocations();
    let visible: Vec<Value> = set
        .all()
        .iter()
        .filter(|r| r.live(cx.now))
        .filter(|r| revoke::may_revoke(&app.config.auth, &cx.principal, &r.target).is_ok())
        .map(Revocation::to_json)
        .collect();
    let body = json!({ "scope": app.fleet.scope(), "revocations": visible });
    Ok(respond::json(StatusCode::OK, body.to_string()))
}

/// `DELETE /v1/revocations/{id}`: `204`, or `404` for an id the caller cannot see.
pub(super) async fn delete(app: &Arc<App>, id: &str, cx: &Cx) -> Result<Response<Body>, Error> {
    if !cx.principal.is_authenticated() {
        return Err(Error::Unauthorized("credentials required"));
    }
    let target = app
        .fleet
        .revocations()
        .all()
        .iter()
        .find(|r| r.id == id)
        .map(|r| r.target.clone())
        .ok_or(Error::NotFound)?;
    // One the caller may not see is one it cannot find.
    revoke::may_revoke(&app.config.auth, &cx.principal, &target).map_err(|_| Error::NotFound)?;
    if !app.fleet.remove(id, cx.now).await? {
        return Err(Error::NotFound);
    }
    let mut resp = Response::new(respond::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    Ok(resp)
}
