//! The only place that reads the system clock. Everything else takes time as a parameter,
//! and clippy's `disallowed-methods` (clippy.toml) keeps it that way.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The current wall-clock time.
#[allow(clippy::disallowed_methods, reason = "this module owns the clock")]
pub fn now() -> SystemTime {
    SystemTime::now()
}

/// A monotonic instant, for measuring durations.
#[allow(clippy::disallowed_methods, reason = "this module owns the clock")]
pub fn instant() -> Instant {
    Instant::now()
}

/// Seconds since the Unix epoch of `t` (0 before 1970: nothing we sign predates it).
pub fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Where a service reads the wall clock: the system's, or (in tests) one they move, so that
/// crossing a time bucket takes no sleeping.
#[derive(Clone, Default)]
pub struct Clock(Option<std::sync::Arc<dyn Fn() -> u64 + Send + Sync>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock(None)
    }

    /// A clock that reads `unix_secs()`.
    pub fn from_fn(unix_secs: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Clock(Some(std::sync::Arc::new(unix_secs)))
    }

    /// Now, in Unix seconds.
    pub fn unix_secs(&self) -> u64 {
        match &self.0 {
            None => unix_secs(now()),
            Some(read) => read(),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Clock(injected)"
        } else {
            "Clock(system)"
        })
    }
}

/// The instant `secs` seconds after the Unix epoch.
pub fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_secs(secs)
}
