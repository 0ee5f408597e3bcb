//! Ground floor: what the service learns about one request (its id, route kind, cache
//! outcome), kept task-locally while the request runs, for the access log, the request
//! metrics and the log line of a 5xx.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the service learned about one request, for its access log line and metrics.
#[derive(Debug, Default)]
pub struct Notes {
    id: Option<http::HeaderValue>,
    route: Cell<&'static str>,
    cache: Cell<Option<bool>>,
}

impl Notes {
    /// The route kind, or `-` when none was noted.
    pub fn route(&self) -> &'static str {
        match self.route.get() {
            "" => "-",
            r => r,
        }
    }

    /// `hit`, `miss`, or `-` when no signature was looked up.
    pub fn cache(&self) -> &'static str {
        match self.cache.get() {
            Some(true) => "hit",
            Some(false) => "miss",
            None => "-",
        }
    }
}

tokio::task_local! {
    static NOTES: Notes;
}

/// Runs `fut` (request `id`) with fresh notes; returns its output and what was noted.
///
/// A plain function over `map`, not an `async fn`: an async wrapper keeps its argument and
/// the future it awaits side by side, doubling the request's future (kilobytes that every
/// request, and every HTTP/2 stream's spawn, would copy).
pub fn with_notes<F: Future>(
    id: http::HeaderValue,
    fut: F,
) -> impl Future<Output = (F::Output, Notes)> {
    use futures_util::FutureExt;
    let fresh = Notes {
        id: Some(id),
        ..Notes::default()
    };
    NOTES.scope(
        fresh,
        fut.map(|out| {
            // Still inside the scope: `map` runs in the poll that finished `fut`.
            let notes = NOTES.with(|n| Notes {
                id: n.id.clone(),
                route: Cell::new(n.route.get()),
                cache: Cell::new(n.cache.get()),
            });
            (out, notes)
        }),
    )
}

/// The running request's id and route kind, for a log line written on its behalf.
pub fn current() -> (Option<http::HeaderValue>, &'static str) {
    NOTES
        .try_with(|n| (n.id.clone(), n.route()))
        .unwrap_or((None, "-"))
}

/// Notes the kind of route serving the request (`redirect`, `stream`, `proxy_file`, …).
pub fn note_route(route: &'static str) {
    let _ = NOTES.try_with(|n| n.route.set(route));
}

/// Notes a signature-cache outcome (the first one of a request counts).
pub fn note_cache(hit: bool) {
    let _ = NOTES.try_with(|n| {
        if n.cache.get().is_none() {
            n.cache.set(Some(hit));
        }
    });
}

/// Per-process request ids: a random prefix (so replicas differ) and a counter.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
}

impl RequestIds {
    /// A generator with a random prefix.
    pub fn new() -> Self {
        use std::hash::{BuildHasher, Hasher};
        // std seeds RandomState from the OS: a different prefix per process.
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        RequestIds {
            prefix: seed as u32,
            next: AtomicU64::new(1),
        }
    }

    /// The next id, 24 lowercase hex digits (written by hand: this runs on every request),
    /// by value: the caller puts it where it is kept, in one allocation.
    pub fn next(&self) -> [u8; 24] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let value = (u128::from(self.prefix) << 64) | u128::from(n);
        let mut out = [0u8; 24];
        for (i, digit) in out.iter_mut().enumerate() {
            *digit = HEX[((value >> ((23 - i) * 4)) & 0xf) as usize];
        }
        out
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test")]
mod tests {
    #[test]
    fn request_ids_are_24_hex_digits_and_count_up() {
        let ids = super::RequestIds::new();
        let text = |id: [u8; 24]| String::from_utf8(id.to_vec()).unwrap();
        let (a, b) = (text(ids.next()), text(ids.next()));
        assert_eq!(a.len(), 24);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a[..8], b[..8], "one prefix per process");
        assert_eq!(
            u64::from_str_radix(&b[8..], 16).unwrap(),
            u64::from_str_radix(&a[8..], 16).unwrap() + 1
        );
        assert_eq!(&a[8..], "0000000000000001");
    }
}
