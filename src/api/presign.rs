//! `POST /generate-presigned-url` — a presigned URL from an object key (the Artos API).
//! Body `{"key": "org-id/documents/protocol.pdf"}`; answer `{"url"}`, valid one hour.
//! Authentication failures are 400 (as that API documents), a key outside the caller's org
//! 403, a signing failure 500.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{mint, require_minter, string_field};
use crate::Error;
use crate::app::{App, Cx};
use crate::sign::Method;
use crate::sign::encoding::encode_key;

pub(super) async fn handle(app: &Arc<App>, json: &Value, cx: &Cx) -> Result<Value, Error> {
    require_minter(&cx.principal)?;
    let key = string_field(json, "key")?;
    let idx = app
        .config
        .compat
        .presign_origin
        // Not configured: this API is not served here (as the other compatible APIs answer).
        .ok_or(Error::NotFound)?;
    let signed = mint(app, idx, &encode_key(key), Method::Get, Some(3600), cx).await?;
    Ok(json!({ "url": signed.url }))
}
