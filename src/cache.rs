//! The signature cache (docs/http.md, stable links): moka, keyed by (origin, object key, method,
//! overrides, variant, bucket start), each entry living until its bucket ends, bounded by
//! `cache.max_entries` and by `cache.max_bytes` (see [`SignatureCache::new`]). Concurrent misses for one key sign once (moka's `try_get_with` is
//! single-flight). A hit performs no HMAC or RSA operation.
//!
//! moka's synchronous cache, not its async one: a hit is a plain function call (the async
//! `get` is a 700-byte future on every request), and a miss signs synchronously. The caller
//! decides where a miss runs: HMAC signing (microseconds) on the worker, RSA on the blocking
//! pool ([`SignatureCache::get_or_sign`] is then called from there, so callers waiting on the
//! same key wait there too, never on a worker).
//!
//! In front of moka, each thread keeps a small direct-mapped table of the entries it last
//! took from it ([`Front`]). A hot URL is then served without moka's bookkeeping (its read
//! log, expiry clock and shared counters), and the worker threads stop touching the same
//! cache lines for every request. An entry is only ever served from the table while its
//! URL is alive; its key names its time bucket, so a new bucket is a new key; and a table
//! belongs to one cache, so a reload (a new cache) empties it.

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Error;
use crate::metrics::Metrics;
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
    /// The origin's credential rotations so far (0 for keys in the config): a rotation
    /// mints afresh at once, with the new credentials.
    epoch: u64,
}

/// Compared by hand, eight bytes at a time, not by `str`'s `==`: that calls libc's `memcmp`,
/// whose AVX-512 masked loads cost more than the rest of a cache hit put together on the
/// AMD EPYC machine of BENCHMARKS.md (4 % of all CPU time under the redirect load, for a
/// 15-byte key).
impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.origin == other.origin
            && self.bucket_start == other.bucket_start
            && self.epoch == other.epoch
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
        self.epoch.hash(state);
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
            epoch: 0,
        }
    }

    /// This key for the origin's `epoch`-th credentials.
    pub fn with_epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }
}

/// A cached URL, its `Location` header, and how long it may live in the cache. The URL's
/// bytes are stored once: the header value shares them.
#[derive(Debug)]
pub struct Entry {
    /// The URL's bytes (UTF-8: they come from a `String`).
    url: bytes::Bytes,
    /// Unix seconds when the URL stops working.
    pub expires_at: u64,
    /// The URL as a header value (sharing `url`'s bytes, so a cache hit copies nothing);
    /// `None` when the URL cannot be a header.
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
        let url = bytes::Bytes::from(signed.url);
        let location = http::HeaderValue::from_maybe_shared(url.clone()).ok();
        Arc::new(Entry {
            url,
            expires_at: signed.expires_at,
            location,
            live_for,
        })
    }

    /// The URL.
    pub fn url(&self) -> &str {
        std::str::from_utf8(&self.url).unwrap_or_default()
    }

    /// The URL and its expiry, as the signer minted them.
    pub fn signed(&self) -> Signed {
        Signed {
            url: self.url().to_owned(),
            expires_at: self.expires_at,
        }
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
    /// Which cache this is, for the per-thread tables.
    id: u64,
    /// How the per-thread tables hash keys.
    hasher: foldhash::fast::RandomState,
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

/// What an entry costs beyond the bytes of its key and URL: moka's node, the `Arc`s, the
/// header value, the allocations' headers (measured roughly; it only has to be the right size).
const ENTRY_OVERHEAD: u64 = 320;

impl SignatureCache {
    /// A cache bounded to `max_entries` URLs and `max_bytes` bytes, counting lookups into
    /// `metrics` too.
    ///
    /// moka bounds one weighted sum, so both limits are folded into it: an entry weighs its
    /// bytes (key, overrides, variant, URL and `Location`, plus overhead), but never less
    /// than `max_bytes / max_entries`. The weights then sum to at most `max_bytes`, which
    /// caps the bytes held and, since each entry weighs at least a share, the entry count.
    /// Keys and overrides are also capped in length before they get here
    /// ([`crate::auth::keypath::MAX_KEY_BYTES`], [`crate::auth::overrides::MAX_BYTES`]).
    pub fn new(max_entries: u64, max_bytes: u64, metrics: Arc<Metrics>) -> Self {
        let floor = max_bytes.div_ceil(max_entries.max(1));
        SignatureCache {
            inner: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(move |key: &CacheKey, entry: &Arc<Entry>| {
                    let bytes =
                        key.raw_key.len() + key.params.len() + key.variant.len() + entry.url.len();
                    u32::try_from((bytes as u64 + ENTRY_OVERHEAD).max(floor)).unwrap_or(u32::MAX)
                })
                .expire_after(UntilBucketEnds)
                .support_invalidation_closures()
                .build_with_hasher(foldhash::fast::RandomState::default()),
            id: NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed),
            hasher: foldhash::fast::RandomState::default(),
            counts: Arc::default(),
            metrics,
        }
    }

    /// The cached URL for `key`, still alive at `now` (Unix seconds), counted as a hit;
    /// `None` (not counted) when it must be minted, by [`SignatureCache::get_or_sign`].
    pub fn get(&self, key: &CacheKey, now: u64) -> Option<Arc<Entry>> {
        let hash = self.hasher.hash_one(key);
        let entry = match Front::get(self.id, hash, key, now) {
            Some(entry) => entry,
            None => {
                let entry = self.inner.get(key)?;
                if now >= entry.expires_at {
                    // moka counts whole seconds from when it was minted; the URL died in
                    // the last one. Mint anew rather than send a dead URL.
                    self.inner.invalidate(key);
                    return None;
                }
                Front::put(self.id, hash, key, &entry);
                entry
            }
        };
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

    /// Drops the URLs of `origin` whose raw key is `covered` (a revocation). Entries still in
    /// a thread's hit table are never served for such a key: revocations are asked first.
    pub fn drop_keys(&self, origin: usize, covered: impl Fn(&str) -> bool + Send + Sync + 'static) {
        let dropped = self
            .inner
            .invalidate_entries_if(move |k, _| k.origin == origin && covered(&k.raw_key));
        if let Err(e) = dropped {
            tracing::warn!(error = %e, "cannot drop cached URLs of a revocation; they expire with their bucket");
        }
    }

    /// Entries held, once moka has applied its pending inserts and evictions.
    pub fn entries_now(&self) -> u64 {
        self.inner.run_pending_tasks();
        self.inner.entry_count()
    }
}

/// Numbers the caches, so a thread's table knows which one it holds entries of.
static NEXT_CACHE_ID: AtomicU64 = AtomicU64::new(1);

/// Slots in each thread's table (a power of two).
const FRONT_SLOTS: usize = 512;

/// One thread's table of recent hits: slot `hash % FRONT_SLOTS` holds the last entry taken
/// from moka whose key hashed there. Entries are immutable and bounded by the table's size;
/// moka stays the cache of record (capacity, single-flight minting, counts).
struct Front {
    cache: u64,
    slots: Vec<Option<(u64, CacheKey, Arc<Entry>)>>,
}

thread_local! {
    static FRONT: RefCell<Front> = const {
        RefCell::new(Front {
            cache: 0,
            slots: Vec::new(),
        })
    };
}

impl Front {
    fn slot(hash: u64) -> usize {
        (hash as usize) & (FRONT_SLOTS - 1)
    }

    /// The entry for `key` if this thread took it from cache `cache` and its URL is alive.
    fn get(cache: u64, hash: u64, key: &CacheKey, now: u64) -> Option<Arc<Entry>> {
        FRONT.with(|f| {
            let f = f.try_borrow().ok()?;
            if f.cache != cache {
                return None;
            }
            match f.slots.get(Self::slot(hash))? {
                Some((h, k, entry)) if *h == hash && k == key && now < entry.expires_at => {
                    Some(entry.clone())
                }
                _ => None,
            }
        })
    }

    /// Remembers an entry just taken from cache `cache` (forgetting another cache's).
    fn put(cache: u64, hash: u64, key: &CacheKey, entry: &Arc<Entry>) {
        FRONT.with(|f| {
            let Ok(mut f) = f.try_borrow_mut() else {
                return;
            };
            if f.cache != cache || f.slots.is_empty() {
                f.cache = cache;
                f.slots.clear();
                f.slots.resize_with(FRONT_SLOTS, || None);
            }
            f.slots[Self::slot(hash)] = Some((hash, key.clone(), entry.clone()));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn signed(url: &str, expires_at: u64) -> Result<Signed, Error> {
        Ok(Signed {
            url: url.into(),
            expires_at,
        })
    }

    #[test]
    fn hits_come_from_the_threads_table_only_while_alive_and_only_for_their_own_cache() {
        let metrics = Arc::new(Metrics::new());
        let cache = SignatureCache::new(100, 1 << 20, metrics.clone());
        let key = CacheKey::new(0, "a/b.txt", Method::Get, &[], "", 1000);
        let (minted, was_minted) = cache
            .get_or_sign(key.clone(), 1000, 1900, || {
                signed("https://o/a/b.txt?sig=1", 1600)
            })
            .unwrap();
        assert!(was_minted);
        // From moka, then from this thread's table: the same entry, no signing.
        for _ in 0..2 {
            let hit = cache.get(&key, 1001).expect("a hit");
            assert!(Arc::ptr_eq(&hit, &minted));
        }
        assert_eq!((cache.hits(), cache.signing_ops()), (2, 1));
        // Another cache (a reload) on the same thread does not see this one's entries.
        let reloaded = SignatureCache::new(100, 1 << 20, metrics);
        assert!(reloaded.get(&key, 1001).is_none());
        // Once the URL has died, neither the table nor moka serves it, and it is minted anew.
        assert!(cache.get(&key, 1600).is_none());
        let (again, was_minted) = cache
            .get_or_sign(key.clone(), 1600, 1900, || {
                signed("https://o/a/b.txt?sig=2", 2500)
            })
            .unwrap();
        assert!(was_minted);
        assert_eq!(again.url(), "https://o/a/b.txt?sig=2");
        assert!(Arc::ptr_eq(&cache.get(&key, 1601).unwrap(), &again));
    }

    #[test]
    fn the_byte_budget_bounds_big_entries_and_the_entry_count_bounds_small_ones() {
        let metrics = Arc::new(Metrics::new());
        // 1 MiB for at most 1000 entries: big entries (a 1 KiB key and a 1 KiB URL, stored
        // once, plus overhead: ~2.3 KiB) are limited by bytes.
        let cache = SignatureCache::new(1000, 1 << 20, metrics.clone());
        let big = "k".repeat(1000);
        for i in 0..2000u64 {
            let key = CacheKey::new(0, &format!("{big}{i}"), Method::Get, &[], "", 0);
            let url = format!("https://o/{big}{i}?sig=1");
            cache.get_or_sign(key, 1, 100, || signed(&url, 50)).unwrap();
        }
        let held = cache.entries_now();
        assert!(
            held > 100 && held <= (1 << 20) / 2300 + 1,
            "{held} big entries held"
        );
        // Small entries are limited by max_entries.
        let cache = SignatureCache::new(100, 1 << 30, metrics);
        for i in 0..1000u64 {
            let key = CacheKey::new(0, &format!("k{i}"), Method::Get, &[], "", 0);
            cache
                .get_or_sign(key, 1, 100, || signed("https://o/k?s=1", 50))
                .unwrap();
        }
        assert!(cache.entries_now() <= 100, "{}", cache.entries_now());
    }

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
