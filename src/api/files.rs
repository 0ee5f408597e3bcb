//! `POST /v1/files/{file_id}/signed-url` — a signed URL for a private file (the Stashfyle
//! files API). Body `{"expires_in": 1..=604800}` (default 3600); answer
//! `{"url", "expires_at"}`. Secret keys only (`pk_` → 403); `404 not_found` when the origin
//! has no such object.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{expires_in, mint, require_minter};
use crate::Error;
use crate::app::{App, Cx};
use crate::sign::Method;
use crate::sign::encoding::{encode_key, rfc3339};
use crate::sign::signer::{Kind, SignSpec};

pub(super) async fn handle(
    app: &Arc<App>,
    parts: &http::request::Parts,
    json: &Value,
    cx: &Cx,
) -> Result<Value, Error> {
    require_minter(&cx.principal)?;
    let lifetime = expires_in(json)?.unwrap_or(3600);
    let file_id = parts
        .uri
        .path()
        .trim_start_matches('/')
        .split('/')
        .nth(2)
        .unwrap_or("");
    let idx = app.config.compat.files_origin.ok_or(Error::NotFound)?;
    let file_id =
        String::from_utf8_lossy(&crate::sign::encoding::percent_decode(file_id)).into_owned();
    let raw_key = encode_key(&format!("{}{file_id}", app.config.compat.files_key_prefix));
    crate::auth::policy::may_read(crate::route::Access::Authenticated, &cx.principal, &raw_key)?;
    app.check_revoked(idx, &raw_key, cx.now)?;
    exists(app, idx, &raw_key, cx.now).await?;
    let signed = mint(app, idx, &raw_key, Method::Get, Some(lifetime), cx).await?;
    Ok(json!({ "url": signed.url, "expires_at": rfc3339(signed.expires_at) }))
}

/// Asks the origin whether the object exists (a signed HEAD; a local origin's file).
async fn exists(app: &Arc<App>, idx: usize, raw_key: &str, now: u64) -> Result<(), Error> {
    let signer = &app.config.origins[idx].signer;
    if let Kind::Local(local) = &signer.kind {
        return crate::local::resolve(&local.root, raw_key)
            .await
            .map(|_| ());
    }
    let held = app.minter.live.held(idx, now)?;
    let head = app.metrics.time_signing(signer.scheme_name(), || {
        signer.sign_with(
            &SignSpec {
                raw_key,
                method: Method::Head,
                params: &[],
                signed_at: now,
                lifetime: 60,
            },
            held.as_deref().map_or(&[], Vec::as_slice),
        )
    })?;
    let resp = app
        .origin
        .fetch(
            &signer.name,
            Method::Head,
            &head.url,
            signer.fetched_from(),
            &http::HeaderMap::new(),
            None,
        )
        .await?;
    match resp.status().as_u16() {
        200..=299 => Ok(()),
        404 => Err(Error::NotFound),
        s => Err(Error::OriginUnavailable(format!(
            "origin answered {s} to HEAD"
        ))),
    }
}
