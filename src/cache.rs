//! The signature cache (DESIGN.md §3): moka, keyed by (origin, object key, method,
//! overrides, variant, bucket start), each entry living until its bucket ends, bounded by
//! `cache.max_entries`. Concurrent misses for one key sign once (moka's `try_get_with` is
//! single-flight). A hit performs no HMAC or RSA operation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Error;
use crate::ops::{self, Metrics};
use crate::sign::{Method, Signed};

/// Everything that makes two minted URLs differ. Pure data; derive it with [`CacheKey::new`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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

/// The cache plus counters the tests and metrics read.
pub struct SignatureCache {
    inner: moka::future::Cache<CacheKey, Arc<Entry>>,
    signing_ops: AtomicU64,
    misses: AtomicU64,
    hits: AtomicU64,
    metrics: Arc<Metrics>,
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
            inner: moka::future::Cache::builder()
                .max_capacity(max_entries)
                .expire_after(UntilBucketEnds)
                .build(),
            signing_ops: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            metrics,
        }
    }

    /// The cached URL for `key`, or the one `sign` mints (once, however many callers wait).
    /// The entry lives until the bucket rolls at `rolls_at`, or until the URL dies if sooner.
    pub async fn get_or_sign<F, Fut>(
        &self,
        key: CacheKey,
        now: u64,
        rolls_at: u64,
        sign: F,
    ) -> Result<Arc<Entry>, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Signed, Error>>,
    {
        let mut minted = false;
        let result = self
            .inner
            .try_get_with(key, async {
                minted = true;
                self.misses.fetch_add(1, Ordering::Relaxed);
                self.signing_ops.fetch_add(1, Ordering::Relaxed);
                let signed = sign().await?;
                let live_for =
                    Duration::from_secs(rolls_at.min(signed.expires_at).saturating_sub(now).max(1));
                Ok::<_, Error>(Entry::new(signed, live_for))
            })
            .await;
        if !minted {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        self.metrics.cache_lookup(!minted);
        ops::note_cache(!minted);
        match result {
            Ok(entry) => Ok(entry),
            Err(e) => Err(match &*e {
                Error::Internal(detail) => Error::Internal(detail.clone()),
                other => Error::Internal(other.to_string()),
            }),
        }
    }

    /// Signing operations performed (one per miss that minted).
    pub fn signing_ops(&self) -> u64 {
        self.signing_ops.load(Ordering::Relaxed)
    }

    /// Lookups answered from the cache (including callers that waited on another's miss).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that minted.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Entries currently held (approximate, as moka counts).
    pub fn entries(&self) -> u64 {
        self.inner.entry_count()
    }

    /// Entries held, once moka has applied its pending inserts and evictions.
    pub async fn entries_now(&self) -> u64 {
        self.inner.run_pending_tasks().await;
        self.inner.entry_count()
    }
}
