//! What one cached URL costs on the heap, counted by a global allocator and read from the
//! process's RSS: the entry alone (key and URL), then the same entries in the signature
//! cache (moka's node, its indexes and timer wheel on top), for a SigV4 URL as long as the
//! load harness's. The per-thread hit table is a fixed cost per thread (its slots), not per
//! entry, and is printed too.
//!
//! `cargo run --release --example cache_entry [entries]` (default 1,000,000)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fixture"
)]

use std::sync::Arc;

use edgesign::cache::{CacheKey, SignatureCache};
use edgesign::metrics::Metrics;
use edgesign::sign::{Method, Signed};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Live heap bytes and allocations made so far.
fn live() -> (i64, u64) {
    let s = GLOBAL.stats();
    (
        s.bytes_allocated as i64 - s.bytes_deallocated as i64 + s.bytes_reallocated as i64,
        (s.allocations + s.reallocations) as u64,
    )
}

fn rss_bytes() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: i64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// The object key and a URL shaped like the harness's (`/r/keys/<n>.bin` on a path-style S3
/// origin): 330-odd bytes.
fn key_and_url(i: u64) -> (String, String) {
    let key = format!("keys/{i}.bin");
    let url = format!(
        "http://127.0.0.1:38123/bench/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261203%2Fus-east-1%2Fs3%2Faws4_request\
         &X-Amz-Date=20261203T000000Z&X-Amz-Expires=4500&X-Amz-SignedHeaders=host\
         &X-Amz-Signature={i:064x}"
    );
    (key, url)
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("entries: a number"))
        .unwrap_or(1_000_000);
    let (_, sample) = key_and_url(n - 1);
    println!("# {n} entries, URL {} bytes", sample.len());

    // The key and the URL alone, as the cache's entries hold them, without the cache.
    let (b0, a0) = live();
    let r0 = rss_bytes();
    let mut bare = Vec::with_capacity(n as usize);
    let (vec_bytes, _) = live();
    for i in 0..n {
        let (key, url) = key_and_url(i);
        let k = CacheKey::new(0, &key, Method::Get, &[], "", 1_800_000_000);
        bare.push((k, edgesign::cache::Entry::uncached(Signed { url, expires_at: 1_800_004_500 })));
    }
    let (b1, a1) = live();
    let r1 = rss_bytes();
    let per = |x: i64| x as f64 / n as f64;
    println!(
        "key + entry alone:  {:7.1} B heap, {:4.1} allocations, {:7.1} B RSS per entry",
        per(b1 - vec_bytes),
        (a1 - a0) as f64 / n as f64,
        per(r1 - r0 - (vec_bytes - b0))
    );
    drop(bare);

    // The same entries in the signature cache.
    let cache = SignatureCache::new(n, 1 << 40, Arc::new(Metrics::new()));
    let (b0, a0) = live();
    let r0 = rss_bytes();
    for i in 0..n {
        let (key, url) = key_and_url(i);
        let k = CacheKey::new(0, &key, Method::Get, &[], "", 1_800_000_000);
        cache
            .get_or_sign(k, 1_800_000_000, 1_800_000_900, || {
                Ok(Signed { url, expires_at: 1_800_004_500 })
            })
            .unwrap();
    }
    let held = cache.entries_now();
    let (b1, a1) = live();
    let r1 = rss_bytes();
    println!(
        "in the cache:       {:7.1} B heap, {:4.1} allocations, {:7.1} B RSS per entry ({held} held)",
        per(b1 - b0),
        (a1 - a0) as f64 / n as f64,
        per(r1 - r0)
    );

    // The per-thread hit table: a fixed cost per thread once it has served a hit.
    let (b0, _) = live();
    let (key, _) = key_and_url(n - 1);
    let k = CacheKey::new(0, &key, Method::Get, &[], "", 1_800_000_000);
    cache.get(&k, 1_800_000_001).expect("a hit");
    let (b1, _) = live();
    println!("per-thread hit table: {} B per thread (its slots; entries are shared)", b1 - b0);
}
