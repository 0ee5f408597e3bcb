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
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
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

fn latency_histogram() -> Histogram {
    // 10 µs .. ~42 s: a cache hit, an RSA signature and a slow origin all land in range.
    Histogram::new(exponential_buckets(0.000_01, 4.0, 12))
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
        let mut registry = Registry::with_prefix("edgesign");
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
        Metrics { registry, ..m }
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
