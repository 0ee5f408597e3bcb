//! What one cached URL costs on the heap, counted by a global allocator and read from the
//! process's RSS: the entries in the signature cache, then the same keys and packed URLs
//! alone (what the cache's entries own; the difference is moka's node, its indexes and
//! timer wheel), for a SigV4 URL as long as the load harness's. The per-thread hit table is a fixed cost per thread (its slots), not per
//! entry, and is printed too.
//!
//! `cargo run --release --example cache_entry [entries]` (default 1,000,000)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fixture"
)]

use std::sync::Arc;

use edgesign::cache::{CacheKey, Packed, SignatureCache};
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

/// 64 hex digits that look like a signature (no two share a long prefix, as real ones do
/// not): splitmix64 of `i`, four times.
fn signature(i: u64) -> String {
    let mut x = i.wrapping_mul(4);
    (0..4)
        .map(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            format!("{:016x}", z ^ (z >> 31))
        })
        .collect()
}

/// The object key and a URL shaped like the harness's (`/r/keys/<n>.bin` on a path-style S3
/// origin): 330-odd bytes.
fn key_and_url(i: u64) -> (String, String) {
    let key = format!("keys/{i}.bin");
    let url = format!(
        "http://127.0.0.1:38123/bench/{key}?X-Amz-Algorithm=AWS4-HMAC-SHA256\
         &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261203%2Fus-east-1%2Fs3%2Faws4_request\
         &X-Amz-Date=20261203T000000Z&X-Amz-Expires=4500&X-Amz-SignedHeaders=host\
         &X-Amz-Signature={}",
        signature(i)
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

    // Measured first, on a fresh heap: the cache's entries, then the same keys and URLs
    // alone (the cache is kept, so the second phase cannot reuse its memory).
    // The same entries in the signature cache.
    let cache = SignatureCache::new(
        n,
        1 << 40,
        std::time::Duration::from_secs(900),
        Arc::new(Metrics::new()),
    );
    let (b0, a0) = live();
    let r0 = rss_bytes();
    for i in 0..n {
        let (key, url) = key_and_url(i);
        let k = CacheKey::new(0, &key, Method::Get, &[], "", 1_800_000_000);
        cache
            .get_or_sign(k, || {
                Ok(Signed {
                    url,
                    expires_at: 1_800_004_500,
                })
            })
            .unwrap();
    }
    let held = cache.entries_now();
    let per = |x: i64| x as f64 / n as f64;
    let (b1, a1) = live();
    let r1 = rss_bytes();
    println!(
        "in the cache:       {:7.1} B heap, {:4.1} allocations, {:7.1} B RSS per entry ({held} held)",
        per(b1 - b0),
        (a1 - a0) as f64 / n as f64,
        per(r1 - r0)
    );

    // The key and the packed URL alone, as the cache's entries hold them, without the cache:
    // the URL as its difference from a reference URL the entries share.
    let (b0, a0) = live();
    let r0 = rss_bytes();
    let mut bare = Vec::with_capacity(n as usize);
    let (vec_bytes, _) = live();
    let reference = Arc::new(key_and_url(0).1);
    for i in 0..n {
        let (key, url) = key_and_url(i);
        let k = CacheKey::new(0, &key, Method::Get, &[], "", 1_800_000_000);
        bare.push((k, Packed::new(&url, reference.clone(), 1_800_004_500)));
    }
    let (b1, a1) = live();
    let r1 = rss_bytes();
    println!(
        "key + packed URL:  {:7.1} B heap, {:4.1} allocations, {:7.1} B RSS per entry",
        per(b1 - vec_bytes),
        (a1 - a0) as f64 / n as f64,
        per(r1 - r0 - (vec_bytes - b0))
    );

    // The per-thread hit table: a fixed cost per thread once it has served a hit.
    let (b0, _) = live();
    let (key, _) = key_and_url(n - 1);
    let k = CacheKey::new(0, &key, Method::Get, &[], "", 1_800_000_000);
    cache.get(&k, 1_800_000_001).expect("a hit");
    let (b1, _) = live();
    println!(
        "per-thread hit table: {} B per thread (its slots; entries are shared)",
        b1 - b0
    );
}
