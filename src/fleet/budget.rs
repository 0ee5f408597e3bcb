//! The fleet's rate budget: one GCRA per principal in Redis (`gcra.lua`, on the server's
//! clock), leased to each replica in small batches.
//!
//! A request takes a token from its principal's lease on this replica, which is a lock and a
//! decrement. Only when the lease is empty (the principal's first request here, or one whose
//! lease ran out or lapsed) does the request wait for the script. A lease starts at one token
//! and doubles each time one is spent before it lapses, up to `L = ⌈per_second / 10⌉`
//! (at most 64, at most `burst`); once it is half spent, the next one is fetched in the
//! background. So a principal that keeps sending never waits on Redis, and one that sends a
//! request now and then waits for one round trip.
//!
//! The bound this implies: Redis counts every token when it leases it, and a lease lapses
//! one second after it was granted, so at any instant each replica holds at most `L` tokens
//! per principal that Redis has counted and nobody has spent yet. The fleet admits at most
//! `N × L` requests more than the GCRA itself would, in any window (`N` replicas), and tokens a
//! lapsed lease did not spend are lost (at most `L` per replica per principal per second).
//! A refusal is remembered until the script says a token frees, so a limited principal costs
//! Redis one call per replica per refusal period.
//!
//! When Redis does not answer (no connection yet, an error, or no answer within 250 ms), the
//! request follows `on_redis_error` — `allow`: the local limit alone; `deny`: `503
//! unavailable` — and Redis is not asked again for a second, so that a dead Redis costs the
//! hot path nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Fleet;
use crate::Error;
use crate::auth::RateKey;
use crate::config::{OnRedisError, RateLimit};
use crate::metrics::Metrics;

/// How long a lease may be spent after Redis granted it.
const LEASE_TTL: Duration = Duration::from_secs(1);
/// How long a request waits for the script.
const ASK_TIMEOUT: Duration = Duration::from_millis(250);
/// How long Redis is left alone after it failed to answer.
const BACK_OFF: Duration = Duration::from_secs(1);
/// The largest lease.
const MAX_LEASE: u32 = 64;

/// What the budget says about one request without asking Redis.
#[derive(Debug)]
pub enum Take {
    /// A token from the lease (or Redis is down and `on_redis_error = "allow"`).
    Granted,
    /// Refused: rate limited (the script's last answer), or Redis down and `deny`.
    Refused(Error),
    /// The lease is empty: [`Budget::ask`] Redis.
    Ask,
}

/// The fleet-wide budget of `[rate_limit]`, leased from Redis.
pub struct Budget {
    fleet: Fleet,
    slots: dashmap::DashMap<RateKey, Arc<Slot>, foldhash::fast::RandomState>,
    /// Microseconds per token.
    interval_us: u64,
    burst: u32,
    /// The largest lease, `L`.
    cap: u32,
    on_error: OnRedisError,
    prefix: String,
    script: redis::Script,
    /// Redis is not asked before this instant (microseconds after `epoch`).
    skip_until: AtomicU64,
    epoch: Instant,
    checked: AtomicU64,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget")
            .field("interval_us", &self.interval_us)
            .field("burst", &self.burst)
            .field("lease", &self.cap)
            .field("principals", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// One principal's lease on this replica.
struct Slot {
    /// The Redis key of its GCRA.
    key: String,
    lease: Mutex<Lease>,
    /// One call to Redis at a time per principal and replica.
    asking: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Lease {
    tokens: u32,
    /// The size of the last lease (0: none yet).
    size: u32,
    until: Option<Instant>,
    /// Refused until then (the script said when a token frees).
    denied_until: Option<Instant>,
    prefetching: bool,
}

enum Local {
    Taken { prefetch: Option<u32> },
    Denied(Duration),
    Empty,
}

impl Lease {
    fn take(&mut self, now: Instant, cap: u32) -> Local {
        if let Some(d) = self.denied_until {
            if now < d {
                return Local::Denied(d - now);
            }
            self.denied_until = None;
        }
        if self.tokens == 0 || self.until.is_none_or(|u| now >= u) {
            return Local::Empty;
        }
        self.tokens -= 1;
        // Half spent: the next (twice as large, up to the cap) is due before it runs out. The
        // caller that starts the fetch marks it (`prefetching`), under this same lock.
        let prefetch = (!self.prefetching && self.size >= 2 && self.tokens <= self.size / 2)
            .then(|| self.top_up(cap))
            .filter(|&n| n > 0);
        Local::Taken { prefetch }
    }

    /// How many tokens to ask for when the lease is empty: one at first, twice the last
    /// lease when it was all spent, half of it when it lapsed unspent.
    fn want(&self, cap: u32) -> u32 {
        if self.size == 0 {
            1
        } else if self.tokens == 0 {
            (self.size * 2).min(cap)
        } else {
            (self.size / 2).max(1)
        }
    }

    /// Tokens that bring the lease to twice its size (at most the cap).
    fn top_up(&self, cap: u32) -> u32 {
        (self.size * 2).min(cap).saturating_sub(self.tokens)
    }

    fn granted(&mut self, n: u32, now: Instant, spend_one: bool) {
        // Tokens of a lapsed lease are not carried into the new one.
        if self.until.is_none_or(|u| now >= u) {
            self.tokens = 0;
        }
        self.tokens = if spend_one { n - 1 } else { self.tokens + n };
        self.size = self.tokens + u32::from(spend_one);
        self.until = Some(now + LEASE_TTL);
    }

    fn idle(&self, now: Instant) -> bool {
        self.until
            .is_none_or(|u| now >= u + Duration::from_secs(10))
            && self.denied_until.is_none_or(|d| now >= d)
            && !self.prefetching
    }
}

impl Budget {
    /// The budget of `limits` across the fleet whose Redis `fleet` holds.
    pub(super) fn new(fleet: Fleet, limits: &RateLimit) -> Option<Budget> {
        let settings = fleet.inner.settings.as_ref()?;
        // At least one token an hour, and a bucket of at most ~3 years of tokens: what Redis
        // and the script's doubles hold exactly (µs stay below 2^53, PX stays valid).
        let per_second = limits.per_second.max(1.0 / 3600.0);
        let interval_us = ((1e6 / per_second).round() as u64).max(1);
        let burst = limits.burst.max(1).min(
            u32::try_from(100_000_000_000_000 / interval_us)
                .unwrap_or(u32::MAX)
                .max(1),
        );
        let cap = ((per_second / 10.0).ceil() as u32).clamp(1, MAX_LEASE.min(burst));
        Some(Budget {
            prefix: format!("{}rate:", settings.key_prefix),
            on_error: settings.on_redis_error,
            fleet,
            slots: dashmap::DashMap::with_hasher(foldhash::fast::RandomState::default()),
            interval_us,
            burst,
            cap,
            script: redis::Script::new(include_str!("gcra.lua")),
            skip_until: AtomicU64::new(0),
            epoch: crate::clock::instant(),
            checked: AtomicU64::new(0),
        })
    }

    /// The largest lease, `L`.
    pub fn lease_cap(&self) -> u32 {
        self.cap
    }

    /// Takes a token from `key`'s lease on this replica, if it holds one (no Redis).
    pub fn try_take(self: &Arc<Self>, key: &RateKey, metrics: &Arc<Metrics>) -> Take {
        let now = crate::clock::instant();
        // While Redis is left alone, tokens already leased are still spent; only what would
        // need Redis follows on_redis_error.
        let skipping = self.skipping(now);
        if self
            .checked
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(4096)
        {
            // A slot someone holds (an ask or a prefetch in flight) stays.
            self.slots
                .retain(|_, s| Arc::strong_count(s) > 1 || !lock(&s.lease).idle(now));
        }
        let Some(slot) = self.slots.get(key) else {
            return if skipping { self.fallback() } else { Take::Ask };
        };
        let taken = {
            let mut lease = lock(&slot.lease);
            let taken = lease.take(now, self.cap);
            if matches!(taken, Local::Taken { prefetch: Some(_) }) && !skipping {
                lease.prefetching = true;
            }
            taken
        };
        match taken {
            Local::Taken { prefetch: None } => Take::Granted,
            Local::Taken { prefetch: Some(_) } if skipping => Take::Granted,
            Local::Taken { prefetch: Some(_) } => {
                let (me, slot, metrics) = (self.clone(), slot.clone(), metrics.clone());
                tokio::spawn(async move { me.prefetch(&slot, &metrics).await });
                Take::Granted
            }
            Local::Denied(wait) => Take::Refused(limited(wait)),
            Local::Empty if skipping => self.fallback(),
            Local::Empty => Take::Ask,
        }
    }

    /// Fetches the next lease ahead of need, one Redis call at a time with [`Budget::ask`]
    /// (so neither overwrites the other's tokens), for what the lease lacks by then.
    async fn prefetch(&self, slot: &Slot, metrics: &Metrics) {
        let _one_at_a_time = slot.asking.lock().await;
        let want = {
            let lease = lock(&slot.lease);
            let live = lease.until.is_some_and(|u| crate::clock::instant() < u);
            if live { lease.top_up(self.cap) } else { 0 }
        };
        let answer = if want > 0 {
            self.call(&slot.key, want, metrics).await
        } else {
            None
        };
        let mut lease = lock(&slot.lease);
        lease.prefetching = false;
        if let Some(Answer::Granted(n)) = answer {
            lease.granted(n, crate::clock::instant(), false);
        }
    }

    /// Asks Redis for a lease for `key` (named `name` in Redis) and takes one token of it.
    pub async fn ask(&self, key: &RateKey, name: &str, metrics: &Metrics) -> Result<(), Error> {
        let slot = self
            .slots
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Slot {
                    key: format!("{}{name}", self.prefix),
                    lease: Mutex::new(Lease::default()),
                    asking: tokio::sync::Mutex::new(()),
                })
            })
            .clone();
        let _one_at_a_time = slot.asking.lock().await;
        // Whoever asked before us may have brought enough for us too.
        let want = {
            let mut lease = lock(&slot.lease);
            match lease.take(crate::clock::instant(), self.cap) {
                Local::Taken { .. } => return Ok(()),
                Local::Denied(wait) => return Err(limited(wait)),
                Local::Empty => lease.want(self.cap),
            }
        };
        // Whoever asked before us may have found Redis gone: do not wait for it again.
        if self.skipping(crate::clock::instant()) {
            return self.fallback().into_result();
        }
        let answer = self.call(&slot.key, want, metrics).await;
        let now = crate::clock::instant();
        let mut lease = lock(&slot.lease);
        match answer {
            Some(Answer::Granted(n)) => {
                lease.granted(n, now, true);
                Ok(())
            }
            Some(Answer::Wait(wait)) => {
                lease.denied_until = Some(now + wait);
                Err(limited(wait))
            }
            None => self.fallback().into_result(),
        }
    }

    /// Runs the script; `None` when Redis did not answer (and Redis is left alone a while).
    async fn call(&self, key: &str, want: u32, metrics: &Metrics) -> Option<Answer> {
        let Ok(mut redis) = self.fleet.connection() else {
            self.back_off(metrics);
            return None;
        };
        let mut invocation = self.script.key(key);
        invocation.arg(self.interval_us).arg(self.burst).arg(want);
        let answer = tokio::time::timeout(
            ASK_TIMEOUT,
            invocation.invoke_async::<(u64, u64)>(&mut redis),
        )
        .await;
        match answer {
            Ok(Ok((granted, _))) if granted > 0 => Some(Answer::Granted(
                u32::try_from(granted).unwrap_or(want).min(want),
            )),
            Ok(Ok((_, retry_us))) => Some(Answer::Wait(Duration::from_micros(retry_us.max(1)))),
            Ok(Err(e)) => {
                tracing::warn!(target: "edgesign::fleet", error = %e, "the fleet rate limit script failed; on_redis_error applies for 1 s");
                self.back_off(metrics);
                None
            }
            Err(_) => {
                tracing::warn!(target: "edgesign::fleet", "Redis did not answer the fleet rate limit within 250 ms; on_redis_error applies for 1 s");
                self.back_off(metrics);
                None
            }
        }
    }

    fn back_off(&self, metrics: &Metrics) {
        metrics.fleet_error("rate_limit");
        let until = crate::clock::instant() + BACK_OFF;
        self.skip_until.store(self.micros(until), Ordering::Relaxed);
    }

    fn skipping(&self, now: Instant) -> bool {
        let until = self.skip_until.load(Ordering::Relaxed);
        until != 0 && self.micros(now) < until
    }

    fn micros(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_micros())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn fallback(&self) -> Take {
        match self.on_error {
            OnRedisError::Allow => Take::Granted,
            OnRedisError::Deny => Take::Refused(Error::Unavailable(
                "the fleet rate limit (Redis) is not reachable",
            )),
        }
    }
}

impl Take {
    /// What a request that waited for Redis gets: granted or refused (never `Ask`).
    fn into_result(self) -> Result<(), Error> {
        match self {
            Take::Refused(e) => Err(e),
            Take::Granted | Take::Ask => Ok(()),
        }
    }
}

enum Answer {
    Granted(u32),
    Wait(Duration),
}

/// `429` with the whole seconds until a token frees (at least 1).
fn limited(wait: Duration) -> Error {
    Error::RateLimited {
        retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_starts_at_one_token_and_doubles_while_it_is_spent() {
        let now = crate::clock::instant();
        let mut lease = Lease::default();
        assert_eq!(lease.want(8), 1);
        lease.granted(1, now, true);
        assert!(matches!(lease.take(now, 8), Local::Empty));
        assert_eq!(lease.want(8), 2);
        lease.granted(2, now, true);
        // The second of two is spent: the next lease (twice as large) is fetched now.
        assert!(matches!(
            lease.take(now, 8),
            Local::Taken { prefetch: Some(4) }
        ));
        // Reporting it marks nothing: only the caller that starts the fetch does (an ask
        // that takes a token must not leave the flag set forever).
        assert!(!lease.prefetching);
        lease.prefetching = true;
        assert!(matches!(lease.take(now, 8), Local::Empty));
        lease.prefetching = false;
        lease.granted(4, now, false);
        assert_eq!((lease.tokens, lease.size), (4, 4));
        // Half of four left: the next is eight, less the two in hand.
        assert!(matches!(
            lease.take(now, 8),
            Local::Taken { prefetch: None }
        ));
        assert!(matches!(
            lease.take(now, 8),
            Local::Taken { prefetch: Some(6) }
        ));
    }

    #[test]
    fn tokens_of_a_lapsed_lease_are_not_carried_into_the_next() {
        let now = crate::clock::instant();
        let mut lease = Lease::default();
        lease.granted(8, now, true);
        lease.granted(2, now + LEASE_TTL, false);
        assert_eq!(lease.tokens, 2);
    }

    #[test]
    fn a_lapsed_lease_is_not_spent_and_the_next_one_is_smaller() {
        let now = crate::clock::instant();
        let mut lease = Lease::default();
        lease.granted(8, now, true);
        assert!(matches!(lease.take(now + LEASE_TTL, 8), Local::Empty));
        assert_eq!(lease.want(8), 4);
    }

    #[test]
    fn a_refusal_is_remembered_until_the_token_frees() {
        let now = crate::clock::instant();
        let mut lease = Lease {
            denied_until: Some(now + Duration::from_millis(1500)),
            ..Lease::default()
        };
        let Local::Denied(wait) = lease.take(now, 8) else {
            panic!("not denied");
        };
        assert!(matches!(
            limited(wait),
            Error::RateLimited { retry_after: 2 }
        ));
        assert!(matches!(
            lease.take(now + Duration::from_secs(2), 8),
            Local::Empty
        ));
    }
}
