//! Byte-exact encodings shared by the signers: SigV4 URI encoding, percent decoding,
//! CloudFront's base64 alphabet, base64url, hex, and the UTC calendar arithmetic that turns
//! Unix seconds into `X-Amz-Date` and back.
//!
//! Everything here is allocation-light and total: no input makes it panic.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// RFC 3986 §2.3 unreserved characters: the only bytes SigV4 leaves unencoded.
#[inline]
pub fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// SigV4 `UriEncode` (AWS SigV4 docs, "Create a canonical request"): every byte outside the
/// unreserved set becomes `%XX` with upper-case hex. With `keep_slash`, `/` stays literal,
/// which is how an S3 object key is turned into a path (botocore quotes with `safe="/~"`).
pub fn uri_encode_into(out: &mut String, bytes: &[u8], keep_slash: bool) {
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX_UPPER[usize::from(b >> 4)] as char);
            out.push(HEX_UPPER[usize::from(b & 0x0f)] as char);
        }
    }
}

/// [`uri_encode_into`] into a fresh string.
pub fn uri_encode(bytes: &[u8], keep_slash: bool) -> String {
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 2);
    uri_encode_into(&mut out, bytes, keep_slash);
    out
}

/// Encodes an object key for use as a URL path (`/` kept), exactly as botocore does.
///
/// ```
/// use edgesign::sign::encoding::encode_key;
/// assert_eq!(encode_key("a b/ü+=.txt"), "a%20b/%C3%BC%2B%3D.txt");
/// assert_eq!(encode_key("a//b/./c/../d"), "a//b/./c/../d"); // never normalised
/// ```
pub fn encode_key(key: &str) -> String {
    uri_encode(key.as_bytes(), true)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes. A `%` not followed by two hex digits stays literal, as S3 reads it.
/// `+` is a literal plus: S3 query canonicalisation does not treat it as a space.
pub fn percent_decode(s: &str) -> Cow<'_, [u8]> {
    percent_decode_bytes(s.as_bytes())
}

/// [`percent_decode`] over bytes (a key decoded once, decoded again).
pub fn percent_decode_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    if !bytes.contains(&b'%') {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex_val),
                bytes.get(i + 2).copied().and_then(hex_val),
            )
        {
            out.push(h << 4 | l);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    Cow::Owned(out)
}

/// The SigV4 canonical form of one raw query component: decoded once, then `UriEncode`d.
/// Borrowed when the raw text is already canonical (the common case for our own URLs).
pub fn canonical_component(raw: &str) -> Cow<'_, str> {
    if is_canonical(raw.as_bytes()) {
        return Cow::Borrowed(raw);
    }
    Cow::Owned(uri_encode(&percent_decode(raw), false))
}

/// Whether decoding then `UriEncode`ing `raw` would give `raw` back: every byte unreserved,
/// or an upper-case `%XX` escape of a byte that must stay escaped.
fn is_canonical(raw: &[u8]) -> bool {
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if is_unreserved(b) {
            i += 1;
            continue;
        }
        let upper_hex = |c: u8| c.is_ascii_digit() || (b'A'..=b'F').contains(&c);
        match (b, raw.get(i + 1), raw.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if upper_hex(h) && upper_hex(l) => {
                let byte = hex_val(h).unwrap_or(0) << 4 | hex_val(l).unwrap_or(0);
                if is_unreserved(byte) {
                    return false;
                }
                i += 3;
            }
            _ => return false,
        }
    }
    true
}

/// Lower-case hex of `bytes` into a fixed buffer (used for SHA-256 digests and signatures).
pub fn hex_lower<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [b'0'; N];
    // The buffer is always exactly twice the input in every caller; a mismatch leaves zeros
    // rather than panicking.
    let _ = hex::encode_to_slice(bytes, &mut out);
    out
}

/// CloudFront's URL-safe base64 (CloudFront developer guide, "Create a signature"):
/// standard base64 with `+`→`-`, `=`→`_`, `/`→`~`.
pub fn cloudfront_b64_encode(bytes: &[u8]) -> String {
    STANDARD
        .encode(bytes)
        .chars()
        .map(|c| match c {
            '+' => '-',
            '=' => '_',
            '/' => '~',
            c => c,
        })
        .collect()
}

/// Inverse of [`cloudfront_b64_encode`]; `None` on anything that is not valid.
pub fn cloudfront_b64_decode(s: &str) -> Option<Vec<u8>> {
    let std: String = s
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '=',
            '~' => '/',
            c => c,
        })
        .collect();
    STANDARD.decode(std.as_bytes()).ok()
}

/// base64url without padding (RFC 4648 §5), the native scheme's signature encoding.
pub fn b64url_encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Inverse of [`b64url_encode`].
pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.as_bytes()).ok()
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms", `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01 (inverse of `civil_from_days`).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn push_digits(out: &mut [u8], mut v: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Unix seconds → `YYYYMMDDTHHMMSSZ` (the `X-Amz-Date` basic ISO 8601 form).
/// Years past 9999 are clamped to 9999-12-31T23:59:59Z, which no signer accepts anyway.
pub fn amz_date(unix: u64) -> [u8; 16] {
    let unix = unix.min(253_402_300_799);
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut out = *b"00000000T000000Z";
    push_digits(&mut out[0..4], y as u64);
    push_digits(&mut out[4..6], u64::from(m));
    push_digits(&mut out[6..8], u64::from(d));
    push_digits(&mut out[9..11], secs / 3600);
    push_digits(&mut out[11..13], secs / 60 % 60);
    push_digits(&mut out[13..15], secs % 60);
    out
}

fn parse_digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        s.iter()
            .fold(0u64, |acc, &b| acc * 10 + u64::from(b - b'0')),
    )
}

/// `YYYYMMDDTHHMMSSZ` → Unix seconds; `None` unless the text is a real instant after 1970.
pub fn parse_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let y = parse_digits(&b[0..4])?;
    let m = parse_digits(&b[4..6])? as u32;
    let d = parse_digits(&b[6..8])? as u32;
    let hh = parse_digits(&b[9..11])?;
    let mm = parse_digits(&b[11..13])?;
    let ss = parse_digits(&b[13..15])?;
    if !(1..=12).contains(&m) || d == 0 || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let days = days_from_civil(y as i64, m, d);
    // Reject 2013-02-31 and friends: the date must survive the round trip.
    if civil_from_days(days) != (y as i64, m, d) || days < 0 {
        return None;
    }
    Some(days as u64 * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Unix seconds → RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` (what the JSON APIs and `inspect` print).
pub fn rfc3339(unix: u64) -> String {
    let a = amz_date(unix);
    let s = |r: std::ops::Range<usize>| std::str::from_utf8(&a[r]).unwrap_or("00");
    format!(
        "{}-{}-{}T{}:{}:{}Z",
        s(0..4),
        s(4..6),
        s(6..8),
        s(9..11),
        s(11..13),
        s(13..15)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amz_date_known_instants() {
        assert_eq!(&amz_date(1_369_353_600), b"20130524T000000Z");
        assert_eq!(&amz_date(0), b"19700101T000000Z");
        assert_eq!(&amz_date(951_782_400), b"20000229T000000Z");
        assert_eq!(parse_amz_date("20130524T000000Z"), Some(1_369_353_600));
        assert_eq!(parse_amz_date("20130231T000000Z"), None);
        assert_eq!(parse_amz_date("2013-05-24T00:00"), None);
        assert_eq!(rfc3339(1_893_456_000), "2030-01-01T00:00:00Z");
    }

    #[test]
    fn percent_decode_keeps_malformed_escapes() {
        assert_eq!(&*percent_decode("a%2Fb"), b"a/b");
        assert_eq!(&*percent_decode("100%"), b"100%");
        assert_eq!(&*percent_decode("%zz%4"), b"%zz%4");
        assert_eq!(&*percent_decode("a+b"), b"a+b");
    }

    #[test]
    fn canonical_components_are_borrowed_only_when_already_canonical() {
        for (raw, canon) in [
            ("AKID%2F20130524", "AKID%2F20130524"),
            ("a%2fb", "a%2Fb"),
            ("%41", "A"),
            ("a b", "a%20b"),
            ("100%", "100%25"),
            ("x+y", "x%2By"),
            ("~._-", "~._-"),
        ] {
            let got = canonical_component(raw);
            assert_eq!(got, canon, "{raw}");
            assert_eq!(matches!(got, Cow::Borrowed(_)), raw == canon, "{raw}");
        }
    }

    #[test]
    fn cloudfront_alphabet_round_trips() {
        let bytes = [0xfbu8, 0xff, 0xfe, 0x00];
        let enc = cloudfront_b64_encode(&bytes);
        assert!(!enc.contains(['+', '/', '=']));
        assert_eq!(cloudfront_b64_decode(&enc).as_deref(), Some(&bytes[..]));
    }
}
