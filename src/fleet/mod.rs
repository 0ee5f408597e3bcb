//! Shell leaf: state a fleet of replicas shares. Today, revocations.
//!
//! Without `[fleet]` they live in this process (`"scope": "process"`). With `[fleet]` they
//! live in Redis (a hash `<key_prefix>revocations`, id → JSON) through the `redis` crate's
//! tokio connection manager, which reconnects by itself. A change is published on the channel
//! `<key_prefix>revocations`; every replica re-reads the hash when told, and every
//! `sync_interval` whatever happens, so a revocation reaches every replica within
//! `sync_interval` even when a message is lost. The set is held in memory: the hot path asks
//! an in-process index and never waits on Redis. With Redis down the last known set stays in
//! force, `edgesign_fleet_up` reads 0, and writes answer `503 unavailable`.
//!
//! With `[fleet]` the rate limit is fleet-wide too: [`budget`].

pub mod budget;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};
use futures_util::StreamExt;
use redis::AsyncCommands;

use crate::Error;
use crate::auth::revoke::{Revocation, RevocationSet};
use crate::config::Fleet as Settings;
use crate::metrics::Metrics;

/// The revocations of one config (carried over by reloads that keep `[fleet]`).
#[derive(Debug, Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

struct Inner {
    settings: Option<Settings>,
    set: ArcSwap<RevocationSet>,
    /// Without Redis: the revocations themselves.
    local: Mutex<Vec<Revocation>>,
    redis: ArcSwapOption<redis::aio::ConnectionManager>,
    /// Wakes the sync loop (a pub/sub message arrived).
    changed: Arc<tokio::sync::Notify>,
    started: AtomicBool,
    next_id: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("redis", &self.settings.is_some())
            .field("revocations", &self.set.load().all().len())
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// The fleet state for `settings`; `previous`'s carries over when its settings are the
    /// same, and its revocations seed the new state when it names the same store (a reload
    /// that changes `sync_interval` keeps enforcing them while it reconnects).
    pub fn new(settings: Option<&Settings>, previous: Option<&Fleet>) -> Self {
        let mut seed = None;
        if let Some(p) = previous {
            let (same, same_store) = match (&p.inner.settings, settings) {
                (None, None) => (true, true),
                (Some(a), Some(b)) => (a == b, a.same_store(b)),
                _ => (false, false),
            };
            if same {
                return p.clone();
            }
            if same_store {
                seed = Some((p.revocations_full(), lock(&p.inner.local).clone()));
            }
        }
        let (set, local) = seed.unwrap_or_default();
        let seed = std::collections::hash_map::RandomState::new();
        let seed = std::hash::BuildHasher::hash_one(&seed, 0u8);
        Fleet {
            inner: Arc::new(Inner {
                settings: settings.cloned(),
                set: ArcSwap::new(set),
                local: Mutex::new(local),
                redis: ArcSwapOption::empty(),
                changed: Arc::new(tokio::sync::Notify::new()),
                started: AtomicBool::new(false),
                next_id: AtomicU64::new(seed),
            }),
        }
    }

    /// The fleet-wide budget of `limits` (`None` without `[fleet]`).
    pub fn budget(&self, limits: &crate::config::RateLimit) -> Option<budget::Budget> {
        budget::Budget::new(self.clone(), limits)
    }

    /// Whether `other` is this very state (a reload carried it over).
    pub fn same(&self, other: &Fleet) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// `"fleet"` with Redis, `"process"` without.
    pub fn scope(&self) -> &'static str {
        if self.inner.settings.is_some() {
            "fleet"
        } else {
            "process"
        }
    }

    /// The revocations in force (an in-memory index; the hot path's only question).
    pub fn revocations(&self) -> arc_swap::Guard<Arc<RevocationSet>> {
        self.inner.set.load()
    }

    /// [`Fleet::revocations`], as an `Arc` to keep.
    pub fn revocations_full(&self) -> Arc<RevocationSet> {
        self.inner.set.load_full()
    }

    /// How long until every replica applies a change: `sync_interval` (0 in one process).
    pub fn bound(&self) -> Duration {
        self.inner
            .settings
            .as_ref()
            .map_or(Duration::ZERO, |s| s.sync_interval)
    }

    /// A fresh revocation id.
    pub fn new_id(&self) -> String {
        let n = self
            .inner
            .next_id
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed);
        format!("rev_{n:016x}")
    }

    /// Connects to Redis and keeps the set in sync, on the current runtime (once).
    pub fn start(&self, metrics: &Arc<Metrics>) {
        let Some(settings) = &self.inner.settings else {
            return;
        };
        if self.inner.started.swap(true, Ordering::SeqCst) {
            return;
        }
        let client = match redis::Client::open(settings.redis_url.expose()) {
            Ok(c) => c,
            Err(e) => {
                // The config checked the URL; this is a bug if it happens.
                tracing::error!(target: "edgesign::fleet", error = ?e.kind(), "fleet.redis_url is unusable");
                return;
            }
        };
        metrics.set_fleet_up(false);
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(connect_and_sync(
            weak.clone(),
            client.clone(),
            metrics.clone(),
        ));
        tokio::spawn(listen(weak, client, metrics.clone()));
    }

    /// Makes a revocation. With Redis: written, published, and applied here at once; Redis
    /// unreachable → `503 unavailable` (nothing is revoked).
    pub async fn add(&self, r: Revocation, now: u64) -> Result<(), Error> {
        let Some(settings) = &self.inner.settings else {
            let mut local = lock(&self.inner.local);
            local.retain(|x| x.live(now));
            local.push(r);
            self.inner
                .set
                .store(Arc::new(RevocationSet::new(local.clone(), now)));
            return Ok(());
        };
        let mut redis = self.connection()?;
        let (hash, channel) = keys(settings);
        // Stored and announced in one transaction: both or neither.
        let written: redis::RedisResult<()> = redis::pipe()
            .atomic()
            .hset(&hash, &r.id, r.to_stored())
            .ignore()
            .publish(&channel, &r.id)
            .ignore()
            .query_async(&mut redis)
            .await;
        written.map_err(|e| unavailable(&e))?;
        let mut list: Vec<Revocation> = self.inner.set.load().all().to_vec();
        list.push(r);
        self.inner
            .set
            .store(Arc::new(RevocationSet::new(list, now)));
        Ok(())
    }

    /// Deletes a revocation; `false` when there was none with this id.
    pub async fn remove(&self, id: &str, now: u64) -> Result<bool, Error> {
        let Some(settings) = &self.inner.settings else {
            let mut local = lock(&self.inner.local);
            let before = local.len();
            local.retain(|x| x.id != id && x.live(now));
            let found = local.len() < before;
            self.inner
                .set
                .store(Arc::new(RevocationSet::new(local.clone(), now)));
            return Ok(found);
        };
        let mut redis = self.connection()?;
        let (hash, channel) = keys(settings);
        let removed: redis::RedisResult<(i64,)> = redis::pipe()
            .atomic()
            .hdel(&hash, id)
            .publish(&channel, id)
            .ignore()
            .query_async(&mut redis)
            .await;
        let (removed,) = removed.map_err(|e| unavailable(&e))?;
        let list: Vec<Revocation> = self
            .inner
            .set
            .load()
            .all()
            .iter()
            .filter(|x| x.id != id)
            .cloned()
            .collect();
        self.inner
            .set
            .store(Arc::new(RevocationSet::new(list, now)));
        Ok(removed > 0)
    }

    fn connection(&self) -> Result<redis::aio::ConnectionManager, Error> {
        self.inner
            .redis
            .load_full()
            .map(|c| (*c).clone())
            .ok_or(Error::Unavailable(
                "the fleet store (Redis) is not reachable; nothing was changed",
            ))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn keys(settings: &Settings) -> (String, String) {
    let name = format!("{}revocations", settings.key_prefix);
    (name.clone(), name)
}

fn unavailable(e: &redis::RedisError) -> Error {
    tracing::warn!(target: "edgesign::fleet", error = %e, "a fleet write failed");
    Error::Unavailable("the fleet store (Redis) is not reachable; nothing was changed")
}

fn now() -> u64 {
    crate::clock::unix_secs(crate::clock::now())
}

/// Connects (retrying every second until Redis answers), then re-reads the revocations
/// every `sync_interval` and whenever a message says they changed.
async fn connect_and_sync(inner: Weak<Inner>, client: redis::Client, metrics: Arc<Metrics>) {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_max_delay(Duration::from_secs(2))
        // A few quick retries per attempt; the loop below keeps trying every second.
        .set_number_of_retries(2);
    let manager = loop {
        if inner.strong_count() == 0 {
            return;
        }
        match client
            .get_connection_manager_with_config(config.clone())
            .await
        {
            Ok(m) => break m,
            Err(e) => {
                metrics.fleet_error("connect");
                tracing::warn!(target: "edgesign::fleet", error = %e, "cannot reach Redis; retrying in 1 s (revocations stay as last known)");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    tracing::info!(target: "edgesign::fleet", "connected to Redis");
    let mut up = true;
    metrics.set_fleet_up(true);
    loop {
        let Some(me) = inner.upgrade() else { return };
        me.redis.store(Some(Arc::new(manager.clone())));
        let Some(settings) = me.settings.clone() else {
            return;
        };
        let (hash, _) = keys(&settings);
        let mut conn = manager.clone();
        let read: redis::RedisResult<Vec<(String, String)>> = conn.hgetall(&hash).await;
        match read {
            Ok(entries) => {
                let now = now();
                let mut lapsed = Vec::new();
                let list: Vec<Revocation> = entries
                    .iter()
                    .filter_map(|(id, v)| {
                        let parsed = Revocation::from_stored(v);
                        if parsed.is_none() {
                            // Not enforced: say so, rather than skip it in silence.
                            metrics.fleet_error("parse");
                            tracing::warn!(target: "edgesign::fleet", id = %id, "a stored revocation cannot be read; it is not enforced");
                        }
                        parsed
                    })
                    .filter(|r| {
                        let live = r.live(now);
                        if !live {
                            lapsed.push(r.id.clone());
                        }
                        live
                    })
                    .collect();
                me.set.store(Arc::new(RevocationSet::new(list, now)));
                if !lapsed.is_empty() {
                    // Lapsed revocations disappear (any replica may remove them).
                    let _: redis::RedisResult<i64> = conn.hdel(&hash, lapsed).await;
                }
                if !up {
                    tracing::info!(target: "edgesign::fleet", "Redis is back");
                }
                up = true;
            }
            Err(e) => {
                metrics.fleet_error("sync");
                if up {
                    tracing::warn!(target: "edgesign::fleet", error = %e, "cannot read revocations from Redis; the last known set stays in force");
                }
                up = false;
            }
        }
        metrics.set_fleet_up(up);
        let wait = settings.sync_interval;
        let changed = me.changed.clone();
        drop(me);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = changed.notified() => {}
        }
    }
}

/// Listens on the revocations channel and wakes the sync loop on every message;
/// resubscribes after a lost connection.
async fn listen(inner: Weak<Inner>, client: redis::Client, metrics: Arc<Metrics>) {
    loop {
        let Some(channel) = inner
            .upgrade()
            .and_then(|me| me.settings.as_ref().map(|s| keys(s).1))
        else {
            return;
        };
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            redis::RedisResult::Ok(pubsub)
        }
        .await;
        match subscribed {
            Ok(mut pubsub) => {
                let mut messages = pubsub.on_message();
                loop {
                    // Woken at least every few seconds, so that the listener of a fleet state
                    // a reload replaced ends instead of waiting for a message that never comes.
                    let next = tokio::time::timeout(Duration::from_secs(5), messages.next()).await;
                    let Some(me) = inner.upgrade() else { return };
                    match next {
                        Ok(Some(_)) => me.changed.notify_one(),
                        Ok(None) => break,
                        Err(_) => {}
                    }
                }
            }
            Err(_) => metrics.fleet_error("subscribe"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
