//! The JSON signing APIs, drop-in compatible with three existing products (docs/http.md),
//! plus edgesign's own `/v1/sign`. One file per family; this module reads bodies, renders
//! errors in each family's own code style, and holds what they share.
//!
//! - [`content`]: `POST /orgs/{org_id}/content/sign` (UPPER_SNAKE codes).
//! - [`files`]: `POST /v1/files/{file_id}/signed-url` (secret keys only).
//! - [`presign`]: `POST /generate-presigned-url` (auth failures are 400, as that API does).
//! - [`native`]: `POST /v1/sign`.
//! - [`cookies`]: `POST /v1/cookies` (CloudFront signed cookies).

pub mod content;
pub mod cookies;
pub mod files;
pub mod native;
pub mod presign;
pub mod revocations;

use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;

use crate::Error;
use crate::app::{App, Cx};
use crate::auth::{Principal, policy};
use crate::config::Cors;
use crate::minter::signs_slowly;
use crate::respond::{self, Body, BoxError, Style};
use crate::route::Access;
use crate::sign::signer::SignSpec;
use crate::sign::{Method, Signed};

/// Largest request body the APIs read.
pub const MAX_BODY: usize = 64 * 1024;

/// Which API a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/orgs/{org_id}/content/sign`.
    ContentSign,
    /// `/v1/files/{file_id}/signed-url`.
    FilesSignedUrl,
    /// `/generate-presigned-url`.
    Presign,
    /// `/v1/sign`.
    NativeSign,
    /// `/v1/cookies`.
    Cookies,
    /// `/v1/revocations` (`POST`, `GET`).
    Revocations,
    /// `/v1/revocations/{id}` (`DELETE`).
    Revocation,
}

impl Api {
    /// The API a path belongs to (any method: a wrong one is answered in the API's style).
    pub fn of(_method: &http::Method, path: &str) -> Option<Api> {
        // At most four segments, gathered without allocating: this runs on every request.
        let mut segs = [""; 4];
        let mut n = 0;
        for seg in path.trim_start_matches('/').split('/') {
            *segs.get_mut(n)? = seg;
            n += 1;
        }
        match &segs[..n] {
            ["orgs", org, "content", "sign"] if !org.is_empty() => Some(Api::ContentSign),
            ["v1", "files", id, "signed-url"] if !id.is_empty() => Some(Api::FilesSignedUrl),
            ["generate-presigned-url"] => Some(Api::Presign),
            ["v1", "sign"] => Some(Api::NativeSign),
            ["v1", "cookies"] => Some(Api::Cookies),
            ["v1", "revocations"] => Some(Api::Revocations),
            ["v1", "revocations", id] if !id.is_empty() => Some(Api::Revocation),
            _ => None,
        }
    }

    /// How this API writes its errors.
    pub fn style(self) -> Style {
        match self {
            Api::ContentSign => Style::UpperSnake,
            // That API answers authentication failures with 400.
            Api::Presign => Style::AuthFailureIs400,
            Api::FilesSignedUrl
            | Api::NativeSign
            | Api::Cookies
            | Api::Revocations
            | Api::Revocation => Style::Json,
        }
    }

    /// The route kind in logs and metrics.
    pub fn route_name(self) -> &'static str {
        match self {
            Api::ContentSign => "api_content_sign",
            Api::FilesSignedUrl => "api_files_signed_url",
            Api::Presign => "api_presign",
            Api::NativeSign => "api_native_sign",
            Api::Cookies => "api_cookies",
            Api::Revocations | Api::Revocation => "api_revocations",
        }
    }

    /// The methods this API answers (besides `OPTIONS`), for `Allow`.
    pub fn allow(self) -> &'static str {
        match self {
            Api::Revocations => "GET, POST, OPTIONS",
            Api::Revocation => "DELETE, OPTIONS",
            _ => "POST, OPTIONS",
        }
    }
}

/// CORS for the signing APIs: when the request's `Origin` is one of `[cors] allow_origins`,
/// the answer lets that page read it (with credentials: the APIs take a key or a session). A
/// `preflight` also names the method and the headers a page may send. Other origins get no
/// CORS headers, so the browser keeps the answer from the page.
pub fn cors(
    cors: &Cors,
    request: &http::HeaderMap,
    answer: &mut http::HeaderMap,
    preflight: bool,
    api: Api,
) {
    use http::header;
    if cors.allow_origins.is_empty() {
        return;
    }
    answer.append(header::VARY, http::HeaderValue::from_static("Origin"));
    let Some(origin) = request.get(header::ORIGIN) else {
        return;
    };
    if !cors
        .allow_origins
        .iter()
        .any(|o| o.as_bytes() == origin.as_bytes())
    {
        return;
    }
    answer.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    answer.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        http::HeaderValue::from_static("true"),
    );
    if preflight {
        answer.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            http::HeaderValue::from_static(api.allow().trim_end_matches(", OPTIONS")),
        );
        answer.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            http::HeaderValue::from_static("authorization, content-type, x-api-key"),
        );
        answer.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            http::HeaderValue::from_static("600"),
        );
    } else {
        answer.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            http::HeaderValue::from_static("x-request-id"),
        );
    }
}

/// Answers an API request.
pub async fn handle<B>(
    app: &Arc<App>,
    api: Api,
    parts: &http::request::Parts,
    body: B,
    cx: &Cx,
) -> Response<Body>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let ok = |v: Value| respond::json(StatusCode::OK, v.to_string());
    let result = async {
        match (api, &parts.method) {
            (Api::Revocations, &http::Method::GET) => return revocations::list(app, cx),
            (Api::Revocation, &http::Method::DELETE) => {
                let id = parts.uri.path().rsplit('/').next().unwrap_or("");
                return revocations::delete(app, id, cx).await;
            }
            (Api::Revocation, _) => return Err(Error::MethodNotAllowed),
            (_, &http::Method::POST) => {}
            _ => return Err(Error::MethodNotAllowed),
        }
        let json = read_json(body, app.config.server.header_read_timeout).await?;
        match api {
            Api::ContentSign => content::handle(app, parts, &json, cx).await.map(ok),
            Api::FilesSignedUrl => files::handle(app, parts, &json, cx).await.map(ok),
            Api::Presign => presign::handle(app, &json, cx).await.map(ok),
            Api::NativeSign => native::handle(app, &json, cx).await.map(ok),
            Api::Cookies => cookies::handle(app, &json, cx).await,
            Api::Revocations => revocations::create(app, &json, cx).await,
            Api::Revocation => Err(Error::MethodNotAllowed),
        }
    }
    .await;
    match result {
        Ok(resp) => resp,
        Err(e) => respond::error(&e, api.style()),
    }
}

/// Reads at most [`MAX_BODY`] bytes, arriving `within` (`server.header_read_timeout`: a
/// client that drips its body holds a connection slot like one that drips its head), and
/// parses them as a JSON object (an empty body is `{}`).
async fn read_json<B>(body: B, within: std::time::Duration) -> Result<Value, Error>
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let bytes: Bytes = tokio::time::timeout(within, Limited::new(body, MAX_BODY).collect())
        .await
        .map_err(|_| {
            Error::BadRequest(
                "the request body did not arrive within server.header_read_timeout".into(),
            )
        })?
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Error::PayloadTooLarge
            } else {
                Error::BadRequest("the request body could not be read".into())
            }
        })?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    let v: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Error::BadRequest(format!("malformed JSON: {e}")))?;
    if !v.is_object() {
        return Err(Error::BadRequest("the body must be a JSON object".into()));
    }
    Ok(v)
}

/// A required string field.
fn string_field<'v>(json: &'v Value, name: &str) -> Result<&'v str, Error> {
    match json.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(Error::BadRequest(format!("{name} must not be empty"))),
        Some(_) => Err(Error::BadRequest(format!("{name} must be a string"))),
        None => Err(Error::BadRequest(format!("{name} is required"))),
    }
}

/// An optional `expires_in` within 1..=604800.
fn expires_in(json: &Value) -> Result<Option<u64>, Error> {
    match json.get("expires_in") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|e| (1..=604_800).contains(e))
            .map(Some)
            .ok_or_else(|| {
                Error::BadRequest("expires_in must be an integer from 1 to 604800".into())
            }),
    }
}

/// Only callers that may mint: secret keys and session tokens (`pk_` → 403).
fn require_minter(p: &Principal) -> Result<(), Error> {
    if !p.is_authenticated() {
        return Err(Error::Unauthorized("credentials required"));
    }
    if !p.may_mint() {
        return Err(Error::Forbidden(
            "this key may read but not mint URLs; use a secret key (sk_)",
        ));
    }
    Ok(())
}

/// Mints a URL for `raw_key` of origin `idx`: for exactly `lifetime` seconds from now
/// (capped honestly) when one is named, otherwise the bucketed, cached URL of the origin's ttl.
async fn mint(
    app: &Arc<App>,
    idx: usize,
    raw_key: &str,
    method: Method,
    lifetime: Option<u64>,
    cx: &Cx,
) -> Result<Signed, Error> {
    // Minting is org business: a caller with no org and no admin key mints nothing.
    policy::may_read(Access::Org, &cx.principal, raw_key)?;
    let audit = |decision, signed: Option<&Signed>| {
        app.audit(
            (&cx.principal, cx.ip),
            idx,
            raw_key,
            decision,
            signed.map(|s| s.expires_at),
            signed.map(|s| s.url.as_str()),
        );
    };
    if let Err(e) = app.check_revoked(idx, raw_key, cx.now) {
        audit(crate::audit::Decision::Revoked, None);
        return Err(e);
    }
    let minted = mint_checked(app, idx, raw_key, method, lifetime, cx).await;
    if let Ok(signed) = &minted {
        audit(crate::audit::Decision::Minted, Some(signed));
    }
    minted
}

/// [`mint`] once the caller is allowed and nothing is revoked.
async fn mint_checked(
    app: &Arc<App>,
    idx: usize,
    raw_key: &str,
    method: Method,
    lifetime: Option<u64>,
    cx: &Cx,
) -> Result<Signed, Error> {
    match lifetime {
        Some(lifetime) => {
            let (now, config, metrics) = (cx.now, app.config.clone(), app.metrics.clone());
            let held = app.minter.live.held(idx, now)?;
            let sign = move |raw_key: &str| {
                let signer = &config.origins[idx].signer;
                metrics.time_signing(signer.scheme_name(), || {
                    signer
                        .sign_with(
                            &SignSpec {
                                raw_key,
                                method,
                                params: &[],
                                signed_at: now,
                                lifetime,
                            },
                            held.as_deref().map_or(&[], Vec::as_slice),
                        )
                        .map_err(Error::from)
                })
            };
            if !signs_slowly(&app.config.origins[idx].signer) {
                return sign(raw_key);
            }
            let raw_key = raw_key.to_owned();
            app.minter.sign_slowly(move || sign(&raw_key)).await?
        }
        None => app
            .minter
            .mint(idx, raw_key, method, &[], cx.now)
            .await
            .map(|(entry, _)| entry.signed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_their_api_exactly() {
        let of = |p: &str| Api::of(&http::Method::POST, p);
        assert_eq!(of("/orgs/acme/content/sign"), Some(Api::ContentSign));
        assert_eq!(of("/v1/files/f_1/signed-url"), Some(Api::FilesSignedUrl));
        assert_eq!(of("/generate-presigned-url"), Some(Api::Presign));
        assert_eq!(of("/v1/sign"), Some(Api::NativeSign));
        for other in [
            "/",
            "",
            "/orgs//content/sign",
            "/orgs/acme/content/sign/",
            "/orgs/acme/content/sign/more",
            "/v1/files//signed-url",
            "/v1/sign/",
            "/v1/signs",
            "/r/v1/sign",
            "/a/b/c/d/e/f",
        ] {
            assert_eq!(of(other), None, "{other:?}");
        }
    }
}
