//! `POST /v1/cookies` — CloudFront signed cookies for a key prefix, for API clients (a
//! player page's back end). Body `{"origin": "cdn", "prefix": "acme/videos/ep1/"}`, optional
//! `expires_in` (1..=604800); answer `{"resource", "expires_at", "cookies": {…}}` and the
//! same `Set-Cookie` headers a cookie route sets. Without `expires_in` the bucketed, cached
//! set of the origin's ttl; with it, exactly that long from now.

use std::sync::Arc;

use http::{Response, StatusCode, header};
use serde_json::{Map, Value, json};

use super::{expires_in, require_minter, string_field};
use crate::Error;
use crate::app::{App, Cx};
use crate::auth::{keypath, policy};
use crate::minter::set_cookie_headers;
use crate::origins;
use crate::respond::{self, Body};
use crate::sign::Signed;
use crate::sign::cookies::CookieSet;
use crate::sign::encoding::{encode_key, rfc3339};
use crate::sign::signer::Kind;

pub(super) async fn handle(app: &Arc<App>, json: &Value, cx: &Cx) -> Result<Response<Body>, Error> {
    require_minter(&cx.principal)?;
    let lifetime = expires_in(json)?;
    let name = string_field(json, "origin")?;
    let (idx, origin) = origins::by_name(&app.config.origins, name).ok_or(Error::NotFound)?;
    let signer = &origin.signer;
    if !matches!(signer.kind, Kind::CloudFront(_)) {
        return Err(Error::BadRequest(format!(
            "signed cookies are CloudFront's; origin {name} is kind = \"{}\"",
            signer.kind_name()
        )));
    }
    let raw_prefix = encode_key(string_field(json, "prefix")?);
    // The grant opens every key under the prefix: the caller must be allowed all of them
    // (or they are all public), and none of them may be revoked.
    let covered = keypath::judge_wildcard_prefix(&raw_prefix)?;
    let revoked = app.fleet.revocations();
    if !revoked.is_empty()
        && revoked
            .under_wildcard(&signer.name, &covered, cx.now)
            .is_some()
    {
        return Err(Error::Revoked);
    }
    if !policy::under_any(&origin.public_prefixes, &covered) {
        policy::may_read_prefix(&cx.principal, &raw_prefix)
            .map_err(|_| Error::Forbidden("the caller may not read every key under this prefix"))?;
    }
    let entry = match lifetime {
        None => app.minter.mint_cookies(idx, &raw_prefix, cx.now).await?.0,
        Some(lifetime) => {
            let (config, now, prefix) = (app.config.clone(), cx.now, raw_prefix.clone());
            let signed = app
                .minter
                .sign_slowly(move || {
                    config.origins[idx]
                        .signer
                        .sign_cookies(&prefix, now, lifetime)
                        .map(|c| Signed {
                            url: c.cookies.header(),
                            expires_at: c.expires_at,
                        })
                })
                .await??;
            crate::cache::Entry::uncached(signed)
        }
    };
    let evidence = crate::minter::cookie_evidence(signer, &raw_prefix, entry.url());
    app.audit(
        (&cx.principal, cx.ip),
        idx,
        &raw_prefix,
        crate::audit::Decision::Minted,
        Some(entry.expires_at),
        evidence.as_deref(),
    );
    let set = CookieSet::from_header(entry.url());
    let values: Map<String, Value> = set
        .pairs()
        .map(|(n, v)| (n.to_owned(), Value::String(v.to_owned())))
        .collect();
    let body = json!({
        "resource": signer.cookie_resource(&raw_prefix)?,
        "expires_at": rfc3339(entry.expires_at),
        "cookies": values,
    });
    let mut resp = respond::json(StatusCode::OK, body.to_string());
    for v in set_cookie_headers(signer, &entry, cx.now) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("private, no-store"),
    );
    Ok(resp)
}
