//! A URL split into its raw parts, never decoded, re-encoded or normalised.
//!
//! General-purpose URL crates resolve `./` and `../`, fold `//` and re-escape bytes; a
//! signature over the path then no longer matches what the signer saw. This splitter only
//! finds the boundaries (RFC 3986 §3) and validates the authority.

use std::net::IpAddr;

use super::Error;

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UrlScheme {
    /// Plain HTTP (default port 80).
    Http,
    /// HTTP over TLS (default port 443).
    Https,
}

impl UrlScheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            UrlScheme::Http => "http",
            UrlScheme::Https => "https",
        }
    }

    /// 80 or 443.
    pub fn default_port(self) -> u16 {
        match self {
            UrlScheme::Http => 80,
            UrlScheme::Https => 443,
        }
    }
}

/// An absolute `http(s)` URL as raw slices of the original text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawUrl<'a> {
    /// The scheme.
    pub scheme: UrlScheme,
    /// Host and optional port exactly as written (`Example.com:8443`, `[::1]:9000`).
    pub authority: &'a str,
    /// The host without port or brackets, as written.
    pub host: &'a str,
    /// The explicit port, if one was written.
    pub port: Option<u16>,
    /// The raw path, starting with `/` (a URL with no path gets `/`).
    pub path: &'a str,
    /// The raw query without `?` (empty when absent). The fragment is dropped.
    pub query: &'a str,
}

impl<'a> RawUrl<'a> {
    /// Splits `url`. Rejects other schemes, userinfo, empty hosts, bad ports, and bytes that a
    /// client must percent-encode (controls, space, non-ASCII).
    pub fn parse(url: &'a str) -> Result<Self, Error> {
        let bad = |why: &str| Error::BadRequest(format!("invalid URL: {why}"));
        if let Some(b) = url.bytes().find(|b| *b <= b' ' || *b >= 0x7f) {
            return Err(bad(&format!("byte 0x{b:02x} must be percent-encoded")));
        }
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("not absolute"))?;
        let scheme = if scheme.eq_ignore_ascii_case("https") {
            UrlScheme::Https
        } else if scheme.eq_ignore_ascii_case("http") {
            UrlScheme::Http
        } else {
            return Err(bad("scheme must be http or https"));
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, rest) = rest.split_at(end);
        if authority.contains('@') {
            return Err(bad("userinfo is not allowed"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port"))?;
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path = if path.is_empty() { "/" } else { path };
        Ok(RawUrl {
            scheme,
            authority,
            host,
            port,
            path,
            query,
        })
    }

    /// The port in effect: the explicit one or the scheme's default.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    /// The `Host` header a signer uses: the authority without a default port (botocore and
    /// AWS strip `:443` from https and `:80` from http, but keep the port in the URL).
    pub fn signing_host(&self) -> &'a str {
        match self.port {
            Some(p) if p == self.scheme.default_port() => {
                let cut = self.authority.rfind(':').unwrap_or(self.authority.len());
                &self.authority[..cut]
            }
            _ => self.authority,
        }
    }

    /// `scheme://authority`, as written.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.authority)
    }

    /// Raw `(name, value)` pairs of the query, in order; empty segments skipped.
    pub fn query_pairs(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        query_pairs(self.query)
    }
}

/// Raw `(name, value)` pairs of a query string, in order; empty segments skipped.
pub fn query_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query_segments(query).map(split_pair)
}

/// Raw `name=value` segments of a query string, in order; empty segments skipped.
pub fn query_segments(query: &str) -> impl Iterator<Item = &str> {
    query.split('&').filter(|p| !p.is_empty())
}

/// `name=value` → (name, value); a segment without `=` has an empty value.
pub fn split_pair(segment: &str) -> (&str, &str) {
    segment.split_once('=').unwrap_or((segment, ""))
}

/// `base` followed by raw query segments (`?` then `&`-joined, `&` if `base` has a query).
pub fn join(base: &str, segments: &[&str]) -> String {
    let mut out =
        String::with_capacity(base.len() + segments.iter().map(|s| s.len() + 1).sum::<usize>());
    out.push_str(base);
    let mut sep = if base.contains('?') { '&' } else { '?' };
    for s in segments {
        out.push(sep);
        out.push_str(s);
        sep = '&';
    }
    out
}

/// Splits `host[:port]` (with `[v6]` literals); `None` if the host is empty or the port bad.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        match after {
            "" => (v6, None),
            p => (v6, Some(p.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
    {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(p.parse::<u16>().ok().filter(|p| *p != 0)?)
        }
        Some(_) => return None,
    };
    Some((host, port))
}

/// Whether `host` is an IP literal (v4 dotted quad or v6), as opposed to a DNS name.
pub fn is_ip_literal(host: &str) -> bool {
    host.parse::<IpAddr>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_raw_path_and_query() {
        let u = RawUrl::parse("http://127.0.0.1:8014/b-1/a//b/./c/../d.txt?x=%2F&y#frag").unwrap();
        assert_eq!(u.path, "/b-1/a//b/./c/../d.txt");
        assert_eq!(u.query, "x=%2F&y");
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, Some(8014));
        assert_eq!(
            u.query_pairs().collect::<Vec<_>>(),
            vec![("x", "%2F"), ("y", "")]
        );
    }

    #[test]
    fn default_ports_are_dropped_from_the_signing_host_only() {
        let u = RawUrl::parse("https://minio.example.com:443/b/p.txt").unwrap();
        assert_eq!(u.signing_host(), "minio.example.com");
        assert_eq!(u.authority, "minio.example.com:443");
        let u = RawUrl::parse("http://[::1]:80/x").unwrap();
        assert_eq!(u.signing_host(), "[::1]");
    }

    #[test]
    fn rejects_userinfo_and_odd_authorities() {
        for bad in [
            "http://user@host/x",
            "http://host:0/x",
            "http://host:99999/x",
            "http://:80/x",
            "ftp://host/x",
            "http://ho st/x",
            "http://host/é",
            "/relative",
        ] {
            assert!(RawUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
