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
///
/// Each thread takes the counter's values [`ID_BLOCK`] at a time, so the worker threads do
/// not all write one shared atomic on every request. Ids stay unique; across threads they
/// are not issued in order.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u32,
    next: AtomicU64,
    /// Tells this generator's blocks from another's in a thread's [`ID_BLOCKS`].
    id: u64,
}

/// How many ids a thread takes from the shared counter at once.
const ID_BLOCK: u64 = 256;

/// Generators ever made in this process, so each has its own number.
static GENERATORS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's block of ids: the generator it came from, the next id, the end.
    static ID_BLOCKS: Cell<(u64, u64, u64)> = const { Cell::new((u64::MAX, 0, 0)) };
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
            id: GENERATORS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The next id, 24 lowercase hex digits (written by hand: this runs on every request),
    /// by value: the caller puts it where it is kept, in one allocation.
    pub fn next(&self) -> [u8; 24] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let n = ID_BLOCKS.with(|block| {
            let (id, next, end) = block.get();
            let (next, end) = if id == self.id && next < end {
                (next, end)
            } else {
                let start = self.next.fetch_add(ID_BLOCK, Ordering::Relaxed);
                (start, start + ID_BLOCK)
            };
            block.set((self.id, next + 1, end));
            next
        });
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

    /// Threads take blocks of ids; no id is handed out twice, from one generator shared by
    /// threads or from two used in turn on one thread (each keeps its own counter).
    #[test]
    fn request_ids_never_repeat_across_threads_or_generators() {
        let ids = std::sync::Arc::new(super::RequestIds::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let ids = ids.clone();
                std::thread::spawn(move || (0..1000).map(|_| ids.next()).collect::<Vec<_>>())
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for thread in threads {
            for id in thread.join().unwrap() {
                assert!(
                    seen.insert(id),
                    "{:?} handed out twice",
                    String::from_utf8_lossy(&id)
                );
            }
        }
        assert_eq!(seen.len(), 4000);
        // Two generators in turn on this thread, then one of them on another thread: a block
        // taken from one generator must never be spent on the other.
        let (a, b) = (
            super::RequestIds::new(),
            std::sync::Arc::new(super::RequestIds::new()),
        );
        let mut from_b = std::collections::HashSet::new();
        for _ in 0..1000 {
            a.next();
            assert!(from_b.insert(b.next()));
        }
        let elsewhere = {
            let b = b.clone();
            std::thread::spawn(move || (0..1000).map(|_| b.next()).collect::<Vec<_>>())
        };
        for id in elsewhere.join().unwrap() {
            assert!(
                from_b.insert(id),
                "{:?} handed out twice",
                String::from_utf8_lossy(&id)
            );
        }
    }
}
