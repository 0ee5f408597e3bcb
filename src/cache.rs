//! The signature cache (DESIGN.md §3): moka, keyed by (origin, object key, method,
//! overrides, variant, bucket start), each entry living until its bucket ends, bounded by
//! `cache.max_entries`. Concurrent misses for one key sign once (moka's `try_get_with` is
//! single-flight). A hit performs no HMAC or RSA operation.
//!
//! moka's synchronous cache, not its async one: a hit is a plain function call (the async
//! `get` is a 700-byte future on every request), and a miss signs synchronously. The caller
//! decides where a miss runs: HMAC signing (microseconds) on the worker, RSA on the blocking
//! pool ([`SignatureCache::get_or_sign`] is then called from there, so callers waiting on the
//! same key wait there too, never on a worker).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Error;
use crate::ops::Metrics;
use crate::sign::{Method, Signed};

/// Everything that makes two minted URLs differ. Pure data; derive it with [`CacheKey::new`].
#[derive(Debug, Clone, Eq)]
pub struct CacheKey {
    origin: usize,
    raw_key: Box<str>,
    method: Method,
    /// Raw extra query segments (`response-*` overrides, or a stale URL's own parameters).
    params: Box<str>,
    /// What else shapes the URL: empty for stable links; for a re-signed URL, the scheme's
    /// retained conditions (signed headers, custom-policy conditions).
    variant: Box<str>,
    bucket_start: u64,
}

/// Compared by hand, eight bytes at a time, not by `str`'s `==`: that calls libc's `memcmp`,
/// whose AVX-512 masked loads cost more than the rest of a cache hit put together on the
/// AMD EPYC machine of BENCHMARKS.md (4 % of all CPU time under the redirect load, for a
/// 15-byte key).
impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.origin == other.origin
            && self.bucket_start == other.bucket_start
            && self.method == other.method
            && same_bytes(self.raw_key.as_bytes(), other.raw_key.as_bytes())
            && same_bytes(self.params.as_bytes(), other.params.as_bytes())
            && same_bytes(self.variant.as_bytes(), other.variant.as_bytes())
    }
}

/// Hashes every field `eq` compares, so equal keys hash alike.
impl std::hash::Hash for CacheKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.origin.hash(state);
        self.raw_key.hash(state);
        self.method.hash(state);
        self.params.hash(state);
        self.variant.hash(state);
        self.bucket_start.hash(state);
    }
}

/// `a == b`, without a call to `memcmp`.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    fn word(bytes: &[u8]) -> u64 {
        let mut w = [0u8; 8];
        w[..bytes.len()].copy_from_slice(bytes);
        u64::from_ne_bytes(w)
    }
    a.len() == b.len()
        && a.chunks(8)
            .zip(b.chunks(8))
            .all(|(x, y)| word(x) == word(y))
}

impl CacheKey {
    /// The cache key of one URL to mint.
    pub fn new(
        origin: usize,
        raw_key: &str,
        method: Method,
        params: &[&str],
        variant: &str,
        bucket_start: u64,
    ) -> Self {
        CacheKey {
            origin,
            raw_key: raw_key.into(),
            method,
            params: params.join("&").into_boxed_str(),
            variant: variant.into(),
            bucket_start,
        }
    }
}

/// A cached URL, its `Location` header built once, and how long it may live in the cache.
#[derive(Debug)]
pub struct Entry {
    /// The URL.
    pub signed: Signed,
    /// The URL as a header value (shared, so a cache hit copies nothing); `None` when the URL
    /// cannot be a header.
    pub location: Option<http::HeaderValue>,
    /// Until its bucket ends.
    live_for: Duration,
}

impl Entry {
    /// An entry for `signed` that is not cached (a still-valid URL served as it is).
    pub fn uncached(signed: Signed) -> Arc<Entry> {
        Self::new(signed, Duration::ZERO)
    }

    fn new(signed: Signed, live_for: Duration) -> Arc<Entry> {
        let location =
            http::HeaderValue::from_maybe_shared(bytes::Bytes::from(signed.url.clone())).ok();
        Arc::new(Entry {
            signed,
            location,
            live_for,
        })
    }
}

struct UntilBucketEnds;

impl moka::Expiry<CacheKey, Arc<Entry>> for UntilBucketEnds {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &Arc<Entry>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.live_for)
    }
}

/// The cache plus counters the tests and metrics read. Cloning shares it.
#[derive(Clone)]
pub struct SignatureCache {
    inner: moka::sync::Cache<CacheKey, Arc<Entry>, foldhash::fast::RandomState>,
    counts: Arc<Counts>,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Counts {
    signing_ops: AtomicU64,
    misses: AtomicU64,
    hits: AtomicU64,
}

impl std::fmt::Debug for SignatureCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureCache")
            .field("entries", &self.inner.entry_count())
            .field("signing_ops", &self.signing_ops())
            .finish()
    }
}

impl SignatureCache {
    /// A cache bounded to `max_entries` URLs, counting lookups into `metrics` too.
    pub fn new(max_entries: u64, metrics: Arc<Metrics>) -> Self {
        SignatureCache {
            inner: moka::sync::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(UntilBucketEnds)
                .build_with_hasher(foldhash::fast::RandomState::default()),
            counts: Arc::default(),
            metrics,
        }
    }

    /// The cached URL for `key`, counted as a hit; `None` (not counted) when it must be
    /// minted, by [`SignatureCache::get_or_sign`].
    pub fn get(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        let entry = self.inner.get(key)?;
        self.hit();
        Some(entry)
    }

    fn hit(&self) {
        self.counts.hits.fetch_add(1, Ordering::Relaxed);
        self.metrics.cache_lookup(true);
    }

    /// The cached URL for `key`, or the one `sign` mints, on this thread, once however many
    /// callers ask at the same moment (they wait for it). The entry lives until the bucket
    /// rolls at `rolls_at`, or until the URL dies if sooner. Also says whether this call
    /// minted it (a miss).
    pub fn get_or_sign(
        &self,
        key: CacheKey,
        now: u64,
        rolls_at: u64,
        sign: impl FnOnce() -> Result<Signed, Error>,
    ) -> Result<(Arc<Entry>, bool), Error> {
        let mut minted = false;
        let result = self.inner.try_get_with(key, || {
            minted = true;
            self.counts.misses.fetch_add(1, Ordering::Relaxed);
            self.counts.signing_ops.fetch_add(1, Ordering::Relaxed);
            let signed = sign()?;
            let live_for =
                Duration::from_secs(rolls_at.min(signed.expires_at).saturating_sub(now).max(1));
            Ok::<_, Error>(Entry::new(signed, live_for))
        });
        if minted {
            self.metrics.cache_lookup(false);
        } else {
            self.hit();
        }
        match result {
            Ok(entry) => Ok((entry, minted)),
            Err(e) => Err(match &*e {
                Error::Internal(detail) => Error::Internal(detail.clone()),
                other => Error::Internal(other.to_string()),
            }),
        }
    }

    /// Signing operations performed (one per miss that minted).
    pub fn signing_ops(&self) -> u64 {
        self.counts.signing_ops.load(Ordering::Relaxed)
    }

    /// Lookups answered from the cache (including callers that waited on another's miss).
    pub fn hits(&self) -> u64 {
        self.counts.hits.load(Ordering::Relaxed)
    }

    /// Lookups that minted.
    pub fn misses(&self) -> u64 {
        self.counts.misses.load(Ordering::Relaxed)
    }

    /// Entries currently held (approximate, as moka counts).
    pub fn entries(&self) -> u64 {
        self.inner.entry_count()
    }

    /// Entries held, once moka has applied its pending inserts and evictions.
    pub fn entries_now(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The hand-written comparison agrees with `==` for every length, including the
        /// ragged last word, and for inputs that differ in one byte only.
        #[test]
        fn same_bytes_is_equality(a in proptest::collection::vec(0u8..3, 0..40),
                                  flip in any::<prop::sample::Index>()) {
            prop_assert!(same_bytes(&a, &a.clone()));
            let mut b = a.clone();
            if !b.is_empty() {
                let i = flip.index(b.len());
                b[i] ^= 1;
                prop_assert!(!same_bytes(&a, &b));
            }
            let mut longer = a.clone();
            longer.push(0);
            prop_assert!(!same_bytes(&a, &longer));
        }

        #[test]
        fn cache_keys_are_equal_exactly_when_their_parts_are(
            k1 in "[a-c/]{0,20}", k2 in "[a-c/]{0,20}", p1 in "[a=&]{0,12}", p2 in "[a=&]{0,12}",
        ) {
            let a = CacheKey::new(0, &k1, Method::Get, &[&p1], "", 9);
            let b = CacheKey::new(0, &k2, Method::Get, &[&p2], "", 9);
            prop_assert_eq!(a == b, k1 == k2 && p1 == p2);
            prop_assert!(a != CacheKey::new(0, &k1, Method::Get, &[&p1], "", 10));
            prop_assert!(a != CacheKey::new(1, &k1, Method::Get, &[&p1], "", 9));
        }
    }
}
