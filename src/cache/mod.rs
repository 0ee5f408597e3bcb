//! The signature cache (docs/http.md, stable links): moka, keyed by (origin, object key, method,
//! overrides, variant, bucket start), each entry living one bucket, bounded by
//! `cache.max_entries` and by `cache.max_bytes` (see [`SignatureCache::new`]). Concurrent
//! misses for one key sign once (moka's `try_get_with` is single-flight). A hit performs no
//! HMAC or RSA operation.
//!
//! moka holds each URL packed against a reference URL of its origin ([`Packed`]): an entry
//! owns its object key and the bytes of its URL that differ (the path's tail and the
//! signature), about a fifth of a SigV4 URL. A lookup that reaches moka rebuilds the URL
//! once, into the per-thread table below.
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
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::Error;
use crate::metrics::Metrics;
use crate::sign::{Method, Signed};

mod packed;
pub use packed::Packed;

/// Everything that makes two minted URLs differ. Pure data; derive it with [`CacheKey::new`].
///
/// Its three strings share one allocation, reference-counted: a key is built once per
/// request, and the per-thread table keeps a copy of it without allocating.
#[derive(Debug, Clone, Eq)]
pub struct CacheKey {
    /// The origin's index (a config holds far fewer than 2^32 origins; 32 bits keep the key,
    /// which moka stores in an allocation of its own, within 48 bytes).
    origin: u32,
    /// The raw object key, then the raw extra query segments (`response-*` overrides, or a
    /// stale URL's own parameters), then the variant: what else shapes the URL (empty for
    /// stable links; for a re-signed URL, the scheme's retained conditions).
    text: Arc<str>,
    /// Where the raw key ends in `text`, and where the parameters end.
    key_end: u32,
    params_end: u32,
    method: Method,
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
            && self.key_end == other.key_end
            && self.params_end == other.params_end
            && same_bytes(self.text.as_bytes(), other.text.as_bytes())
    }
}

/// Hashes every field `eq` compares, so equal keys hash alike.
impl std::hash::Hash for CacheKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        hash_parts(
            state,
            [self.origin, self.key_end, self.params_end],
            &self.text,
            self.method,
            [self.bucket_start, self.epoch],
        );
    }
}

/// The one hash of a key's parts, for [`CacheKey`] and [`StableKey`] alike.
fn hash_parts<H: std::hash::Hasher>(
    state: &mut H,
    [origin, key_end, params_end]: [u32; 3],
    text: &str,
    method: Method,
    [bucket_start, epoch]: [u64; 2],
) {
    use std::hash::Hash;
    origin.hash(state);
    text.hash(state);
    key_end.hash(state);
    params_end.hash(state);
    method.hash(state);
    bucket_start.hash(state);
    epoch.hash(state);
}

/// A stable link's cache key (no parameters, no variant), borrowed: it asks the thread's
/// table ([`SignatureCache::get_recent`]) without building a [`CacheKey`], whose text is an
/// allocation of its own. Equal to the `CacheKey` of the same parts, and hashed alike.
#[derive(Debug, Clone, Copy)]
pub struct StableKey<'a> {
    origin: u32,
    raw_key: &'a str,
    method: Method,
    bucket_start: u64,
    epoch: u64,
}

impl<'a> StableKey<'a> {
    /// The key [`CacheKey::new`] makes of these parts with no parameters and no variant.
    pub fn new(origin: usize, raw_key: &'a str, method: Method, bucket_start: u64) -> Self {
        StableKey {
            origin: u32::try_from(origin).unwrap_or(u32::MAX),
            raw_key,
            method,
            bucket_start,
            epoch: 0,
        }
    }

    /// This key for the origin's `epoch`-th credentials.
    pub fn with_epoch(self, epoch: u64) -> Self {
        StableKey { epoch, ..self }
    }

    fn hash_with(&self, hasher: &foldhash::fast::RandomState) -> u64 {
        let mut state = hasher.build_hasher();
        let len = u32::try_from(self.raw_key.len()).unwrap_or(u32::MAX);
        hash_parts(
            &mut state,
            [self.origin, len, len],
            self.raw_key,
            self.method,
            [self.bucket_start, self.epoch],
        );
        std::hash::Hasher::finish(&state)
    }

    fn is(&self, key: &CacheKey) -> bool {
        let len = u32::try_from(self.raw_key.len()).unwrap_or(u32::MAX);
        key.origin == self.origin
            && key.bucket_start == self.bucket_start
            && key.epoch == self.epoch
            && key.method == self.method
            && key.key_end == len
            && key.params_end == len
            && same_bytes(key.text.as_bytes(), self.raw_key.as_bytes())
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
        let (text, params_end): (Arc<str>, usize) = if params.is_empty() && variant.is_empty() {
            // A stable link's key, the common case: one allocation, no joining buffer.
            (Arc::from(raw_key), raw_key.len())
        } else {
            let params_len = params.iter().map(|p| p.len() + 1).sum::<usize>();
            let mut text = String::with_capacity(raw_key.len() + params_len + variant.len());
            text.push_str(raw_key);
            for (i, p) in params.iter().enumerate() {
                if i > 0 {
                    text.push('&');
                }
                text.push_str(p);
            }
            let params_end = text.len();
            text.push_str(variant);
            (Arc::from(text), params_end)
        };
        // Keys and overrides are capped far below 4 GiB before they get here; the casts
        // saturate rather than wrap all the same.
        let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        CacheKey {
            origin: to_u32(origin),
            key_end: to_u32(raw_key.len()),
            params_end: to_u32(params_end),
            text,
            method,
            bucket_start,
            epoch: 0,
        }
    }

    /// This key for the origin's `epoch`-th credentials.
    pub fn with_epoch(mut self, epoch: u64) -> Self {
        self.epoch = epoch;
        self
    }

    /// The raw object key.
    fn raw_key(&self) -> &str {
        self.text.get(..self.key_end as usize).unwrap_or_default()
    }
}

/// A URL as the cache hands it out: the URL, its `Location` header (the same bytes), and
/// its expiry. Built once per entry per thread (see [`Front`]), then shared.
#[derive(Debug)]
pub struct Entry {
    text: Text,
    /// Unix seconds when the URL stops working.
    pub expires_at: u64,
}

/// The URL's bytes, held once: as a header value when it can be one (signed URLs always
/// can: they are percent-encoded), as text otherwise.
#[derive(Debug)]
enum Text {
    Header(http::HeaderValue),
    Plain(Box<str>),
}

impl Entry {
    /// An entry for `signed` that is not cached (a still-valid URL served as it is).
    pub fn uncached(signed: Signed) -> Arc<Entry> {
        Arc::new(Self::new(signed.url, signed.expires_at))
    }

    fn new(url: String, expires_at: u64) -> Entry {
        // The header takes the string's own buffer (no copy) and `url()` shares it. `http`
        // gives nothing back when it refuses bytes, so those it would refuse (controls other
        // than tab, and DEL) are looked for first; the check has no early exit, so it
        // compiles to a few vector instructions for a URL's length.
        let refused = url
            .bytes()
            .fold(false, |any, b| any | (b < b' ' && b != b'\t') | (b == 0x7f));
        let text = if refused {
            Text::Plain(url.into_boxed_str())
        } else {
            match http::HeaderValue::from_maybe_shared(bytes::Bytes::from(url.into_bytes())) {
                Ok(value) => Text::Header(value),
                // Unreachable after the check above; a URL that cannot be a header is served
                // as a JSON answer's text, never as a `Location`.
                Err(_) => Text::Plain(Box::from("")),
            }
        };
        Entry { text, expires_at }
    }

    /// The URL as a `Location` header; `None` when it cannot be a header.
    pub fn location(&self) -> Option<&http::HeaderValue> {
        match &self.text {
            Text::Header(value) => Some(value),
            Text::Plain(_) => None,
        }
    }

    /// The URL.
    pub fn url(&self) -> &str {
        match &self.text {
            // A header value made from a `String` is UTF-8.
            Text::Header(value) => std::str::from_utf8(value.as_bytes()).unwrap_or_default(),
            Text::Plain(url) => url,
        }
    }

    /// The URL and its expiry, as the signer minted them.
    pub fn signed(&self) -> Signed {
        Signed {
            url: self.url().to_owned(),
            expires_at: self.expires_at,
        }
    }
}

/// The cache plus counters the tests and metrics read. Cloning shares it.
#[derive(Clone)]
pub struct SignatureCache {
    inner: moka::sync::Cache<CacheKey, Packed, foldhash::fast::RandomState>,
    /// Each origin's reference URL, the one its entries are packed against ([`Packed`]).
    references: Arc<Mutex<HashMap<u32, Arc<String>>>>,
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

/// What an entry costs beyond the bytes it owns (its key's text and its packed URL): moka's
/// node, the `Arc`s, the allocations' headers. Measured by `examples/cache_entry.rs`; it only
/// has to be the right size.
const ENTRY_OVERHEAD: u64 = 320;

impl SignatureCache {
    /// A cache bounded to `max_entries` URLs and `max_bytes` bytes, counting lookups into
    /// `metrics` too.
    ///
    /// moka bounds one weighted sum, so both limits are folded into it: an entry weighs the
    /// bytes it owns (its key, overrides and variant, and its URL's bytes that differ from
    /// the origin's reference URL), plus overhead, but never less than
    /// `max_bytes / max_entries`. The weights then sum to at most `max_bytes`, which caps
    /// the bytes held and, since each entry weighs at least a share, the entry count. (The
    /// reference URLs, one per origin, are not counted.) Keys and overrides are also capped
    /// in length before they get here ([`crate::auth::keypath::MAX_KEY_BYTES`],
    /// [`crate::auth::overrides::MAX_BYTES`]).
    ///
    /// An entry lives `bucket` from when it was minted (moka's `time_to_live`), so one minted
    /// late in a bucket outlives it; the bucket is in its key, so from then on nobody asks
    /// for it, and it is the first to go when the cache is full. A URL is never served once
    /// it has expired ([`SignatureCache::get`] checks). One lifetime for all entries, not one
    /// per entry, spares each entry a node in moka's timer wheel.
    pub fn new(max_entries: u64, max_bytes: u64, bucket: Duration, metrics: Arc<Metrics>) -> Self {
        let floor = max_bytes.div_ceil(max_entries.max(1));
        SignatureCache {
            inner: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(move |key: &CacheKey, url: &Packed| {
                    let bytes = key.text.len() + url.owned_bytes();
                    u32::try_from((bytes as u64 + ENTRY_OVERHEAD).max(floor)).unwrap_or(u32::MAX)
                })
                .time_to_live(bucket.max(Duration::from_secs(1)))
                .support_invalidation_closures()
                .build_with_hasher(foldhash::fast::RandomState::default()),
            references: Arc::default(),
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
        let entry = match Front::get(self.id, hash, |k| k == key, now) {
            Some(entry) => entry,
            None => {
                let url = self.inner.get(key)?;
                if now >= url.expires_at() {
                    // moka counts whole seconds from when it was minted; the URL died in
                    // the last one. Mint anew rather than send a dead URL.
                    self.inner.invalidate(key);
                    return None;
                }
                let entry = Arc::new(Entry::new(url.url(), url.expires_at()));
                Front::put(self.id, hash, key, &entry);
                entry
            }
        };
        self.hit();
        Some(entry)
    }

    /// The URL for a stable link's `key` if this thread's table holds it alive at `now`,
    /// counted as a hit; `None` (not counted) says: ask [`SignatureCache::get`]. The hot path
    /// of a cache-hit redirect: no allocation, no moka.
    pub fn get_recent(&self, key: &StableKey<'_>, now: u64) -> Option<Arc<Entry>> {
        let entry = Front::get(self.id, key.hash_with(&self.hasher), |k| key.is(k), now)?;
        self.hit();
        Some(entry)
    }

    fn hit(&self) {
        self.counts.hits.fetch_add(1, Ordering::Relaxed);
        self.metrics.cache_lookup(true);
    }

    /// The cached URL for `key`, or the one `sign` mints, on this thread, once however many
    /// callers ask at the same moment (they wait for it). Also says whether this call
    /// minted it (a miss).
    pub fn get_or_sign(
        &self,
        key: CacheKey,
        sign: impl FnOnce() -> Result<Signed, Error>,
    ) -> Result<(Arc<Entry>, bool), Error> {
        let origin = key.origin;
        let (mut signing, mut minted) = (false, None);
        let result = self.inner.try_get_with(key, || {
            signing = true;
            self.counts.misses.fetch_add(1, Ordering::Relaxed);
            self.counts.signing_ops.fetch_add(1, Ordering::Relaxed);
            let signed = sign()?;
            let url = self.pack(origin, &signed);
            minted = Some(Arc::new(Entry::new(signed.url, signed.expires_at)));
            Ok::<_, Error>(url)
        });
        match (result, minted) {
            (Ok(_), Some(entry)) => {
                self.metrics.cache_lookup(false);
                Ok((entry, true))
            }
            (Ok(url), None) => {
                self.hit();
                Ok((Arc::new(Entry::new(url.url(), url.expires_at())), false))
            }
            (Err(e), _) => {
                if signing {
                    self.metrics.cache_lookup(false);
                } else {
                    self.hit();
                }
                Err(match &*e {
                    Error::Internal(detail) => Error::Internal(detail.clone()),
                    other => Error::Internal(other.to_string()),
                })
            }
        }
    }

    /// `signed`'s URL packed against `origin`'s reference URL, which it becomes if there is
    /// none yet or if it shares too little with it (a new bucket, another shape of URL).
    fn pack(&self, origin: u32, signed: &Signed) -> Packed {
        let mut references = self
            .references
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(reference) = references.get(&origin) {
            let packed = Packed::new(&signed.url, reference.clone(), signed.expires_at);
            if !packed.worth_a_new_reference() {
                return packed;
            }
        }
        let reference = Arc::new(signed.url.clone());
        references.insert(origin, reference.clone());
        Packed::new(&signed.url, reference, signed.expires_at)
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
            .invalidate_entries_if(move |k, _| k.origin as usize == origin && covered(k.raw_key()));
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

    /// The entry for the key that `is` recognises (of hash `hash`) if this thread took it
    /// from cache `cache` and its URL is alive.
    fn get(cache: u64, hash: u64, is: impl Fn(&CacheKey) -> bool, now: u64) -> Option<Arc<Entry>> {
        FRONT.with(|f| {
            let f = f.try_borrow().ok()?;
            if f.cache != cache {
                return None;
            }
            match f.slots.get(Self::slot(hash))? {
                Some((h, k, entry)) if *h == hash && is(k) && now < entry.expires_at => {
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
        let cache = SignatureCache::new(100, 1 << 20, Duration::from_secs(900), metrics.clone());
        let key = CacheKey::new(0, "a/b.txt", Method::Get, &[], "", 1000);
        let (minted, was_minted) = cache
            .get_or_sign(key.clone(), || signed("https://o/a/b.txt?sig=1", 1600))
            .unwrap();
        assert!(was_minted);
        // From moka (the same URL and expiry, rebuilt from its packed form, with the same
        // `Location`), then from this thread's table (that very entry), with no signing.
        let from_moka = cache.get(&key, 1001).expect("a hit");
        assert_eq!(
            (from_moka.url(), from_moka.expires_at, from_moka.location()),
            (minted.url(), 1600, minted.location())
        );
        assert_eq!(from_moka.location().unwrap(), "https://o/a/b.txt?sig=1");
        let from_table = cache.get(&key, 1001).expect("a hit");
        assert!(Arc::ptr_eq(&from_table, &from_moka));
        assert_eq!((cache.hits(), cache.signing_ops()), (2, 1));
        // The borrowed key finds the same entry in the table, and only that key's.
        let stable = StableKey::new(0, "a/b.txt", Method::Get, 1000);
        assert!(Arc::ptr_eq(
            &cache.get_recent(&stable, 1001).unwrap(),
            &from_moka
        ));
        assert_eq!(cache.hits(), 3);
        for other in [
            StableKey::new(0, "a/b.txT", Method::Get, 1000),
            StableKey::new(1, "a/b.txt", Method::Get, 1000),
            StableKey::new(0, "a/b.txt", Method::Head, 1000),
            StableKey::new(0, "a/b.txt", Method::Get, 1001),
            StableKey::new(0, "a/b.txt", Method::Get, 1000).with_epoch(1),
        ] {
            assert!(cache.get_recent(&other, 1001).is_none(), "{other:?}");
        }
        assert!(
            cache.get_recent(&stable, 1600).is_none(),
            "dead at its expiry"
        );
        assert_eq!(cache.hits(), 3);
        // Another cache (a reload) on the same thread does not see this one's entries.
        let reloaded = SignatureCache::new(100, 1 << 20, Duration::from_secs(900), metrics);
        assert!(reloaded.get(&key, 1001).is_none());
        // Once the URL has died, neither the table nor moka serves it, and it is minted anew.
        assert!(cache.get(&key, 1600).is_none());
        let (again, was_minted) = cache
            .get_or_sign(key.clone(), || signed("https://o/a/b.txt?sig=2", 2500))
            .unwrap();
        assert!(was_minted);
        assert_eq!(again.url(), "https://o/a/b.txt?sig=2");
        assert_eq!(cache.get(&key, 1601).unwrap().url(), again.url());
    }

    #[test]
    fn urls_packed_against_their_origins_reference_come_back_exact() {
        let cache = SignatureCache::new(
            1000,
            1 << 30,
            Duration::from_secs(900),
            Arc::new(Metrics::new()),
        );
        let url = |origin: usize, i: u64| match origin {
            0 => format!(
                "https://s3.example/b/k{i}.bin?X-Amz-Date=20261203T000000Z&X-Amz-Signature={i:064x}"
            ),
            _ => format!(
                "https://d1.cloudfront.net/p/{i}?Expires=99&Signature={i:x}~&Key-Pair-Id=K1"
            ),
        };
        for i in 0..200u64 {
            for origin in 0..2 {
                let key = CacheKey::new(origin, &format!("k{i}"), Method::Get, &[], "", 0);
                let (entry, minted) = cache
                    .get_or_sign(key, || signed(&url(origin, i), 50))
                    .unwrap();
                assert!(minted);
                assert_eq!(entry.url(), url(origin, i));
            }
        }
        // Another shape of URL for origin 0 becomes its reference; the others still rebuild.
        let odd = "https://elsewhere.example/x?sig=1";
        let key = CacheKey::new(0, "odd", Method::Get, &[], "", 0);
        cache.get_or_sign(key.clone(), || signed(odd, 50)).unwrap();
        for i in 0..200u64 {
            for origin in 0..2 {
                let key = CacheKey::new(origin, &format!("k{i}"), Method::Get, &[], "", 0);
                assert_eq!(cache.get(&key, 2).expect("cached").url(), url(origin, i));
            }
        }
        assert_eq!(cache.get(&key, 2).unwrap().url(), odd);
        assert_eq!(cache.signing_ops(), 401);
    }

    #[test]
    fn the_byte_budget_bounds_big_entries_and_the_entry_count_bounds_small_ones() {
        let metrics = Arc::new(Metrics::new());
        // 1 MiB for at most 1000 entries: big entries (a 1 KiB key, and a 1 KiB URL that
        // owns only the few bytes it does not share with its origin's reference URL, plus
        // overhead: ~1.3 KiB) are limited by bytes.
        let cache = SignatureCache::new(1000, 1 << 20, Duration::from_secs(900), metrics.clone());
        let big = "k".repeat(1000);
        for i in 0..2000u64 {
            let key = CacheKey::new(0, &format!("{big}{i}"), Method::Get, &[], "", 0);
            let url = format!("https://o/{big}{i}?sig=1");
            cache.get_or_sign(key, || signed(&url, 50)).unwrap();
        }
        let held = cache.entries_now();
        assert!(
            held > 100 && held <= (1 << 20) / 1320 + 1,
            "{held} big entries held"
        );
        // Small entries are limited by max_entries.
        let cache = SignatureCache::new(100, 1 << 30, Duration::from_secs(900), metrics);
        for i in 0..1000u64 {
            let key = CacheKey::new(0, &format!("k{i}"), Method::Get, &[], "", 0);
            cache
                .get_or_sign(key, || signed("https://o/k?s=1", 50))
                .unwrap();
        }
        assert!(cache.entries_now() <= 100, "{}", cache.entries_now());
    }

    #[test]
    fn what_moka_holds_per_entry_stays_small() {
        // moka keeps each key in an allocation of its own, and each value in its node.
        assert!(std::mem::size_of::<CacheKey>() <= 48);
        assert!(std::mem::size_of::<Packed>() <= 24);
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

        /// An entry gives back every URL exactly, and is a `Location` exactly when `http`
        /// takes the URL as a header value (controls, DEL and non-ASCII included).
        #[test]
        fn entries_keep_every_url_and_are_headers_exactly_when_http_says(
            chars in proptest::collection::vec(prop_oneof![
                4 => proptest::char::range('a', 'z'),
                1 => Just('\t'),
                1 => Just('\x7f'),
                1 => proptest::char::range('\0', '\x1f'),
                1 => any::<char>(),
            ], 0..40),
        ) {
            let url = String::from_iter(chars);
            let entry = Entry::new(url.clone(), 7);
            prop_assert_eq!(entry.url(), url.as_str());
            prop_assert_eq!(entry.location().is_some(), http::HeaderValue::from_str(&url).is_ok());
            if let Some(location) = entry.location() {
                prop_assert_eq!(location.as_bytes(), url.as_bytes());
            }
        }

        /// A borrowed stable key hashes like, and is, exactly the owned key of its parts
        /// (and never a key with parameters or a variant).
        #[test]
        fn stable_keys_agree_with_cache_keys(
            k1 in "[a-c/]{0,20}", k2 in "[a-c/]{0,20}", p in "[a=&]{0,6}", v in "[xy]{0,3}",
            origin in 0usize..3, bucket in 0u64..3, epoch in 0u64..3,
        ) {
            let hasher = foldhash::fast::RandomState::default();
            let owned = CacheKey::new(origin, &k1, Method::Get, &[], "", bucket).with_epoch(epoch);
            let borrowed = StableKey::new(origin, &k1, Method::Get, bucket).with_epoch(epoch);
            prop_assert_eq!(borrowed.hash_with(&hasher), hasher.hash_one(&owned));
            prop_assert!(borrowed.is(&owned));
            let other = CacheKey::new(origin, &k2, Method::Get, &[], "", bucket).with_epoch(epoch);
            prop_assert_eq!(borrowed.is(&other), k1 == k2);
            let shaped = CacheKey::new(origin, &k1, Method::Get, &[&p], &v, bucket).with_epoch(epoch);
            prop_assert_eq!(borrowed.is(&shaped), p.is_empty() && v.is_empty());
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
