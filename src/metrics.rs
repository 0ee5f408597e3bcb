//! Ground floor: every metric edgesign exports (Prometheus via `prometheus-client`).
//!
//! Metrics live for the whole process: a `SIGHUP` reload swaps the config and the cache, not
//! the counters. Label values are bounded: route kinds, status codes, scheme names and the
//! configured origin names, never anything a client chooses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `{route, status}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    route: &'static str,
    status: u16,
}

/// `{route}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

/// `{scheme}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SchemeLabel {
    scheme: &'static str,
}

/// `{origin}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabel {
    origin: String,
}

/// `{origin, kind}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginError {
    origin: String,
    kind: &'static str,
}

/// `{listener}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: &'static str,
}

/// `{result}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Latency buckets, in seconds: fine below a millisecond (a cache hit, an HMAC), an RSA
/// signature in the milliseconds, and bounds exactly at the usual SLO thresholds (100 ms,
/// 250 ms, 1 s) so that `le="0.1"` and `le="1"` can be read straight off.
const LATENCY_BUCKETS: [f64; 18] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0,
];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// `{version, commit}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabel {
    version: &'static str,
    commit: &'static str,
}

/// `{verdict}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabel {
    verdict: &'static str,
}

/// What edgesign decided about a signed URL a client brought.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlVerdict {
    /// Genuine but expired, and re-signed (the caller re-authorized, or `stale_grace`).
    Rescued,
    /// Not genuine: tampered, foreign key, unknown key, or another region.
    Forged,
    /// Genuine and expired, and the caller could not be re-authorized.
    ExpiredRefused,
}

impl UrlVerdict {
    const ALL: [UrlVerdict; 3] = [
        UrlVerdict::Rescued,
        UrlVerdict::Forged,
        UrlVerdict::ExpiredRefused,
    ];

    fn label(self) -> &'static str {
        match self {
            UrlVerdict::Rescued => "rescued",
            UrlVerdict::Forged => "forged",
            UrlVerdict::ExpiredRefused => "expired_refused",
        }
    }
}

/// The route kinds of `edgesign_requests_total{route}`, each exported from start-up with the
/// error statuses in [`PRIMED_STATUSES`] at 0, so that an alert on a rate fires on the first
/// error, not the second.
pub const ROUTE_KINDS: [&str; 15] = [
    "-",
    "healthz",
    "readyz",
    "metrics",
    "redirect",
    "stream",
    "cookie",
    "proxy_file",
    "local_origin",
    "api_content_sign",
    "api_files_signed_url",
    "api_presign",
    "api_native_sign",
    "api_cookies",
    "options",
];

/// Statuses exported at 0 for every route kind from start-up.
const PRIMED_STATUSES: [u16; 7] = [401, 403, 429, 500, 502, 503, 504];

/// The `kind`s of `edgesign_origin_errors_total`.
pub const ORIGIN_ERROR_KINDS: [&str; 7] = [
    "connect", "dns", "tls", "refused", "timeout", "status", "body",
];

/// `process_*` metrics read from `/proc/self` at each scrape (Linux; elsewhere none).
#[derive(Debug)]
struct ProcessCollector;

impl ProcessCollector {
    /// (CPU seconds, resident bytes, virtual bytes, start time as Unix seconds).
    fn stat() -> Option<(f64, u64, u64, f64)> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // man 5 proc: utime 14, stime 15, starttime 22, vsize 23, rss 24 (1-based, counting
        // pid and comm); here field n is f[n - 3].
        let num = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
        let ticks = 100.0; // USER_HZ on every Linux that edgesign builds for
        let page = 4096;
        let cpu = (num(14)? + num(15)?) as f64 / ticks;
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime ")?.trim().parse::<u64>().ok())?;
        let start = boot as f64 + num(22)? as f64 / ticks;
        Some((cpu, num(24)? * page, num(23)?, start))
    }

    fn open_fds() -> Option<u64> {
        Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as u64)
    }

    fn max_fds() -> Option<u64> {
        std::fs::read_to_string("/proc/self/limits")
            .ok()?
            .lines()
            .find(|l| l.starts_with("Max open files"))?
            .split_whitespace()
            .nth(3)?
            .parse()
            .ok()
    }
}

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::MetricType;
        use prometheus_client::metrics::counter::ConstCounter;
        use prometheus_client::metrics::gauge::ConstGauge;
        if let Some((cpu, rss, vsize, start)) = Self::stat() {
            let m = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time of this process, in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(m)?;
            let m = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory of this process, in bytes",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::try_from(rss).unwrap_or(i64::MAX)).encode(m)?;
            let m = encoder.encode_descriptor(
                "process_virtual_memory_bytes",
                "Virtual memory of this process, in bytes",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::try_from(vsize).unwrap_or(i64::MAX)).encode(m)?;
            let m = encoder.encode_descriptor(
                "process_start_time_seconds",
                "When this process started, in Unix seconds",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(start).encode(m)?;
        }
        if let Some(fds) = Self::open_fds() {
            let m = encoder.encode_descriptor(
                "process_open_fds",
                "File descriptors this process holds open",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::try_from(fds).unwrap_or(i64::MAX)).encode(m)?;
        }
        if let Some(max) = Self::max_fds() {
            let m = encoder.encode_descriptor(
                "process_max_fds",
                "The limit on open file descriptors",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::try_from(max).unwrap_or(i64::MAX)).encode(m)?;
        }
        Ok(())
    }
}

/// One thread's handles to the request metrics of one `{route, status}` of one [`Metrics`].
struct RequestHandles {
    metrics: u64,
    route: &'static str,
    status: u16,
    requests: Counter,
    seconds: Histogram,
    bytes: Counter,
}

/// Label pairs a thread keeps handles for (routes × statuses seen; cleared when exceeded).
const MAX_HANDLES: usize = 128;

thread_local! {
    static HANDLES: std::cell::RefCell<Vec<RequestHandles>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Tells [`Metrics`] instances apart in the per-thread handles.
static METRICS_IDS: AtomicU64 = AtomicU64::new(1);

/// Every metric edgesign exports.
pub struct Metrics {
    id: u64,
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    request_seconds: HistogramFamily<RouteLabel>,
    response_bytes: Family<RouteLabel, Counter>,
    cache_hits: Counter,
    cache_misses: Counter,
    cache_entries: Gauge,
    signing_ops: Family<SchemeLabel, Counter>,
    signing_seconds: HistogramFamily<SchemeLabel>,
    origin_seconds: HistogramFamily<OriginLabel>,
    origin_errors: Family<OriginError, Counter>,
    open_connections: Family<ListenerLabel, Gauge>,
    connections: Family<ListenerLabel, Counter>,
    reloads: Family<ResultLabel, Counter>,
    ready: Gauge,
    build_info: Family<BuildLabel, Gauge>,
    config_hash: Gauge,
    credentials_expiry: Family<OriginLabel, Gauge>,
    verdicts: Family<VerdictLabel, Counter>,
    fleet_up: Gauge,
    fleet_errors: Family<OpLabel, Counter>,
    audit_lines: Family<ResultLabel, Counter>,
}

/// `{op}`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabel {
    op: &'static str,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered under `edgesign_`.
    pub fn new() -> Self {
        let mut root = Registry::default();
        root.register_collector(Box::new(ProcessCollector));
        let registry = root.sub_registry_with_prefix("edgesign");
        let m = Metrics {
            id: METRICS_IDS.fetch_add(1, Ordering::Relaxed),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            response_bytes: Family::default(),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            cache_entries: Gauge::default(),
            signing_ops: Family::default(),
            signing_seconds: Family::new_with_constructor(latency_histogram),
            origin_seconds: Family::new_with_constructor(latency_histogram),
            origin_errors: Family::default(),
            open_connections: Family::default(),
            connections: Family::default(),
            reloads: Family::default(),
            ready: Gauge::default(),
            build_info: Family::default(),
            config_hash: Gauge::default(),
            credentials_expiry: Family::default(),
            verdicts: Family::default(),
            fleet_up: Gauge::default(),
            fleet_errors: Family::default(),
            audit_lines: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests answered, by route kind and status",
            m.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from request head to the last body byte, by route kind",
            m.request_seconds.clone(),
        );
        registry.register(
            "response_bytes",
            "Response body bytes sent, by route kind",
            m.response_bytes.clone(),
        );
        registry.register(
            "cache_hits",
            "Signature cache lookups answered without signing",
            m.cache_hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Signature cache lookups that minted",
            m.cache_misses.clone(),
        );
        registry.register(
            "cache_entries",
            "Signed URLs held in the cache",
            m.cache_entries.clone(),
        );
        registry.register(
            "signing_operations",
            "Signatures computed, by scheme",
            m.signing_ops.clone(),
        );
        registry.register(
            "signing_duration_seconds",
            "Time to compute one signature, by scheme",
            m.signing_seconds.clone(),
        );
        registry.register(
            "origin_response_duration_seconds",
            "Time until an origin's response head arrives, by origin",
            m.origin_seconds.clone(),
        );
        registry.register(
            "origin_errors",
            "Origin failures by origin and kind (connect, timeout, status, body)",
            m.origin_errors.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections open, by listener",
            m.open_connections.clone(),
        );
        registry.register(
            "connections",
            "Client connections accepted, by listener",
            m.connections.clone(),
        );
        registry.register(
            "config_reloads",
            "SIGHUP reloads by result (ok, error)",
            m.reloads.clone(),
        );
        registry.register(
            "ready",
            "1 while /readyz answers 200, 0 while draining",
            m.ready.clone(),
        );
        registry.register(
            "build_info",
            "Always 1; the labels say which build runs",
            m.build_info.clone(),
        );
        registry.register(
            "config_hash",
            "A 48-bit hash of the effective config (secrets excluded): one value across a fleet means one config",
            m.config_hash.clone(),
        );
        registry.register(
            "credentials_expiry_seconds",
            "Seconds until the signing credentials of an origin expire (origins whose credentials expire; 0 while provided credentials have not come)",
            m.credentials_expiry.clone(),
        );
        registry.register(
            "signed_url_verdicts",
            "Signed URLs clients brought, by verdict: rescued (expired, re-signed), forged, expired_refused",
            m.verdicts.clone(),
        );
        registry.register(
            "fleet_up",
            "1 while Redis answers ([fleet]); 0 while it does not (or without [fleet])",
            m.fleet_up.clone(),
        );
        registry.register(
            "fleet_errors",
            "Failed Redis operations by kind (connect, sync, subscribe, parse: a stored revocation that cannot be read, rate_limit: the fleet rate limit script got no answer and on_redis_error applied)",
            m.fleet_errors.clone(),
        );
        for op in ["connect", "sync", "subscribe", "parse", "rate_limit"] {
            let _ = m.fleet_errors.get_or_create(&OpLabel { op });
        }
        registry.register(
            "audit_lines",
            "Audit log lines by result: written, dropped (the writer's queue was full: the disk is slower than the traffic), failed (the write failed)",
            m.audit_lines.clone(),
        );
        for result in ["written", "dropped", "failed"] {
            let _ = m.audit_lines.get_or_create(&ResultLabel { result });
        }
        m.build_info
            .get_or_create(&BuildLabel {
                version: env!("CARGO_PKG_VERSION"),
                commit: env!("EDGESIGN_COMMIT"),
            })
            .set(1);
        for v in UrlVerdict::ALL {
            let _ = m
                .verdicts
                .get_or_create(&VerdictLabel { verdict: v.label() });
        }
        for result in ["ok", "error"] {
            let _ = m.reloads.get_or_create(&ResultLabel { result });
        }
        for route in ROUTE_KINDS {
            for status in PRIMED_STATUSES {
                let _ = m.requests.get_or_create(&RouteStatus { route, status });
            }
        }
        Metrics {
            registry: root,
            ..m
        }
    }

    /// Exports at 0 the series a config will produce (its origins' errors and signing
    /// schemes, its listeners), so that alerts fire on the first event; sets the config hash.
    pub fn prime(
        &self,
        origins: &[(&str, &'static str)],
        listeners: &[&'static str],
        config_hash: u64,
    ) {
        for (origin, scheme) in origins {
            for kind in ORIGIN_ERROR_KINDS {
                let _ = self.origin_errors.get_or_create(&OriginError {
                    origin: (*origin).to_owned(),
                    kind,
                });
            }
            let _ = self.signing_ops.get_or_create(&SchemeLabel { scheme });
        }
        for listener in listeners {
            let _ = self.connections.get_or_create(&ListenerLabel { listener });
            let _ = self
                .open_connections
                .get_or_create(&ListenerLabel { listener });
        }
        self.config_hash
            .set(i64::try_from(config_hash & 0xffff_ffff_ffff).unwrap_or(0));
    }

    /// Whether Redis answers (`[fleet]`).
    pub fn set_fleet_up(&self, up: bool) {
        self.fleet_up.set(i64::from(up));
    }

    /// Counts `n` audit lines `written`, `dropped` or `failed`.
    pub fn audit_lines(&self, result: &'static str, n: u64) {
        self.audit_lines
            .get_or_create(&ResultLabel { result })
            .inc_by(n);
    }

    /// Counts a failed Redis operation.
    pub fn fleet_error(&self, op: &'static str) {
        self.fleet_errors.get_or_create(&OpLabel { op }).inc();
    }

    /// Counts a verdict on a signed URL a client brought.
    pub fn url_verdict(&self, verdict: UrlVerdict) {
        self.verdicts
            .get_or_create(&VerdictLabel {
                verdict: verdict.label(),
            })
            .inc();
    }

    /// Seconds until `origin`'s credentials expire (negative once they have).
    pub fn set_credentials_expiry(&self, origin: &str, seconds: i64) {
        self.credentials_expiry
            .get_or_create(&OriginLabel {
                origin: origin.to_owned(),
            })
            .set(seconds);
    }

    /// Counts one answered request.
    pub fn request(&self, route: &'static str, status: u16, bytes: u64, took: Duration) {
        // The families' handles for this label pair, kept per thread: a request then takes
        // no lock shared with the other workers and hashes no labels.
        HANDLES.with_borrow_mut(|handles| {
            let at = match handles
                .iter()
                .position(|h| h.metrics == self.id && h.status == status && h.route == route)
            {
                Some(at) => at,
                None => {
                    if handles.len() >= MAX_HANDLES {
                        handles.clear();
                    }
                    let label = RouteLabel { route };
                    handles.push(RequestHandles {
                        metrics: self.id,
                        route,
                        status,
                        requests: self
                            .requests
                            .get_or_create(&RouteStatus { route, status })
                            .clone(),
                        seconds: self.request_seconds.get_or_create(&label).clone(),
                        bytes: self.response_bytes.get_or_create(&label).clone(),
                    });
                    handles.len() - 1
                }
            };
            let h = &handles[at];
            h.requests.inc();
            h.seconds.observe(took.as_secs_f64());
            h.bytes.inc_by(bytes);
        });
    }

    /// Counts one cache lookup.
    pub fn cache_lookup(&self, hit: bool) {
        if hit {
            self.cache_hits.inc();
        } else {
            self.cache_misses.inc();
        }
    }

    /// Lookups answered from the cache, since the process started.
    pub fn cache_hits(&self) -> u64 {
        self.cache_hits.get()
    }

    /// Lookups that minted, since the process started.
    pub fn cache_misses(&self) -> u64 {
        self.cache_misses.get()
    }

    /// Runs one signature computation and records it under `scheme`.
    pub fn time_signing<T>(&self, scheme: &'static str, sign: impl FnOnce() -> T) -> T {
        let start = crate::clock::instant();
        let out = sign();
        self.signed(scheme, start.elapsed());
        out
    }

    /// Records one signature computation under `scheme` that took `took`.
    pub fn signed(&self, scheme: &'static str, took: Duration) {
        let label = SchemeLabel { scheme };
        self.signing_seconds
            .get_or_create(&label)
            .observe(took.as_secs_f64());
        self.signing_ops.get_or_create(&label).inc();
    }

    /// Records how long an origin took to answer.
    pub fn origin_answered(&self, origin: &str, took: Duration) {
        self.origin_seconds
            .get_or_create(&OriginLabel {
                origin: origin.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// Counts an origin failure: `connect`, `timeout`, `status` or `body`.
    pub fn origin_error(&self, origin: &str, kind: &'static str) {
        self.origin_errors
            .get_or_create(&OriginError {
                origin: origin.to_owned(),
                kind,
            })
            .inc();
    }

    /// A connection opened on `listener`; the guard closes it in the gauge when dropped.
    pub fn connection(self: &std::sync::Arc<Self>, listener: &'static str) -> ConnectionGuard {
        let label = ListenerLabel { listener };
        self.connections.get_or_create(&label).inc();
        self.open_connections.get_or_create(&label).inc();
        ConnectionGuard {
            metrics: self.clone(),
            listener,
        }
    }

    /// Counts a reload attempt.
    pub fn reload(&self, ok: bool) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    /// Sets the readiness gauge.
    pub fn set_ready(&self, ready: bool) {
        self.ready.set(i64::from(ready));
    }

    /// The Prometheus text exposition, with the cache size as of now.
    pub fn render(&self, cache_entries: u64) -> String {
        self.cache_entries
            .set(i64::try_from(cache_entries).unwrap_or(i64::MAX));
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Keeps a connection counted as open.
#[derive(Debug)]
pub struct ConnectionGuard {
    metrics: std::sync::Arc<Metrics>,
    listener: &'static str,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.metrics
            .open_connections
            .get_or_create(&ListenerLabel {
                listener: self.listener,
            })
            .dec();
    }
}
