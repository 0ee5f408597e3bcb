//! The pure signing core: no IO, no async, no clock. Time is always a parameter.
//!
//! - [`encoding`]: SigV4 URI encoding, percent decoding, base64 variants, `X-Amz-Date`.
//! - [`url`]: raw URL splitting that never decodes or normalises.
//! - [`sigv4`]: S3 SigV4 query presign / parse / verify.
//! - [`cloudfront`]: CloudFront canned and custom policies, RSA and ECDSA.
//! - [`cookies`]: CloudFront signed cookies (the same policies, carried in cookies).
//! - [`gcs`]: Google Cloud Storage V4 signed URLs (RSA and HMAC).
//! - [`azure`]: Azure Blob service SAS with an account key.
//! - [`native`]: edgesign's HMAC links for `local` origins.
//! - [`signer`]: one configured origin: mint, recognise, verify and re-sign its URLs.
//! - [`detect`]: which scheme a URL carries, and what `edgesign inspect` reports.
//!
//! Its failures are its own [`Error`], converted into the service's error at the boundary.

pub mod azure;
pub mod cloudfront;
pub mod cookies;
pub mod detect;
pub mod encoding;
pub mod gcs;
pub mod native;
pub mod signer;
pub mod sigv4;
pub mod url;

/// What the signing core can fail with; converted once, at the boundary, into the service's
/// [`crate::Error`] (whose statuses the core knows nothing of).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that cannot be a URL of any origin (not absolute, bad host, raw bytes that
    /// must be percent-encoded).
    #[error("{0}")]
    BadRequest(String),
    /// A signature that does not verify, or a signed URL that is malformed, foreign or for
    /// another object.
    #[error("{0}")]
    InvalidSignature(&'static str),
    /// A key or credential that cannot sign (expired credentials, no key): not the input's
    /// fault. The text is for the log.
    #[error("{0}")]
    Internal(String),
}

/// A MAC (HMAC over any digest) keyed with `key`. HMAC takes keys of any length (RFC 2104
/// §2: a longer key is hashed first), so keying it cannot fail; this is the one place that
/// says so, for every HMAC the core computes.
pub fn keyed<M: hmac::digest::KeyInit>(key: &[u8]) -> M {
    match M::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    }
}

/// The HTTP method a URL is signed for (S3 binds it into the signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Method {
    /// GET.
    #[default]
    Get,
    /// HEAD.
    Head,
}

impl Method {
    /// `"GET"` / `"HEAD"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }

    /// Parses `GET` / `HEAD` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        if s.eq_ignore_ascii_case("GET") {
            Some(Method::Get)
        } else if s.eq_ignore_ascii_case("HEAD") {
            Some(Method::Head)
        } else {
            None
        }
    }
}

/// The signing window that holds `now` (docs/http.md, stable links): every replica with the same config
/// computes the same window, so it mints the same URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// `floor(now / bucket) * bucket`: the signing time.
    pub signed_at: u64,
    /// `signed_at + ttl`: the expiry (before honest capping).
    pub expires_at: u64,
    /// When the bucket rolls and a new URL is minted.
    pub rolls_at: u64,
}

impl Window {
    /// The window for `now` (Unix seconds) with `bucket` and `ttl` seconds. Config guarantees
    /// `bucket >= 1` and `ttl >= 2 * bucket`, so a URL handed out has at least
    /// `ttl - bucket` seconds left.
    ///
    /// ```
    /// use edgesign::sign::Window;
    /// // 15-minute buckets, 1-hour URLs: 10:07:30 signs as of 10:00:00.
    /// let w = Window::at(36_450, 900, 3600);
    /// assert_eq!(w.signed_at, 36_000);
    /// assert_eq!(w.expires_at, 39_600);
    /// assert_eq!(w.max_age(36_450), 450); // a redirect is cached until the bucket rolls
    /// ```
    pub fn at(now: u64, bucket: u64, ttl: u64) -> Self {
        let bucket = bucket.max(1);
        let signed_at = now - now % bucket;
        Window {
            signed_at,
            expires_at: signed_at.saturating_add(ttl),
            rolls_at: signed_at.saturating_add(bucket),
        }
    }

    /// Seconds from `now` until the bucket rolls: a redirect's `max-age`.
    pub fn max_age(&self, now: u64) -> u64 {
        self.rolls_at.saturating_sub(now)
    }
}

/// A freshly minted URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The full URL.
    pub url: String,
    /// Unix seconds when it stops working (honest: capped by scheme and credentials).
    pub expires_at: u64,
}
