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

/// The instant `secs` seconds after the Unix epoch.
pub fn from_unix_secs(secs: u64) -> SystemTime {
    UNIX_EPOCH + std::time::Duration::from_secs(secs)
}
