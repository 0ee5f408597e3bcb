//! The one error type for everything that becomes an HTTP answer.
//!
//! `status()` and `code()` are plain matches, so a new variant does not compile until it has
//! both. Status follows blame: the client's mistake is 4xx, the origin's 502/504, ours 500.
//! Messages of 5xx answers are fixed strings; the detail goes to the log, never the client.
//! Rendering ([`Error::json_body`], [`Error::s3_xml_body`]) is pure and does not log.

use std::fmt;

/// Why a request could not be answered with content.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed (bad query, bad JSON, bad URL).
    #[error("{0}")]
    BadRequest(String),
    /// No credentials, or credentials that do not authenticate.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The signed URL was genuine but has expired and the caller brought no credentials.
    #[error("Request has expired")]
    Expired,
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A signature that does not verify (forged, tampered, or for another object).
    #[error("{0}")]
    InvalidSignature(&'static str),
    /// The object, prefix or caller is revoked (`/v1/revocations`).
    #[error("revoked")]
    Revoked,
    /// `/proxy/file` was asked for a URL that belongs to no configured origin.
    #[error("the URL does not belong to a configured origin")]
    ForbiddenOrigin,
    /// No such object or route.
    #[error("not found")]
    NotFound,
    /// The path exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request body exceeds the limit.
    #[error("request body too large")]
    PayloadTooLarge,
    /// The request head exceeds `server.max_header_size` (bytes).
    #[error("the request head is larger than server.max_header_size ({0} bytes)")]
    HeaderTooLarge(usize),
    /// A conditional request whose precondition does not hold (the origin's 412).
    #[error("a precondition of the request does not hold")]
    PreconditionFailed,
    /// A range outside the object (the origin's 416), with the origin's `Content-Range`.
    #[error("the requested range is not satisfiable")]
    RangeNotSatisfiable {
        /// `bytes */<length>`, when the origin said.
        content_range: Option<String>,
    },
    /// The caller's token bucket is empty; retry after this many seconds.
    #[error("rate limit exceeded")]
    RateLimited {
        /// Seconds until a request would be admitted.
        retry_after: u64,
    },
    /// The origin refused the connection or failed mid-flight.
    #[error("origin unavailable")]
    OriginUnavailable(String),
    /// The origin refused a URL that edgesign signed or verified (its 401 / 403): a key,
    /// clock or configuration problem between edgesign and the origin, not the client's.
    #[error("origin rejected")]
    OriginRejected(String),
    /// edgesign cannot take the request now (every connection slot is held); retry soon.
    #[error("{0}")]
    Unavailable(&'static str),
    /// The origin did not answer in time (the detail says which timeout, for the log).
    #[error("origin timeout")]
    OriginTimeout(String),
    /// An origin whose credentials the AWS SDK provides holds none that are valid (the
    /// string names the origin, for the log); retry soon.
    #[error("the signing credentials of this origin are not available; retry shortly")]
    NoCredentials(String),
    /// Our fault: a bug or an unusable credential. The string is for the log only.
    #[error("internal error")]
    Internal(String),
}

impl Error {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        match self {
            Error::BadRequest(_) => 400,
            Error::Unauthorized(_) | Error::Expired => 401,
            Error::Forbidden(_)
            | Error::InvalidSignature(_)
            | Error::ForbiddenOrigin
            | Error::Revoked => 403,
            Error::NotFound => 404,
            Error::MethodNotAllowed => 405,
            Error::PayloadTooLarge => 413,
            Error::HeaderTooLarge(_) => 431,
            Error::PreconditionFailed => 412,
            Error::RangeNotSatisfiable { .. } => 416,
            Error::RateLimited { .. } => 429,
            Error::OriginUnavailable(_) | Error::OriginRejected(_) => 502,
            Error::OriginTimeout(_) => 504,
            Error::Unavailable(_) | Error::NoCredentials(_) => 503,
            Error::Internal(_) => 500,
        }
    }

    /// The machine-readable code of docs/errors.md (lower_snake).
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::Unauthorized(_) | Error::Expired => "unauthorized",
            Error::Forbidden(_) => "forbidden",
            Error::InvalidSignature(_) => "invalid_signature",
            Error::ForbiddenOrigin => "forbidden_origin",
            Error::Revoked => "revoked",
            Error::NotFound => "not_found",
            Error::MethodNotAllowed => "method_not_allowed",
            Error::PayloadTooLarge => "payload_too_large",
            Error::HeaderTooLarge(_) => "header_too_large",
            Error::PreconditionFailed => "precondition_failed",
            Error::RangeNotSatisfiable { .. } => "range_not_satisfiable",
            Error::RateLimited { .. } => "rate_limit_exceeded",
            Error::OriginUnavailable(_) => "origin_unavailable",
            Error::OriginRejected(_) => "origin_rejected",
            Error::OriginTimeout(_) => "origin_timeout",
            Error::Unavailable(_) | Error::NoCredentials(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// The message a client may see: the detail for 4xx, a fixed string for 5xx.
    pub fn public_message(&self) -> String {
        match self {
            Error::OriginUnavailable(_) => "the origin is unavailable".to_owned(),
            Error::OriginRejected(_) => "the origin refused the request edgesign signed".to_owned(),
            Error::OriginTimeout(_) => "the origin did not answer in time".to_owned(),
            Error::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        }
    }

    /// `{"code": …, "message": …}`.
    pub fn json_body(&self) -> String {
        self.json_body_with_code(self.code())
    }

    /// [`Error::json_body`] with another spelling of the code (a seed API's UPPER_SNAKE).
    pub fn json_body_with_code(&self, code: &str) -> String {
        serde_json::json!({ "code": code, "message": self.public_message() }).to_string()
    }

    /// The detail a 5xx hides from the client, for the log (`None` for 4xx).
    pub fn detail(&self) -> Option<&str> {
        match self {
            Error::OriginUnavailable(d)
            | Error::OriginRejected(d)
            | Error::OriginTimeout(d)
            | Error::NoCredentials(d)
            | Error::Internal(d) => Some(d),
            _ => None,
        }
    }

    /// S3's XML error document, for requests whose client is an S3 client (it arrived as a
    /// SigV4 URL). Returns the status S3 itself would use and the body.
    pub fn s3_xml_body(&self) -> (u16, String) {
        let (status, code, message) = match self {
            Error::Expired => (403, "AccessDenied", "Request has expired".to_owned()),
            Error::InvalidSignature(_) => (
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided."
                    .to_owned(),
            ),
            Error::Unauthorized(_)
            | Error::Forbidden(_)
            | Error::ForbiddenOrigin
            | Error::Revoked => (403, "AccessDenied", "Access Denied".to_owned()),
            Error::NotFound => (
                404,
                "NoSuchKey",
                "The specified key does not exist.".to_owned(),
            ),
            Error::BadRequest(m) => (400, "InvalidRequest", m.clone()),
            Error::PreconditionFailed => (
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold".to_owned(),
            ),
            Error::RangeNotSatisfiable { .. } => (
                416,
                "InvalidRange",
                "The requested range is not satisfiable".to_owned(),
            ),
            Error::MethodNotAllowed => (
                405,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.".to_owned(),
            ),
            Error::RateLimited { .. } => (
                503,
                "SlowDown",
                "Please reduce your request rate.".to_owned(),
            ),
            other => (other.status(), "InternalError", other.public_message()),
        };
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message></Error>",
            XmlEscaped(&message)
        );
        (status, body)
    }
}

struct XmlEscaped<'a>(&'a str);

impl fmt::Display for XmlEscaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '&' => f.write_str("&amp;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&apos;")?,
                c => fmt::Write::write_char(f, c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_hundreds_never_leak_detail() {
        let e = Error::Internal("secret path /etc/x".into());
        assert_eq!(e.status(), 500);
        assert!(!e.json_body().contains("/etc/x"));
        let e = Error::OriginUnavailable("10.0.0.1 refused".into());
        assert!(!e.json_body().contains("10.0.0.1"));
    }

    #[test]
    fn expired_sigv4_gets_s3_access_denied() {
        let (status, body) = Error::Expired.s3_xml_body();
        assert_eq!(status, 403);
        assert!(body.contains("<Code>AccessDenied</Code><Message>Request has expired</Message>"));
        assert_eq!(Error::Expired.status(), 401);
    }
}
