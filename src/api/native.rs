//! `POST /v1/sign` — edgesign's own signing API. Body `{"origin": "name", "key": "…"}` or
//! `{"url": "…"}`, optional `expires_in` (1..=604800) and `method` (`GET` | `HEAD`); answer
//! `{"url", "expires_at", "origin", "key"}`. Without `expires_in` the bucketed, cached URL of
//! the origin's ttl; with it, exactly that long from now (capped honestly).

use std::sync::Arc;

use serde_json::{Value, json};

use super::{expires_in, mint, require_minter, string_field};
use crate::Error;
use crate::app::{App, Cx};
use crate::origins;
use crate::sign::Method;
use crate::sign::encoding::{encode_key, percent_decode, rfc3339};
use crate::sign::url::RawUrl;

pub(super) async fn handle(app: &Arc<App>, json: &Value, cx: &Cx) -> Result<Value, Error> {
    require_minter(&cx.principal)?;
    let lifetime = expires_in(json)?;
    let method = match json.get("method") {
        None | Some(Value::Null) => Method::Get,
        Some(Value::String(m)) => Method::parse(m)
            .ok_or_else(|| Error::BadRequest("method must be GET or HEAD".into()))?,
        Some(_) => return Err(Error::BadRequest("method must be a string".into())),
    };
    let (idx, raw_key) = if json.get("url").is_some() {
        let url = RawUrl::parse(string_field(json, "url")?)?;
        let (idx, _, key) =
            origins::by_url(&app.config.origins, &url).ok_or(Error::ForbiddenOrigin)?;
        (idx, key.to_owned())
    } else {
        let name = string_field(json, "origin")?;
        let (idx, _) = origins::by_name(&app.config.origins, name).ok_or(Error::NotFound)?;
        (idx, encode_key(string_field(json, "key")?))
    };
    let signed = mint(app, idx, &raw_key, method, lifetime, cx).await?;
    Ok(json!({
        "url": signed.url,
        "expires_at": rfc3339(signed.expires_at),
        "origin": app.config.origins[idx].signer.name,
        "key": String::from_utf8_lossy(&percent_decode(&raw_key)),
    }))
}
