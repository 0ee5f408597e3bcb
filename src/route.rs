//! Pure policy: the routes (`Route`, its `Mode` and `Access`), and `(host, path)` → route
//! and raw object key.
//!
//! The longest matching prefix wins; at equal length a route that names the host beats one
//! that does not, and one that names the port beats both. A route host without a port matches that name on any port; with a port,
//! only that port. The key is the raw rest of the path: never decoded or normalised here.

/// `redirect` or `stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 302 to the fresh URL.
    Redirect,
    /// Fetch and stream the body.
    Stream,
    /// Set CloudFront signed cookies for the key's directory and 302 to the unsigned URL.
    Cookie,
}

/// Who may use a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone.
    Public,
    /// Any authenticated caller.
    Authenticated,
    /// Callers scoped to `{org}/`.
    Org,
}

/// One `[[routes]]` entry.
#[derive(Debug, Clone)]
pub struct Route {
    /// Path prefix, starting with `/`.
    pub prefix: String,
    /// Host to match (lower-case) and optional port.
    pub host: Option<(String, Option<u16>)>,
    /// Index into `Config::origins`.
    pub origin: usize,
    /// redirect | stream.
    pub mode: Mode,
    /// public | authenticated | org.
    pub access: Access,
    /// Seconds after expiry during which a genuine URL is re-signed without credentials.
    pub stale_grace: u64,
}

/// A matched route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched<'p> {
    /// Index into `Config::routes`.
    pub route: usize,
    /// The raw object key (may be empty: the caller answers 404).
    pub raw_key: &'p str,
}

/// Splits a `Host` / `:authority` value into its name (as sent: routes compare it without
/// regard to case, so no lower-cased copy is made per request) and port.
fn split_host(host: &str) -> (&str, Option<u16>) {
    let host = host.trim();
    if let Some(rest) = host.strip_prefix('[')
        && let Some((v6, port)) = rest.split_once(']')
    {
        return (v6, port.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, p.parse().ok()),
        _ => (host, None),
    }
}

/// Finds the route for a request.
pub fn route<'p>(routes: &[Route], host: Option<&str>, path: &'p str) -> Option<Matched<'p>> {
    let host = host.map(split_host);
    let mut best: Option<(usize, u8, usize, &'p str)> = None;
    for (i, r) in routes.iter().enumerate() {
        let Some(rest) = path.strip_prefix(r.prefix.as_str()) else {
            continue;
        };
        let key = if r.prefix.ends_with('/') || rest.is_empty() {
            rest
        } else if let Some(k) = rest.strip_prefix('/') {
            k
        } else {
            continue;
        };
        // 0: any host; 1: this name on any port; 2: this name and port.
        let host_match = match (&r.host, &host) {
            (None, _) => 0u8,
            (Some((name, port)), Some((h, p))) => {
                if !name.eq_ignore_ascii_case(h) || (port.is_some() && port != p) {
                    continue;
                }
                1 + u8::from(port.is_some())
            }
            (Some(_), None) => continue,
        };
        let rank = (r.prefix.len(), host_match);
        if best.is_none_or(|(len, hm, _, _)| rank > (len, hm)) {
            best = Some((r.prefix.len(), host_match, i, key));
        }
    }
    best.map(|(_, _, route, raw_key)| Matched { route, raw_key })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(prefix: &str, host: Option<(&str, Option<u16>)>) -> Route {
        Route {
            prefix: prefix.into(),
            host: host.map(|(h, p)| (h.into(), p)),
            origin: 0,
            mode: Mode::Redirect,
            access: Access::Public,
            stale_grace: 0,
        }
    }

    #[test]
    fn longest_prefix_and_host_win() {
        let routes = [
            r("/", None),
            r("/files/", None),
            r("/", Some(("cdn.example.com", None))),
            r("/", Some(("cdn.example.com", Some(8443)))),
        ];
        assert_eq!(
            route(&routes, Some("x"), "/files/a%2F..b").unwrap(),
            Matched {
                route: 1,
                raw_key: "a%2F..b"
            }
        );
        assert_eq!(
            route(&routes, Some("CDN.example.com:80"), "/a")
                .unwrap()
                .route,
            2
        );
        assert_eq!(
            route(&routes, Some("cdn.example.com:8443"), "/a")
                .unwrap()
                .route,
            3,
            "the port-specific route"
        );
        assert_eq!(route(&routes, None, "/a").unwrap().route, 0);
        let only_port = [r("/", Some(("cdn.example.com", Some(8443))))];
        assert!(route(&only_port, Some("cdn.example.com:443"), "/a").is_none());
        assert!(route(&only_port, Some("cdn.example.com:8443"), "/a").is_some());
        let v6 = [r("/", Some(("::1", Some(8443))))];
        assert!(route(&v6, Some("[::1]:8443"), "/a").is_some());
        assert!(route(&v6, Some("[::2]:8443"), "/a").is_none());
        assert!(route(&v6, Some("[::1]:443"), "/a").is_none());
    }

    #[test]
    fn a_prefix_without_slash_matches_whole_segments() {
        let routes = [r("/files", None)];
        assert_eq!(route(&routes, None, "/files/a").unwrap().raw_key, "a");
        assert!(route(&routes, None, "/filesystem").is_none());
    }
}
