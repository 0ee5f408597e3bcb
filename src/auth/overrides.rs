//! Which `response-*` overrides a stable link may carry. Pure.
//!
//! An override is signed into the fresh URL, and the store then answers with the header the
//! caller chose, on a URL edgesign handed out (stream mode: on edgesign's own origin, where
//! its session cookie lives). So:
//!
//! - only authenticated callers may set them (S3 refuses them on anonymous requests);
//! - each may appear once, and only S3's six are known;
//! - `response-content-type` may not name an active type (HTML, XML, SVG, script): the
//!   allowed types are the passive ones a download or a player needs;
//! - `response-cache-control` may not let a shared cache keep an object that needed
//!   credentials (`public`, `s-maxage`);
//! - together they are at most [`MAX_BYTES`] long (they are part of the cache key).

use super::Principal;
use crate::Error;
use crate::sign::encoding::percent_decode;

/// Longest run of overrides accepted, raw bytes.
pub const MAX_BYTES: usize = 2048;

/// The overrides S3 knows (GetObject's `response-*` parameters).
const KNOWN: [&str; 6] = [
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
];

/// Checks a stable link's overrides (`name=value`, raw) for `principal`. `private`: the
/// object needed credentials (so no shared cache may keep it).
pub fn check(overrides: &[&str], principal: &Principal, private: bool) -> Result<(), Error> {
    if overrides.is_empty() {
        return Ok(());
    }
    let bad = |m: &str| Err(Error::BadRequest(m.to_owned()));
    if !principal.is_authenticated() {
        return bad(
            "response-* overrides need an authenticated caller, as S3 refuses them on anonymous requests",
        );
    }
    if overrides.iter().map(|o| o.len() + 1).sum::<usize>() > MAX_BYTES {
        return bad(&format!(
            "response-* overrides are at most {MAX_BYTES} bytes together"
        ));
    }
    let mut seen: Vec<&str> = Vec::with_capacity(overrides.len());
    for o in overrides {
        let (name, value) = o.split_once('=').unwrap_or((o, ""));
        let Some(known) = KNOWN.iter().find(|k| name.eq_ignore_ascii_case(k)) else {
            return bad(&format!(
                "unknown override; use one of {}",
                KNOWN.join(", ")
            ));
        };
        if seen.contains(known) {
            return bad(&format!("{known} appears more than once"));
        }
        seen.push(known);
        // A `+` may be a space or a plus depending on who decodes the query: judge both.
        let decoded = percent_decode(value);
        let spaced = percent_decode(&value.replace('+', " ")).into_owned();
        for text in [&*decoded, &spaced[..]] {
            let text = String::from_utf8_lossy(text);
            match *known {
                "response-content-type" if !is_passive_type(&text) => {
                    return bad(
                        "response-content-type may name only a passive type (no HTML, XML, SVG or script)",
                    );
                }
                "response-cache-control" if private && lets_shared_caches_keep(&text) => {
                    return bad(
                        "response-cache-control may not be public or set s-maxage for an object that needs credentials",
                    );
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Whether a media type is one that a browser renders without running anything: images,
/// audio, video and fonts (never SVG or any `+xml`), a few plain text types, and
/// `application/*` except markup and script. The whole value must parse strictly as
/// `type/subtype *(; name=value)` with tokens only: browsers split `Content-Type` on commas
/// and take the last type (`text/plain;x=,text/html` is HTML), so a comma, a quote, a
/// backslash or anything outside printable ASCII is refused, as is text that does not parse.
pub fn is_passive_type(content_type: &str) -> bool {
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    let token = |s: &str| !s.is_empty() && s.bytes().all(tchar);
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params_ok = parts.all(|p| {
        p.trim()
            .split_once('=')
            .is_some_and(|(name, value)| token(name.trim()) && token(value.trim()))
    });
    let Some((ty, sub)) = essence.split_once('/') else {
        return false;
    };
    if !params_ok || !token(ty) || !token(sub) {
        return false;
    }
    let active = ["xml", "html", "script", "xsl", "svg", "flash", "java"];
    if active.iter().any(|a| sub.contains(a)) {
        return false;
    }
    match ty {
        "image" | "audio" | "video" | "font" | "application" => true,
        "text" => matches!(
            sub,
            "plain" | "csv" | "tab-separated-values" | "markdown" | "vtt" | "calendar"
        ),
        _ => false,
    }
}

/// Whether a `Cache-Control` value lets a shared cache keep the response.
fn lets_shared_caches_keep(cache_control: &str) -> bool {
    cache_control.split(',').any(|d| {
        let name = d.split('=').next().unwrap_or("").trim();
        name.eq_ignore_ascii_case("public") || name.eq_ignore_ascii_case("s-maxage")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::ApiKeyKind;

    fn user() -> Principal {
        Principal::ApiKey {
            kind: ApiKeyKind::Secret,
            org: Some("acme".into()),
            index: 0,
        }
    }

    #[test]
    fn active_types_are_refused_in_every_spelling() {
        for ct in [
            "text/html",
            "TEXT/HTML; charset=utf-8",
            "text%2Fhtml",
            "application/xhtml+xml",
            "image/svg+xml",
            "image%2Fsvg%2Bxml",
            "image/svg xml",
            "text/xml",
            "application/xml",
            "text/javascript",
            "application/javascript",
            "application/ecmascript",
            "multipart/x-mixed-replace",
            "text/xsl",
            "html",
            "",
            "text/plain\r\nx: y",
            // Browsers take the last of a comma-separated list (Fetch: "extract a MIME type").
            "text/plain;x=,text/html",
            "text/plain, text/html",
            "text/plain;charset=\"utf-8,text/html\"",
        ] {
            let o = format!("response-content-type={ct}");
            assert!(check(&[&o], &user(), false).is_err(), "{ct}");
        }
        for ct in [
            "application/pdf",
            "image/png",
            "video/mp4",
            "text/plain; charset=utf-8",
            "application/octet-stream",
            "text%2Fcsv",
        ] {
            let o = format!("response-content-type={ct}");
            assert!(check(&[&o], &user(), false).is_ok(), "{ct}");
        }
    }

    #[test]
    fn who_may_set_overrides_and_how_often() {
        let o = ["response-content-disposition=attachment"];
        assert_eq!(
            check(&o, &Principal::Anonymous, false)
                .unwrap_err()
                .status(),
            400
        );
        assert!(check(&o, &user(), false).is_ok());
        let twice = [
            "response-content-type=image/png",
            "response-content-type=text/html",
        ];
        assert!(check(&twice, &user(), false).is_err());
        assert!(check(&["response-x=1"], &user(), false).is_err());
        let long = format!("response-content-disposition={}", "a".repeat(MAX_BYTES));
        assert!(check(&[&long], &user(), false).is_err());
    }

    #[test]
    fn a_private_object_may_not_be_made_publicly_cacheable() {
        for cc in [
            "public,max-age=31536000",
            "max-age=60,%20s-maxage=600",
            "PUBLIC",
        ] {
            let o = format!("response-cache-control={cc}");
            assert!(check(&[&o], &user(), true).is_err(), "{cc}");
            assert!(check(&[&o], &user(), false).is_ok(), "{cc}");
        }
        assert!(check(&["response-cache-control=no-cache"], &user(), true).is_ok());
    }
}
