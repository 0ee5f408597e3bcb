//! Ground floor: the body every response has, small answers, and the one place an [`Error`]
//! becomes a response — in the style its client expects — and a 5xx becomes a log line.
//!
//! The styles are data ([`Style`]): edgesign's JSON `{"code", "message"}`, S3's XML for a
//! client that arrived with a SigV4 URL, and the two seed-compatible variants (UPPER_SNAKE
//! codes; authentication failures answered with 400).

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};

use crate::Error;
use crate::notes;

/// Errors inside response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body: streamed from the origin or a file, or a small buffer.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body of these bytes.
pub fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A JSON answer.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// How an error is written for its client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `{"code": "lower_snake", "message": …}` (docs/errors.md).
    Json,
    /// S3's `<Error><Code>…</Code><Message>…</Message></Error>`, with the status S3 uses.
    S3Xml,
    /// JSON with UPPER_SNAKE codes (the content-sign API).
    UpperSnake,
    /// JSON whose authentication failures are `400` (the presign API).
    AuthFailureIs400,
}

/// The one place an error becomes a response. A 5xx is logged here, once, with the request
/// id, the route and the detail its client never sees.
pub fn error(err: &Error, style: Style) -> Response<Body> {
    let (status, content_type, body) = match style {
        Style::S3Xml => {
            let (status, body) = err.s3_xml_body();
            (status, "application/xml", body)
        }
        Style::Json => (err.status(), "application/json", err.json_body()),
        Style::UpperSnake => (
            err.status(),
            "application/json",
            err.json_body_with_code(&err.code().to_ascii_uppercase()),
        ),
        Style::AuthFailureIs400 => {
            let status = match err {
                Error::Unauthorized(_) | Error::Expired => 400,
                _ => err.status(),
            };
            (status, "application/json", err.json_body())
        }
    };
    log_server_error(err, status);
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    error_headers(err, resp.headers_mut());
    resp
}

/// An error as a whole HTTP/1.1 response, bytes ready for the wire, for the one answer
/// written below hyper (an oversized request head, see `server`). It closes the connection.
pub fn error_http1(err: &Error) -> Bytes {
    log_server_error(err, err.status());
    let body = err.json_body();
    let reason = StatusCode::from_u16(err.status())
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    Bytes::from(format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        err.status(),
        body.len()
    ))
}

/// The headers every error answer carries, whatever its body's style: `no-store`, and what
/// the error itself says (`Retry-After`, a 416's `Content-Range`).
fn error_headers(err: &Error, h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    match err {
        Error::RateLimited { retry_after } => {
            h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        Error::Unavailable(_) | Error::NoCredentials(_) => {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        Error::RangeNotSatisfiable {
            content_range: Some(range),
        } => {
            if let Ok(v) = HeaderValue::from_str(range) {
                h.insert(header::CONTENT_RANGE, v);
            }
        }
        _ => {}
    }
}

/// Logs a 5xx once (by the status actually sent: S3's `SlowDown` is a 503), with the detail
/// its client does not see. Never a secret: details are origin names, statuses, I/O errors
/// and internal states, never URLs or credentials.
fn log_server_error(err: &Error, status: u16) {
    if status < 500 {
        return;
    }
    let (id, route) = notes::current();
    tracing::warn!(
        target: "edgesign::error",
        request_id = id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-"),
        route,
        status,
        code = err.code(),
        detail = err.detail().unwrap_or("-"),
        "answered with a server-side error"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_error_four_styles() {
        let e = Error::Unauthorized("credentials required");
        let json = error(&e, Style::Json);
        assert_eq!(json.status(), 401);
        let xml = error(&e, Style::S3Xml);
        assert_eq!(xml.status(), 403);
        assert_eq!(xml.headers()[header::CONTENT_TYPE], "application/xml");
        assert_eq!(error(&e, Style::AuthFailureIs400).status(), 400);
        assert_eq!(
            error(&Error::NotFound, Style::AuthFailureIs400).status(),
            404
        );
        let limited = error(&Error::RateLimited { retry_after: 7 }, Style::UpperSnake);
        assert_eq!(limited.headers()[header::RETRY_AFTER], "7");
        assert_eq!(limited.headers()[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn a_raw_431_is_a_whole_json_response() {
        let raw = error_http1(&Error::HeaderTooLarge(8192));
        let text = std::str::from_utf8(&raw).unwrap_or("");
        assert!(text.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or(("", ""));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(body.contains(r#""code":"header_too_large""#));
    }
}
