//! Shell leaf: the keyed rate limiter (governor token buckets, one per caller), checked
//! before any signing work.

use std::time::Duration;

use crate::Error;
use crate::auth::RateKey;
use crate::config::RateLimit;

/// Requests checked, for periodic housekeeping.
static CHECKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

type Buckets = governor::RateLimiter<
    RateKey,
    governor::state::keyed::DashMapStateStore<RateKey, foldhash::fast::RandomState>,
    governor::clock::DefaultClock,
>;

/// One token bucket per caller.
#[derive(Debug)]
pub struct Limiter {
    buckets: Buckets,
}

impl Limiter {
    /// Buckets of `[rate_limit]`'s size.
    pub fn new(r: &RateLimit) -> Self {
        Limiter {
            buckets: governor::RateLimiter::dashmap_with_hasher(
                quota(r),
                foldhash::fast::RandomState::default(),
            ),
        }
    }

    /// Takes a token from `key`'s bucket: `429 rate_limit_exceeded` with the seconds until
    /// one is free when it is empty. Buckets idle long enough to be full again are dropped
    /// now and then.
    pub fn check(&self, key: &RateKey) -> Result<(), Error> {
        if CHECKED
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .is_multiple_of(4096)
        {
            self.buckets.retain_recent();
        }
        self.buckets.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            Error::RateLimited {
                retry_after: wait.as_secs() + 1,
            }
        })
    }
}

fn quota(r: &RateLimit) -> governor::Quota {
    let period = Duration::from_secs_f64(1.0 / r.per_second.max(1e-6));
    let burst = std::num::NonZeroU32::new(r.burst.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    governor::Quota::with_period(period)
        .unwrap_or_else(|| governor::Quota::per_second(std::num::NonZeroU32::MIN))
        .allow_burst(burst)
}
