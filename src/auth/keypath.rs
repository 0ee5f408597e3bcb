//! An object key as an origin or a front might read it. Pure.
//!
//! S3 keeps `a/../b` as a literal key, but file-system-backed stores (s3s-fs, MinIO in FS
//! mode, a `local` origin), normalising CDNs and some fronts resolve dot segments (RFC 3986
//! §5.2.4), merge repeated slashes or read `\` as `/`. A check made on the key as written
//! (`public/…`, `{org}/…`) is then a check on a different object than the one served. So a
//! key is judged in every form it might take:
//!
//! - as written (percent-decoded: `%2e%2e` is `..`), and decoded once more when that still
//!   leaves an escape (`%252e`: a chain that decodes twice reads `.`);
//! - with dot segments resolved, empty segments kept (RFC 3986);
//! - with dot segments resolved after empty segments are merged (a front that folds `//`).
//!
//! A dot segment is `.` or `..`, also with a path parameter (`..;x`, which Tomcat-style fronts
//! read as `..`). A key whose dot segments climb above its root in any form is refused
//! outright; a prefix (public prefix, org scope, wildcard) holds for a key only if it holds in
//! every form.

use std::borrow::Cow;

use crate::Error;
use crate::sign::encoding::{percent_decode, percent_decode_bytes};

/// Longest object key accepted, in bytes once decoded: S3's and GCS's limit, and Azure's
/// for blob names. It also bounds what one signature-cache entry can weigh.
pub const MAX_KEY_BYTES: usize = 1024;

/// A key judged harmless: its forms, for prefix checks.
#[derive(Debug, Clone)]
pub struct Judged<'k> {
    /// Percent-decoded, as written.
    written: Cow<'k, [u8]>,
    /// Every other form: decoded twice, and resolved, when they differ from `written`.
    others: Vec<Vec<u8>>,
}

impl Judged<'_> {
    /// Every form the key might take at an origin or a front.
    pub fn forms(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&*self.written).chain(self.others.iter().map(Vec::as_slice))
    }

    /// Whether every form starts with `prefix`.
    pub fn all_start_with(&self, prefix: &[u8]) -> bool {
        self.forms().all(|f| f.starts_with(prefix))
    }

    /// Whether every form lies strictly inside the directory `dir` (`{dir}/` and at least one
    /// more byte).
    pub fn all_inside(&self, dir: &str) -> bool {
        self.forms().all(|f| {
            f.len() > dir.len() + 1 && f.starts_with(dir.as_bytes()) && f[dir.len()] == b'/'
        })
    }

    /// The key as written, decoded.
    pub fn written(&self) -> &[u8] {
        &self.written
    }
}

fn is_sep(b: u8) -> bool {
    b == b'/' || b == b'\\'
}

/// `.` or `..` (`Some(true)` for `..`), also with a `;` path parameter.
fn dot_segment(seg: &[u8]) -> Option<bool> {
    let name = seg.split(|b| *b == b';').next().unwrap_or(seg);
    match name {
        b"." => Some(false),
        b".." => Some(true),
        _ => None,
    }
}

/// Judges a raw key (as it appears in a path). `400 bad_request` when it is longer than
/// [`MAX_KEY_BYTES`] or when its dot segments would climb above its root in any form.
pub fn judge(raw_key: &str) -> Result<Judged<'_>, Error> {
    // The common key (no escape, no segment that starts with a dot) in one pass, on every
    // request of the hit path: its only form is itself.
    let mut segment_start = true;
    let plain = raw_key.len() <= MAX_KEY_BYTES
        && raw_key.bytes().all(|b| {
            let ok = b != b'%' && !(b == b'.' && segment_start);
            segment_start = is_sep(b);
            ok
        });
    if plain {
        return Ok(Judged {
            written: Cow::Borrowed(raw_key.as_bytes()),
            others: Vec::new(),
        });
    }
    let written = percent_decode(raw_key);
    if written.len() > MAX_KEY_BYTES {
        return Err(Error::BadRequest(format!(
            "object keys are at most {MAX_KEY_BYTES} bytes"
        )));
    }
    let mut others = Vec::new();
    if written.contains(&b'%') {
        let twice = percent_decode_bytes(&written);
        if *twice != *written {
            others.push(twice.into_owned());
        }
    }
    let has_dots = |key: &[u8]| key.split(|b| is_sep(*b)).any(|s| dot_segment(s).is_some());
    let climbs = || {
        Error::BadRequest(
            "the key's dot segments (. and ..) climb above its root; such keys are not served"
                .into(),
        )
    };
    // Nothing is allocated for the common key: no escape, no dot segment.
    let mut resolved = Vec::new();
    for form in std::iter::once(&*written).chain(others.iter().map(Vec::as_slice)) {
        if has_dots(form) {
            resolved.push(resolve(form, true).ok_or_else(climbs)?);
            resolved.push(resolve(form, false).ok_or_else(climbs)?);
        }
    }
    others.extend(resolved);
    Ok(Judged { written, others })
}

/// Judges the fixed part of a wildcard (a CloudFront policy's `Resource` before its first `*`
/// or `?`), relative to the origin. Beyond [`judge`], the wildcard must not continue a dot
/// segment or an escape: `acme/.*` covers `acme/../other/x`, and `acme/%2*` covers
/// `acme/%2e%2e/other/x`, though the fixed part alone looks harmless.
pub fn judge_wildcard_prefix(raw_prefix: &str) -> Result<Judged<'_>, Error> {
    let partial = raw_prefix.rsplit(['/', '\\']).next().unwrap_or("");
    let decoded = percent_decode(partial);
    let open_escape = {
        let b = partial.as_bytes();
        b.ends_with(b"%") || (b.len() >= 2 && b[b.len() - 2] == b'%')
    };
    let continues_dots = !decoded.is_empty() && decoded.iter().all(|b| *b == b'.');
    if open_escape || continues_dots || dot_segment(&decoded).is_some() {
        return Err(Error::Forbidden(
            "the URL's policy has a wildcard that continues a dot segment or an escape",
        ));
    }
    judge(raw_prefix)
}

/// RFC 3986 §5.2.4 on a relative key, `/` and `\` both separators; `None` when a `..` has
/// nothing left to remove. With `keep_empty` false, empty segments are dropped first.
fn resolve(key: &[u8], keep_empty: bool) -> Option<Vec<u8>> {
    let mut out: Vec<&[u8]> = Vec::new();
    let segs: Vec<&[u8]> = key.split(|b| is_sep(*b)).collect();
    let last = segs.len() - 1;
    let mut trailing_dir = false;
    for (i, seg) in segs.into_iter().enumerate() {
        trailing_dir = false;
        match (dot_segment(seg), seg) {
            (Some(false), _) => trailing_dir = true,
            (Some(true), _) => {
                out.pop()?;
                trailing_dir = true;
            }
            (None, b"") if !keep_empty && i != last => {}
            (None, s) => out.push(s),
        }
    }
    let mut joined = out.join(&b'/');
    if trailing_dir && !joined.is_empty() {
        joined.push(b'/');
    }
    Some(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forms(k: &str) -> Vec<String> {
        judge(k)
            .unwrap()
            .forms()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect()
    }

    #[test]
    fn climbing_keys_are_refused_in_every_spelling() {
        for k in [
            "..",
            "../x",
            "public/../../other/x",
            "%2e%2e/x",
            "%2E%2E%2Fx",
            "a/%2e%2e/%2e%2e/x",
            // Decoded twice by a chain of fronts, or read as .. by a Tomcat-style front.
            "a/%252e%252e/%252e%252e/x",
            "a/..;x/..;y/z",
            "a\\..\\..\\x",
            // A front that merges slashes reads this as a/../../x.
            "a//../../x",
            "./../x",
        ] {
            assert_eq!(judge(k).unwrap_err().status(), 400, "{k}");
        }
    }

    #[test]
    fn harmless_dot_segments_stay_legal_with_their_resolved_forms() {
        assert_eq!(
            forms("x//y/./z/../w.txt"),
            ["x//y/./z/../w.txt", "x//y/w.txt", "x/y/w.txt"]
        );
        assert_eq!(forms("plain/key.txt"), ["plain/key.txt"]);
        assert_eq!(forms("a%20b/c"), ["a b/c"]);
        assert_eq!(forms("a/b/.."), ["a/b/..", "a/", "a/"]);
    }

    #[test]
    fn a_prefix_holds_only_if_it_holds_in_every_form() {
        let j = judge("public/../private/secret.txt").unwrap();
        assert!(!j.all_start_with(b"public/"));
        assert!(
            !judge("public/%252e%252e/private/x")
                .unwrap()
                .all_start_with(b"public/")
        );
        assert!(
            !judge("public/..;/private/x")
                .unwrap()
                .all_start_with(b"public/")
        );
        // A literal percent sign is still a key like any other.
        assert!(
            judge("public/100%25%20sure.txt")
                .unwrap()
                .all_start_with(b"public/")
        );
        assert!(judge("public/a/./b").unwrap().all_start_with(b"public/"));
        // An org scope: as written it is inside acme/, resolved it is not.
        assert!(!judge("acme/../other/x").unwrap().all_inside("acme"));
        assert!(!judge("acme//../other/x").unwrap().all_inside("acme"));
        assert!(judge("acme/x/../y").unwrap().all_inside("acme"));
        assert!(!judge("acme/x/..").unwrap().all_inside("acme"));
    }

    #[test]
    fn a_wildcard_may_not_continue_a_dot_segment_or_an_escape() {
        for p in [
            "acme/.",
            "acme/..",
            "acme/%2e",
            "acme/%2",
            "acme/%",
            "acme/x/%2E%2E",
            ".",
        ] {
            assert!(judge_wildcard_prefix(p).is_err(), "{p}");
        }
        for p in ["acme/", "acme/videos/ep", "acme/.hidden-", "acme/a.b"] {
            assert!(judge_wildcard_prefix(p).is_ok(), "{p}");
        }
    }

    #[test]
    fn keys_longer_than_s3_allows_are_refused() {
        assert!(judge(&"a".repeat(MAX_KEY_BYTES)).is_ok());
        assert_eq!(
            judge(&"a".repeat(MAX_KEY_BYTES + 1)).unwrap_err().status(),
            400
        );
    }
}
