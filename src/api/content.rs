//! `POST /orgs/{org_id}/content/sign` — refresh a signed URL for stored content
//! (the Timbal content API). Body `{"url": "<content URL, signed or unsigned, or a bare key>"}`;
//! answer `{"url": "<unsigned CDN URL>", "signed_url": "<fresh URL>" | null}`, `null` when the
//! object is public. Errors use UPPER_SNAKE codes, as that API does.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{mint, require_minter, string_field};
use crate::Error;
use crate::app::{App, Cx};
use crate::origins;
use crate::sign::Method;
use crate::sign::encoding::encode_key;
use crate::sign::url::RawUrl;

pub(super) async fn handle(
    app: &Arc<App>,
    parts: &http::request::Parts,
    json: &Value,
    cx: &Cx,
) -> Result<Value, Error> {
    if !cx.principal.is_authenticated() {
        return Err(Error::Unauthorized("credentials required"));
    }
    let org = parts
        .uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .nth(1)
        .unwrap_or("");
    let given = string_field(json, "url")?;
    // A URL is resolved back to the origin it belongs to; a bare key to content_sign_origin.
    let (idx, raw_key) = if given.contains("://") {
        let url = RawUrl::parse(given)?;
        let (idx, _, key) = origins::by_url(&app.config.origins, &url).ok_or(Error::NotFound)?;
        (idx, key.to_owned())
    } else {
        let idx = app
            .config
            .compat
            .content_sign_origin
            .ok_or(Error::NotFound)?;
        (idx, encode_key(given.trim_start_matches('/')))
    };
    crate::auth::keypath::judge(&raw_key)?;
    app.check_revoked(idx, &raw_key, cx.now)?;
    let origin = &app.config.origins[idx];
    let url = origin.signer.layout().object_url(&raw_key);
    // Public objects are anyone's to read: any authenticated caller, whatever its org, gets
    // the unsigned URL (docs/http.md, JSON signing APIs).
    if origin.is_public(&raw_key) {
        return Ok(json!({ "url": url, "signed_url": null }));
    }
    require_minter(&cx.principal)?;
    if !cx.principal.is_admin() && cx.principal.org() != Some(org) {
        return Err(Error::Forbidden("the caller does not belong to this org"));
    }
    // The object must be the org's own.
    let org_scoped = crate::auth::Principal::Jwt {
        subject: None,
        org: Some(org.to_owned()),
    };
    crate::auth::policy::may_read(crate::route::Access::Org, &org_scoped, &raw_key)?;
    let signed = mint(app, idx, &raw_key, Method::Get, None, cx).await?;
    Ok(json!({ "url": url, "signed_url": signed.url }))
}
