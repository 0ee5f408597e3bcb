//! State floor: the [`Minter`], which owns the signature cache, the slots RSA signatures
//! queue for on the blocking pool, and the rule by which a reload keeps the cache
//! ([`Minter::reloaded`]). It mints a bucketed URL for a key or re-signs a verified one,
//! from the cache when it can; who may ask is decided by the handlers before.

use std::sync::Arc;

use crate::Error;
use crate::cache::{CacheKey, Entry, SignatureCache, StableKey};
use crate::clock;
use crate::config::Config;
use crate::creds::Live;
use crate::metrics::Metrics;
use crate::notes;
use crate::sign::signer::{Kind, OriginSigner, SignSpec, SignedCookies, Verified, VerifiedCookies};
use crate::sign::url::RawUrl;
use crate::sign::{Method, Signed, Window};

/// Mints and caches URLs for one config.
#[derive(Debug)]
pub struct Minter {
    config: Arc<Config>,
    /// Minted URLs.
    pub cache: SignatureCache,
    metrics: Arc<Metrics>,
    /// One slot per core for RSA signatures on the blocking pool: they queue in order
    /// instead of a burst of misses starting hundreds of threads that share the cores
    /// unfairly (seconds of tail latency).
    slow_signing: tokio::sync::Semaphore,
    /// Credentials the AWS SDK's resolver provides, for origins configured so.
    pub live: Arc<Live>,
}

/// Whether an origin's signatures are slow enough (RSA, ~3 ms) to go to the blocking pool;
/// an HMAC signature (~2 µs) is cheaper than the hand-off.
pub fn signs_slowly(signer: &OriginSigner) -> bool {
    matches!(signer.kind, Kind::CloudFront(_))
}

/// A cache miss: what to sign, for which bucket.
struct Miss {
    origin_idx: usize,
    key: CacheKey,
    window: Window,
}

impl Miss {
    /// Signs on the calling thread, once for all concurrent callers of the key, timed under
    /// the signer's scheme. Says whether this call minted.
    fn sign(
        self,
        cache: &SignatureCache,
        metrics: &Metrics,
        signer: &OriginSigner,
        sign: impl FnOnce(u64) -> Result<Signed, Error>,
    ) -> Result<(Arc<Entry>, bool), Error> {
        let window = self.window;
        cache.get_or_sign(self.key, || {
            let start = clock::instant();
            let signed = sign(window.signed_at);
            metrics.signed(signer.scheme_name(), start.elapsed());
            signed
        })
    }
}

/// The `Set-Cookie` headers of a cookie set the cache keeps in `entry`: the origin's
/// `cookie_domain`, and a `Max-Age` until the policy expires.
pub fn set_cookie_headers(
    signer: &OriginSigner,
    entry: &Entry,
    now: u64,
) -> impl Iterator<Item = http::HeaderValue> {
    let set = crate::sign::cookies::CookieSet::from_header(entry.url());
    let max_age = entry.expires_at.saturating_sub(now);
    set.set_cookie_headers(signer.cookie_domain(), max_age)
        .into_iter()
        .filter_map(|line| http::HeaderValue::from_str(&line).ok())
}

/// What the audit log digests for a cookie set (its `CloudFront-Signature`), written as a
/// URL of the directory so the log's one rule (the signature parameter) applies.
pub fn cookie_evidence(signer: &OriginSigner, dir: &str, cookie_header: &str) -> Option<String> {
    let set = crate::sign::cookies::CookieSet::from_header(cookie_header);
    let sig = set.get(crate::sign::cookies::SIGNATURE)?;
    Some(format!(
        "{}{dir}?CloudFront-Signature={sig}",
        signer.layout().base()
    ))
}

/// A cookie set as the cache keeps it: the `Cookie` header in `url`.
fn cookies_entry(c: SignedCookies) -> Signed {
    Signed {
        url: c.cookies.header(),
        expires_at: c.expires_at,
    }
}

/// A minted URL, unless its credentials died inside the bucket (an honest URL that is
/// already dead).
fn fresh(entry: Arc<Entry>, now: u64, rolls_at: u64) -> Result<(Arc<Entry>, u64), Error> {
    if entry.expires_at <= now {
        return Err(Error::Internal("signing credentials have expired".into()));
    }
    Ok((entry, rolls_at))
}

/// Whether two configs mint the same URLs, so that one's signature cache serves the other:
/// the same `[cache]`, and origin by origin (cache keys hold the origin's index) the same
/// URL for a probe signed by both at `now`. A signature covers everything that shapes a URL
/// (layout, region, TTL, the first key and its algorithm), and every scheme here signs
/// deterministically, so equal probes mean equal URLs.
fn mints_alike(old: &Config, new: &Config, now: u64) -> bool {
    let probe = |signer: &OriginSigner| {
        signer
            .sign(&SignSpec {
                raw_key: "edgesign/reload-probe",
                method: Method::Get,
                params: &[],
                signed_at: now,
                lifetime: signer.ttl,
            })
            .ok()
            .map(|s| s.url)
    };
    old.cache == new.cache
        && old.origins.len() == new.origins.len()
        && old.origins.iter().zip(&new.origins).all(|(a, b)| {
            // The TTL too: near the credentials' own expiry both probes are capped alike,
            // while entries minted earlier in the bucket were not.
            if a.signer.ttl != b.signer.ttl {
                return false;
            }
            let before = probe(&a.signer);
            before.is_some() && before == probe(&b.signer)
        })
}

impl Minter {
    /// A minter for `config` with an empty cache.
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>) -> Self {
        let live = Arc::new(Live::new(&config, None));
        Self::with_live(config, metrics, live)
    }

    fn with_live(config: Arc<Config>, metrics: Arc<Metrics>, live: Arc<Live>) -> Self {
        let cache = SignatureCache::new(
            config.cache.max_entries,
            config.cache.max_bytes,
            std::time::Duration::from_secs(config.cache.bucket),
            metrics.clone(),
        );
        Self::with_cache(config, metrics, cache, live)
    }

    fn with_cache(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        cache: SignatureCache,
        live: Arc<Live>,
    ) -> Self {
        Minter {
            config,
            cache,
            metrics,
            live,
            slow_signing: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| n.get()),
            ),
        }
    }

    /// The minter for a reloaded `config`. The signature cache carries over when `[cache]`
    /// is unchanged and every origin still mints exactly what it minted (see
    /// [`mints_alike`]): a reload that changes routes, auth or limits does not send every hot
    /// URL back to be signed, which for RSA keys is milliseconds each. A changed key,
    /// endpoint or TTL starts an empty cache.
    pub fn reloaded(&self, config: Arc<Config>, now: u64) -> Self {
        // Provided credentials carry over for origins whose source is unchanged.
        let live = Arc::new(Live::new(&config, Some(&self.live)));
        if mints_alike(&self.config, &config, now) {
            Self::with_cache(config, self.metrics.clone(), self.cache.clone(), live)
        } else {
            Self::with_live(config, self.metrics.clone(), live)
        }
    }

    /// Runs a slow signature (RSA) on the blocking pool, one per core at a time, first come
    /// first served, so the worker's other connections keep moving.
    pub async fn sign_slowly<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        let _slot = self
            .slow_signing
            .acquire()
            .await
            .map_err(|_| Error::Internal("signing slots closed".into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Internal(format!("signing task failed: {e}")))
    }

    /// Mints (or takes from cache) the bucketed URL for a key.
    pub async fn mint(
        &self,
        origin_idx: usize,
        raw_key: &str,
        method: Method,
        params: &[&str],
        now: u64,
    ) -> Result<(Arc<Entry>, u64), Error> {
        let signer = &self.config.origins[origin_idx].signer;
        let held = self.live.held(origin_idx, now)?;
        let epoch = self.live.epoch(origin_idx);
        if params.is_empty() {
            // A stable link this thread answered lately: no key is built.
            let window = Window::at(now, self.config.cache.bucket, signer.ttl);
            let key = StableKey::new(origin_idx, raw_key, method, window.signed_at);
            if let Some(entry) = self.cache.get_recent(&key.with_epoch(epoch), now) {
                notes::note_cache(true);
                return Ok((entry, window.rolls_at));
            }
        }
        let key =
            |start| CacheKey::new(origin_idx, raw_key, method, params, "", start).with_epoch(epoch);
        let miss = match self.lookup(origin_idx, now, key) {
            Ok(hit) => return Ok(hit),
            Err(miss) => miss,
        };
        if !signs_slowly(signer) {
            return self.sign_here(miss, now, |signed_at| {
                signer
                    .sign_with(
                        &SignSpec {
                            raw_key,
                            method,
                            params,
                            signed_at,
                            lifetime: signer.ttl,
                        },
                        held.as_deref().map_or(&[], Vec::as_slice),
                    )
                    .map_err(Error::from)
            });
        }
        let (raw_key, params): (String, Vec<String>) = (
            raw_key.to_owned(),
            params.iter().map(|p| (*p).to_owned()).collect(),
        );
        Box::pin(self.sign_blocking(miss, now, move |signer, signed_at| {
            let params: Vec<&str> = params.iter().map(String::as_str).collect();
            signer
                .sign(&SignSpec {
                    raw_key: &raw_key,
                    method,
                    params: &params,
                    signed_at,
                    lifetime: signer.ttl,
                })
                .map_err(Error::from)
        }))
        .await
    }

    /// Re-signs a verified stale URL (`url_text`) exactly, bucketed and cached like a stable
    /// link.
    pub async fn resign(
        &self,
        origin_idx: usize,
        verified: &Verified<'_>,
        url_text: &str,
        now: u64,
    ) -> Result<(Arc<Entry>, u64), Error> {
        let signer = &self.config.origins[origin_idx].signer;
        let held = self.live.held(origin_idx, now)?;
        let epoch = self.live.epoch(origin_idx);
        let (params, variant) = (verified.params(), verified.variant());
        let key = |start| {
            CacheKey::new(
                origin_idx,
                verified.raw_key,
                verified.method(),
                &params,
                &variant,
                start,
            )
            .with_epoch(epoch)
        };
        let miss = match self.lookup(origin_idx, now, key) {
            Ok(hit) => return Ok(hit),
            Err(miss) => miss,
        };
        if !signs_slowly(signer) {
            return self.sign_here(miss, now, |signed_at| {
                signer
                    .resign_with(
                        verified,
                        signed_at,
                        signer.ttl,
                        held.as_deref().map_or(&[], Vec::as_slice),
                    )
                    .map_err(Error::from)
            });
        }
        // The blocking pool needs owned inputs: the URL is parsed and verified again there
        // (an RSA public-key check, small next to the signature). Only CloudFront signs
        // slowly, and its verification reads no request headers.
        let (text, method) = (url_text.to_owned(), verified.method());
        Box::pin(self.sign_blocking(miss, now, move |signer, signed_at| {
            let url = RawUrl::parse(&text)?;
            let verified = signer.verify(&url, method, |_| None)?;
            signer
                .resign(&verified, signed_at, signer.ttl)
                .map_err(Error::from)
        }))
        .await
    }

    /// Mints (or takes from cache) the bucketed CloudFront cookies for everything under
    /// `raw_dir`. Cached like URLs, keyed by (origin, directory, bucket); the entry's `url`
    /// holds the set as a `Cookie` header ([`crate::sign::cookies::CookieSet::from_header`]).
    pub async fn mint_cookies(
        &self,
        origin_idx: usize,
        raw_dir: &str,
        now: u64,
    ) -> Result<(Arc<Entry>, u64), Error> {
        let key = |start| CacheKey::new(origin_idx, raw_dir, Method::Get, &[], "cookie", start);
        let dir = raw_dir.to_owned();
        self.cookies(origin_idx, now, key, move |signer, signed_at| {
            signer.sign_cookies(&dir, signed_at, signer.ttl)
        })
        .await
    }

    /// Renews verified cookies (same policy, new `DateLessThan`), bucketed and cached like
    /// a re-signed URL.
    pub async fn resign_cookies(
        &self,
        origin_idx: usize,
        verified: &VerifiedCookies,
        now: u64,
    ) -> Result<(Arc<Entry>, u64), Error> {
        let variant = format!("cookie|{}", verified.variant());
        let resource = verified.resource.clone();
        let key = |start| CacheKey::new(origin_idx, &resource, Method::Get, &[], &variant, start);
        let verified = verified.clone();
        self.cookies(origin_idx, now, key, move |signer, signed_at| {
            signer.resign_cookies(&verified, signed_at, signer.ttl)
        })
        .await
    }

    /// The cached cookie set for `key`'s window, or the one `sign` makes (a private-key
    /// signature, so on the blocking pool), cached as a `Cookie` header.
    async fn cookies<E: Into<Error>>(
        &self,
        origin_idx: usize,
        now: u64,
        key: impl FnOnce(u64) -> CacheKey,
        sign: impl FnOnce(&OriginSigner, u64) -> Result<SignedCookies, E> + Send + 'static,
    ) -> Result<(Arc<Entry>, u64), Error> {
        let miss = match self.lookup(origin_idx, now, key) {
            Ok(hit) => return Ok(hit),
            Err(miss) => miss,
        };
        Box::pin(self.sign_blocking(miss, now, move |signer, signed_at| {
            sign(signer, signed_at)
                .map(cookies_entry)
                .map_err(Into::into)
        }))
        .await
    }

    /// The time window and the cache lookup shared by every mint: the cached URL and when
    /// it stops being cacheable, or what a miss needs to sign.
    fn lookup(
        &self,
        origin_idx: usize,
        now: u64,
        key: impl FnOnce(u64) -> CacheKey,
    ) -> Result<(Arc<Entry>, u64), Miss> {
        let signer = &self.config.origins[origin_idx].signer;
        let window = Window::at(now, self.config.cache.bucket, signer.ttl);
        let key = key(window.signed_at);
        match self.cache.get(&key, now) {
            Some(entry) => {
                notes::note_cache(true);
                Ok((entry, window.rolls_at))
            }
            None => Err(Miss {
                origin_idx,
                key,
                window,
            }),
        }
    }

    /// Signs a miss on this thread (HMAC: microseconds), once for all concurrent callers.
    fn sign_here(
        &self,
        miss: Miss,
        now: u64,
        sign: impl FnOnce(u64) -> Result<Signed, Error>,
    ) -> Result<(Arc<Entry>, u64), Error> {
        let rolls_at = miss.window.rolls_at;
        let signer = &self.config.origins[miss.origin_idx].signer;
        let (entry, minted) = miss.sign(&self.cache, &self.metrics, signer, sign)?;
        notes::note_cache(!minted);
        fresh(entry, now, rolls_at)
    }

    /// Signs a miss on the blocking pool (RSA: milliseconds), so the worker's other
    /// connections keep moving. Callers waiting on the same key wait there too.
    async fn sign_blocking(
        &self,
        miss: Miss,
        now: u64,
        sign: impl FnOnce(&OriginSigner, u64) -> Result<Signed, Error> + Send + 'static,
    ) -> Result<(Arc<Entry>, u64), Error> {
        let rolls_at = miss.window.rolls_at;
        let (cache, config, metrics) = (
            self.cache.clone(),
            self.config.clone(),
            self.metrics.clone(),
        );
        let (entry, minted) = self
            .sign_slowly(move || {
                let signer = &config.origins[miss.origin_idx].signer;
                miss.sign(&cache, &metrics, signer, |at| sign(signer, at))
            })
            .await??;
        notes::note_cache(!minted);
        fresh(entry, now, rolls_at)
    }
}
