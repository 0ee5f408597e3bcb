//! Listeners and connections: plain HTTP (HTTP/1.1 and h2c prior knowledge) and TLS
//! (HTTP/1.1 and HTTP/2 by ALPN); connection limits and timeouts; the access log; reload
//! and graceful drain.
//!
//! The TLS config is built from the certificate and key files *before* any port is bound
//! ([`crate::tls::server_config`]), so a bad certificate never leaves a half-started proxy.
//!
//! Every connection holds a slot of `server.max_connections`; when none is free the accept
//! loop waits and new clients queue in the kernel's backlog. Each connection has a watchdog:
//! a new connection must send a whole request head within `server.header_read_timeout`, and
//! so must an HTTP/1.1 keep-alive client once the first bytes of its next head arrive (a
//! slowloris is cut off either way; the signing APIs bound their bodies by the same
//! timeout); a connection with nothing in flight closes after
//! `server.idle_timeout`, whether that is shorter or longer than the head timeout.
//!
//! A response whose client takes no bytes for `server.send_timeout` (it stopped reading, or
//! an HTTP/2 client holds its flow-control window shut) ends its connection: an HTTP/1.1
//! connection is cut; an HTTP/2 one gets GOAWAY, its other streams may finish, and it is cut
//! `header_read_timeout` later. Progress is judged per response (per stream), by whether
//! the connection keeps taking the body's bytes, so a slow origin is not the client's fault.
//!
//! Beyond `max_connections`, [`OPS_SLOTS`] more connections are accepted so that `/healthz`,
//! `/readyz` and `/metrics` answer at once when every slot is held; any other request on such
//! a connection waits for a slot, as it would have waited in the backlog.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body::{Body as _, Frame, SizeHint};

use futures_util::task::AtomicWaker;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::config::Config;
use crate::metrics::ConnectionGuard;
use crate::notes::{self, RequestIds};
use crate::ops;
use crate::respond::{self, Body, BoxError, Style};

/// Connections accepted beyond `server.max_connections` so that health checks and metrics
/// still answer when every slot is held (other requests on them wait for a slot).
pub const OPS_SLOTS: usize = 16;

/// Streams one HTTP/2 connection may have open at once (hyper's default is 200): each can
/// hold an origin fetch or an open file.
const H2_MAX_STREAMS: u32 = 100;

/// HTTP/2 keep-alive pings: how often, and how long the answer may take (dead peers).
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);

/// The bound sockets, before serving.
#[derive(Debug)]
pub struct Listeners {
    /// Plain HTTP.
    pub http: std::net::TcpListener,
    /// TLS, with its config.
    pub https: Option<(std::net::TcpListener, Arc<rustls::ServerConfig>)>,
}

impl Listeners {
    /// Binds `server.listen` (and `server.tls_listen` with `tls`).
    pub fn bind(config: &Config, tls: Option<Arc<rustls::ServerConfig>>) -> std::io::Result<Self> {
        let http = std::net::TcpListener::bind(config.server.listen)?;
        let https = match (&config.server.tls, tls) {
            (Some(t), Some(cfg)) => Some((std::net::TcpListener::bind(t.listen)?, cfg)),
            _ => None,
        };
        Ok(Listeners { http, https })
    }
}

/// What every connection shares: the current service (swapped whole on reload), the TLS
/// config, the drain flag and the connection slots.
#[derive(Debug)]
struct Shared {
    app: ArcSwap<App>,
    tls: ArcSwapOption<rustls::ServerConfig>,
    draining: AtomicBool,
    ids: RequestIds,
    slots: Arc<Semaphore>,
    /// Connections beyond `slots`, for the ops endpoints.
    ops_slots: Arc<Semaphore>,
    /// The slot count `slots` was last sized for.
    max_connections: AtomicUsize,
}

/// A serving proxy.
#[derive(Debug)]
pub struct Running {
    /// Where plain HTTP is served.
    pub http_addr: SocketAddr,
    /// Where TLS is served.
    pub https_addr: Option<SocketAddr>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tracker: TaskTracker,
}

impl Running {
    /// The service now answering (config, cache, counters).
    pub fn app(&self) -> Arc<App> {
        self.shared.app.load_full()
    }

    /// Swaps in a new config: new requests see it at once; requests in flight finish on the
    /// old one and no connection is dropped. Refused, with the old config kept, when the
    /// listeners would have to move or the new certificate cannot be loaded. Errors name the
    /// config key.
    pub fn reload(&self, config: Config) -> Result<(), String> {
        let result = self.try_reload(config);
        self.app().metrics.reload(result.is_ok());
        result
    }

    /// [`Running::reload`] from the config file at `path` (what `SIGHUP` does).
    pub fn reload_file(&self, path: &std::path::Path) -> Result<(), String> {
        match Config::load(path) {
            Ok(config) => self.reload(config),
            Err(e) => {
                self.app().metrics.reload(false);
                Err(e.to_string())
            }
        }
    }

    fn try_reload(&self, config: Config) -> Result<(), String> {
        let old = self.app();
        let (was, now) = (&old.config.server, &config.server);
        if was.listen != now.listen {
            return Err(format!(
                "server.listen: cannot move from {} to {} by reload; restart to move it",
                was.listen, now.listen
            ));
        }
        if was.tls.as_ref().map(|t| t.listen) != now.tls.as_ref().map(|t| t.listen) {
            return Err(
                "server.tls_listen: cannot be added, removed or moved by reload; restart to change it"
                    .to_owned(),
            );
        }
        if was.workers != now.workers {
            return Err(format!(
                "server.workers: cannot change from {} to {} by reload; restart to change it",
                was.workers, now.workers
            ));
        }
        let tls = now
            .tls
            .as_ref()
            .map(crate::tls::server_config)
            .transpose()?;
        let max_connections = now.max_connections;
        self.shared.app.store(old.reloaded(config)?);
        self.shared.tls.store(tls);
        resize(&self.shared, max_connections);
        Ok(())
    }

    /// Drains and stops: `/readyz` answers 503 (and HTTP/1.1 responses say
    /// `Connection: close`) for `server.drain_delay` while connections are still accepted;
    /// then the listeners close, every connection is asked to finish (HTTP/2 GOAWAY,
    /// HTTP/1.1 close after the current response), and in-flight requests get up to
    /// `server.shutdown_grace`. Returns whether they all finished in time.
    pub async fn shutdown(self) -> bool {
        let server = self.app().config.server.clone();
        self.shared.draining.store(true, Ordering::SeqCst);
        self.app().metrics.set_ready(false);
        tokio::time::sleep(server.drain_delay).await;
        let _ = self.stop.send(true);
        self.tracker.close();
        tokio::time::timeout(server.shutdown_grace, self.tracker.wait())
            .await
            .is_ok()
    }
}

/// Grows or shrinks the connection slots to `max` (shrinking takes slots as they free up).
fn resize(shared: &Arc<Shared>, max: usize) {
    let was = shared.max_connections.swap(max, Ordering::SeqCst);
    if max > was {
        shared.slots.add_permits(max - was);
    } else if max < was {
        let slots = shared.slots.clone();
        tokio::spawn(async move {
            if let Ok(p) = slots.acquire_many_owned((was - max) as u32).await {
                p.forget();
            }
        });
    }
}

/// Starts serving on bound listeners, on the current runtime.
pub fn serve(app: Arc<App>, listeners: Listeners) -> std::io::Result<Running> {
    serve_on(app, listeners, &tokio::runtime::Handle::current())
}

/// Starts serving on bound listeners on `runtime`: an accept loop per listener, and a task
/// per connection.
pub fn serve_on(
    app: Arc<App>,
    listeners: Listeners,
    runtime: &tokio::runtime::Handle,
) -> std::io::Result<Running> {
    let (stop, stop_rx) = watch::channel(false);
    let tracker = TaskTracker::new();
    let max_connections = app.config.server.max_connections;
    app.metrics.set_ready(true);
    let shared = Arc::new(Shared {
        app: ArcSwap::new(app),
        tls: ArcSwapOption::new(listeners.https.as_ref().map(|(_, cfg)| cfg.clone())),
        draining: AtomicBool::new(false),
        ids: RequestIds::new(),
        slots: Arc::new(Semaphore::new(max_connections)),
        ops_slots: Arc::new(Semaphore::new(OPS_SLOTS)),
        max_connections: AtomicUsize::new(max_connections),
    });
    let mut bound = vec![(listeners.http, false)];
    bound.extend(listeners.https.map(|(l, _)| (l, true)));
    let mut addrs = Vec::new();
    for (listener, tls) in bound {
        listener.set_nonblocking(true)?;
        addrs.push(listener.local_addr()?);
        let (shared, stop_rx, tracker2) = (shared.clone(), stop_rx.clone(), tracker.clone());
        runtime.spawn(tracker.track_future(async move {
            match TcpListener::from_std(listener) {
                Ok(l) => accept_loop(l, tls, shared, stop_rx, tracker2).await,
                Err(e) => tracing::error!(error = %e, "cannot register a listener"),
            }
        }));
    }
    Ok(Running {
        http_addr: addrs[0],
        https_addr: addrs.get(1).copied(),
        shared,
        stop,
        tracker,
    })
}

async fn accept_loop(
    listener: TcpListener,
    tls: bool,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    tracker: TaskTracker,
) {
    let name = if tls { "https" } else { "http" };
    loop {
        // A slot first: at the limit, clients wait in the backlog instead of being served
        // by a proxy that has no room for them.
        // An ops slot only when no slot is free: its connection answers the ops endpoints at
        // once and takes a slot for anything else.
        let slot = tokio::select! {
            biased;
            s = shared.slots.clone().acquire_owned() => match s {
                Ok(s) => Slot::full(s),
                Err(_) => return,
            },
            s = shared.ops_slots.clone().acquire_owned() => match s {
                Ok(s) => Slot::ops(s),
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let (sock, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let _ = sock.set_nodelay(true);
        let guard = shared.app.load().metrics.connection(name);
        let (shared, stop) = (shared.clone(), stop.clone());
        tokio::spawn(tracker.track_future(async move {
            let limits = Limits::of(&shared.app.load().config);
            if !tls {
                let Some(proto) = sniff(&sock, limits.header_read).await else {
                    return;
                };
                return serve_connection(sock, proto, peer, shared, stop, limits, guard, slot)
                    .await;
            }
            let Some(cfg) = shared.tls.load_full() else {
                return;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
            match tokio::time::timeout(limits.header_read, acceptor.accept(sock)).await {
                Ok(Ok(stream)) => {
                    let proto = match stream.get_ref().1.alpn_protocol() {
                        Some(b"h2") => Proto::Http2,
                        _ => Proto::Http1,
                    };
                    serve_connection(stream, proto, peer, shared, stop, limits, guard, slot).await
                }
                _ => tracing::debug!(%peer, "TLS handshake failed or timed out"),
            }
        }));
    }
}

/// A connection's limits, fixed when it opens (a reload applies to new connections).
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_read: Duration,
    idle: Duration,
    send: Duration,
    max_header: usize,
}

impl Limits {
    fn of(config: &Config) -> Self {
        Limits {
            header_read: config.server.header_read_timeout,
            idle: config.server.idle_timeout,
            send: config.server.send_timeout,
            max_header: config.server.max_header_size,
        }
    }
}

/// What a connection is doing, for its deadlines; shared by the connection, its requests and
/// its watchdog.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Nanoseconds after `opened` when the last request finished.
    last_done_ns: AtomicU64,
    /// 1 + nanoseconds after `opened` when the bytes of a new HTTP/1.1 request head began to
    /// arrive on an idle connection; 0 while none is arriving.
    head_since_ns: AtomicU64,
    /// What the watchdog asks of the connection: [`KEEP`], [`CLOSE`] or [`CUT`].
    verdict: AtomicU8,
    /// The connection's task, woken when the verdict changes.
    waker: AtomicWaker,
    /// Responses whose bodies are being sent.
    sends: std::sync::Mutex<Vec<Arc<Sending>>>,
    /// 1 + nanoseconds after `opened` since when the socket has not taken a write (HTTP/1.1:
    /// it also times the last bytes of a response, buffered after its body ended); 0 while
    /// writes go through.
    write_blocked_ns: AtomicU64,
}

/// One response body being sent: whether it waits for the client to take what it was
/// handed, and since when.
#[derive(Debug)]
struct Sending {
    /// When the connection opened.
    opened: Instant,
    /// 1 + nanoseconds after the connection opened when the body last handed a frame to
    /// the connection and has not been asked for the next one since; 0 while it is not
    /// waiting on the client.
    handed_ns: AtomicU64,
}

impl Sending {
    /// The body handed a frame to the connection just now.
    fn handed(&self) {
        let ns = crate::clock::instant()
            .saturating_duration_since(self.opened)
            .as_nanos();
        self.handed_ns.store(
            u64::try_from(ns).unwrap_or(u64::MAX - 1) + 1,
            Ordering::Relaxed,
        );
    }
}

/// A connection's claim on a slot: one of `server.max_connections`, or an ops slot, which
/// it trades for a full one before serving anything but the ops endpoints.
#[derive(Debug)]
struct Slot {
    full: std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
    has_full: AtomicBool,
    ops: std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
}

impl Slot {
    fn full(permit: tokio::sync::OwnedSemaphorePermit) -> Arc<Slot> {
        Arc::new(Slot {
            full: std::sync::Mutex::new(Some(permit)),
            has_full: AtomicBool::new(true),
            ops: std::sync::Mutex::new(None),
        })
    }

    fn ops(permit: tokio::sync::OwnedSemaphorePermit) -> Arc<Slot> {
        Arc::new(Slot {
            full: std::sync::Mutex::new(None),
            has_full: AtomicBool::new(false),
            ops: std::sync::Mutex::new(Some(permit)),
        })
    }

    /// Waits, at most `within`, for a full slot unless the connection holds one; the ops
    /// slot is then freed. `false`: none came free in time.
    async fn take_full(&self, slots: &Arc<Semaphore>, within: Duration) -> bool {
        if self.has_full.load(Ordering::Acquire) {
            return true;
        }
        let Ok(Ok(permit)) = tokio::time::timeout(within, slots.clone().acquire_owned()).await
        else {
            return false;
        };
        let mut full = self.full.lock().unwrap_or_else(PoisonError::into_inner);
        if full.is_none() {
            *full = Some(permit);
            self.has_full.store(true, Ordering::Release);
            self.ops
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
        }
        true
    }
}

/// The watchdog's verdicts: carry on; finish what is in flight and close; drop at once.
const KEEP: u8 = 0;
const CLOSE: u8 = 1;
const CUT: u8 = 2;

impl Activity {
    fn new() -> Self {
        Activity {
            opened: crate::clock::instant(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_done_ns: AtomicU64::new(0),
            head_since_ns: AtomicU64::new(0),
            verdict: AtomicU8::new(KEEP),
            waker: AtomicWaker::new(),
            sends: std::sync::Mutex::new(Vec::new()),
            write_blocked_ns: AtomicU64::new(0),
        }
    }

    /// Starts watching a response body's progress.
    fn sending(&self) -> Arc<Sending> {
        let sending = Arc::new(Sending {
            opened: self.opened,
            handed_ns: AtomicU64::new(0),
        });
        // Handed to the connection now: it must start taking the body within send_timeout.
        sending.handed();
        self.sends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sending.clone());
        sending
    }

    /// Stops watching a response body.
    fn sent(&self, sending: &Arc<Sending>) {
        self.sends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|s| !Arc::ptr_eq(s, sending));
    }

    /// When the longest-waiting response runs out of `send_timeout`, if one is waiting: a
    /// body the connection stopped asking for, or (HTTP/1.1) bytes the socket stopped taking.
    fn send_deadline(&self, limits: Limits) -> Option<Instant> {
        let sends = self.sends.lock().unwrap_or_else(PoisonError::into_inner);
        let blocked = self.write_blocked_ns.load(Ordering::SeqCst);
        let oldest = sends
            .iter()
            .map(|s| s.handed_ns.load(Ordering::SeqCst))
            .chain(std::iter::once(blocked))
            .filter(|ns| *ns != 0)
            .min()?;
        Some(self.opened + Duration::from_nanos(oldest - 1) + limits.send)
    }

    /// Whether every request in flight is a response its client has stopped taking for
    /// `send_timeout` (so closing the connection cuts nobody who is still reading).
    fn all_stalled(&self, now: Instant, limits: Limits) -> bool {
        let sends = self.sends.lock().unwrap_or_else(PoisonError::into_inner);
        let stalled = sends
            .iter()
            .map(|s| s.handed_ns.load(Ordering::SeqCst))
            .filter(|ns| {
                *ns != 0 && self.opened + Duration::from_nanos(ns - 1) + limits.send <= now
            })
            .count();
        stalled >= self.in_flight.load(Ordering::SeqCst)
    }

    /// A write to the socket could not proceed (`blocked`) or went through.
    fn write_blocked(&self, blocked: bool) {
        if !blocked {
            if self.write_blocked_ns.load(Ordering::Relaxed) != 0 {
                self.write_blocked_ns.store(0, Ordering::SeqCst);
            }
        } else if self.write_blocked_ns.load(Ordering::Relaxed) == 0 {
            let at = self.since_opened(crate::clock::instant());
            self.write_blocked_ns.store(at + 1, Ordering::SeqCst);
        }
    }

    fn since_opened(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.opened).as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// A request head is complete and the request starts.
    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.head_since_ns.store(0, Ordering::SeqCst);
    }

    /// A request finished at `now`.
    fn end(&self, now: Instant) {
        self.last_done_ns
            .store(self.since_opened(now), Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Bytes arrived. On an idle HTTP/1.1 connection they start a request head, which must
    /// then be complete within `header_read_timeout`.
    fn bytes_arrived(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since_ns.load(Ordering::Relaxed) == 0
        {
            let at = self.since_opened(crate::clock::instant());
            self.head_since_ns.store(at + 1, Ordering::SeqCst);
        }
    }

    /// When the connection expires if nothing happens (`None`: a request is in flight), and
    /// whether it expires waiting for a request head (as opposed to merely idle).
    fn expires_at(&self, limits: Limits) -> Option<(Instant, bool)> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        if self.requests.load(Ordering::SeqCst) == 0 {
            return Some((self.opened + limits.header_read, true));
        }
        let head = self.head_since_ns.load(Ordering::SeqCst);
        if head != 0 {
            return Some((
                self.opened + Duration::from_nanos(head - 1) + limits.header_read,
                true,
            ));
        }
        let done = Duration::from_nanos(self.last_done_ns.load(Ordering::SeqCst));
        Some((self.opened + done + limits.idle, false))
    }

    /// The watchdog's verdict, which wakes the connection.
    fn rule(&self, verdict: u8) {
        self.verdict.store(verdict, Ordering::SeqCst);
        self.waker.wake();
    }
}

/// The connection's transport, which tells its [`Activity`] when bytes arrive (HTTP/1.1).
///
/// It also gives an oversized request head the JSON answer every other error has: hyper
/// answers a head larger than its buffer (`server.max_header_size`) itself, with a bare
/// `431` and no body, and offers no hook. That answer is the only response hyper writes
/// while no request of the service is in flight, so it is recognised by its status line
/// there and replaced, whole, by edgesign's `431 header_too_large`.
struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
    max_header: usize,
    /// edgesign's 431, still to be written, once hyper's has been seen.
    replacement: Option<Bytes>,
}

impl<T> Watched<T> {
    fn new(io: T, activity: Arc<Activity>, max_header: usize) -> Self {
        Watched {
            io,
            activity,
            max_header,
            replacement: None,
        }
    }

    /// Whether `first` starts hyper's own 431, written outside any request of the service.
    fn is_hypers_431(&self, first: &[u8]) -> bool {
        (first.starts_with(b"HTTP/1.1 431 ") || first.starts_with(b"HTTP/1.0 431 "))
            && self.activity.in_flight.load(Ordering::SeqCst) == 0
    }

    fn start_replacing(&mut self) {
        self.replacement = Some(respond::error_http1(&crate::Error::HeaderTooLarge(
            self.max_header,
        )));
    }
}

impl<T: AsyncWrite + Unpin> Watched<T> {
    /// Writes what is left of the replacement; `Ready(Ok)` once it is all out.
    fn drain_replacement(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some(rest) = self.replacement.as_mut().filter(|r| !r.is_empty()) {
            match Pin::new(&mut self.io).poll_write(cx, rest) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    let _ = rest.split_to(n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Hyper's bytes of its own 431 (`len` of them) are taken as written, and edgesign's
    /// answer goes out instead.
    fn write_instead(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<std::io::Result<usize>> {
        match self.drain_replacement(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(len)),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.replacement.is_none() && self.is_hypers_431(buf) {
            self.start_replacing();
        }
        if self.replacement.is_some() {
            return self.write_instead(cx, buf.len());
        }
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        self.activity.write_blocked(polled.is_pending());
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.replacement.is_none() && bufs.first().is_some_and(|b| self.is_hypers_431(b)) {
            self.start_replacing();
        }
        if self.replacement.is_some() {
            let len = bufs.iter().map(|b| b.len()).sum();
            return self.write_instead(cx, len);
        }
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.activity.write_blocked(polled.is_pending());
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.replacement.is_some() {
            match self.drain_replacement(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.replacement.is_some() {
            match self.drain_replacement(cx) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
        }
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Http1,
    Http2,
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Tells h2c prior knowledge from HTTP/1.1 by peeking at the first bytes, without consuming
/// them. `None`: the client closed or sent nothing in time.
async fn sniff(sock: &tokio::net::TcpStream, within: Duration) -> Option<Proto> {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 24];
    loop {
        let n = tokio::time::timeout_at(deadline, sock.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Some(Proto::Http1);
        }
        if n == H2_PREFACE.len() {
            return Some(Proto::Http2);
        }
        // Part of the preface so far: wait for the rest (peek would not block).
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A served connection of either protocol, closable gracefully.
trait Served: Future<Output = Result<(), hyper::Error>> + Send {
    fn close_gracefully(self: Pin<&mut Self>);
}

impl<I, S> Served for hyper::server::conn::http1::Connection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = Accounted> + Send,
    S::Future: Send,
{
    fn close_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S> Served for hyper::server::conn::http2::Connection<I, S, TokioExecutor>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = Accounted> + Send,
    S::Future: Send + 'static,
{
    fn close_gracefully(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

#[allow(
    clippy::too_many_arguments,
    reason = "one call site per listener kind; all of them are the connection's own"
)]
async fn serve_connection<T>(
    io: T,
    proto: Proto,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    limits: Limits,
    guard: ConnectionGuard,
    slot: Arc<Slot>,
) where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let _guard = guard;
    let activity = Arc::new(Activity::new());
    let svc = {
        let (shared, activity) = (shared.clone(), activity.clone());
        service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let (shared, activity, slot) = (shared.clone(), activity.clone(), slot.clone());
            async move {
                Ok::<_, std::convert::Infallible>(answer(req, peer, &shared, activity, &slot).await)
            }
        })
    };
    // hyper's own builders, not hyper-util's auto one: its version detection wraps every
    // read of the connection, which cost a fifth of the redirect throughput (BENCHMARKS.md).
    // HTTP/1.1 request heads are timed by the watchdog, not by hyper: hyper would start its
    // head timer as soon as a keep-alive connection goes idle, closing it at
    // header_read_timeout instead of idle_timeout.
    let mut conn: Pin<Box<dyn Served>> = match proto {
        Proto::Http1 => Box::pin(
            hyper::server::conn::http1::Builder::new()
                .header_read_timeout(None)
                .max_buf_size(limits.max_header)
                .serve_connection(
                    TokioIo::new(Watched::new(io, activity.clone(), limits.max_header)),
                    svc,
                ),
        ),
        Proto::Http2 => Box::pin(
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_header_list_size(u32::try_from(limits.max_header).unwrap_or(u32::MAX))
                .max_concurrent_streams(H2_MAX_STREAMS)
                .keep_alive_interval(H2_PING_INTERVAL)
                .keep_alive_timeout(H2_PING_INTERVAL)
                .serve_connection(TokioIo::new(io), svc),
        ),
    };
    // The deadlines live in a task of their own, so serving a request polls nothing but the
    // connection and one atomic.
    let watchdog = tokio::spawn(watchdog(activity.clone(), limits, stop, peer, proto));
    let mut closing = false;
    let ended = std::future::poll_fn(|cx| {
        activity.waker.register(cx.waker());
        match activity.verdict.load(Ordering::SeqCst) {
            CUT => return Poll::Ready(Ok(())),
            CLOSE if !closing => {
                closing = true;
                conn.as_mut().close_gracefully();
            }
            _ => {}
        }
        conn.as_mut().poll(cx)
    })
    .await;
    watchdog.abort();
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// A connection's deadlines: a new connection must send a whole request head within
/// `header_read_timeout`, and so must an HTTP/1.1 client once it starts a new one; a
/// connection with nothing in flight closes after `idle_timeout`; a drain closes it
/// gracefully. Rules by [`Activity::rule`]; the connection aborts this task when it ends.
async fn watchdog(
    activity: Arc<Activity>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
    peer: SocketAddr,
    proto: Proto,
) {
    let mut stopping = *stop.borrow();
    if stopping {
        activity.rule(CLOSE);
    }
    // After an idle close, the connection gets this long to finish before it is cut.
    let mut hard_deadline: Option<Instant> = None;
    // Nothing wakes this task when a request starts or ends, so it looks again at least
    // this often: never later than a deadline that a request head starting now would set.
    let every = limits.idle.min(limits.header_read).min(limits.send);
    // HTTP/2 GOAWAY sent because a stream stalled: the connection is cut once nothing in
    // flight is still being taken by its client.
    let mut stalled_goaway = false;
    loop {
        let poll = crate::clock::instant() + every;
        let check = match (hard_deadline, activity.expires_at(limits)) {
            (Some(h), _) => h,
            (None, Some((t, _))) => t.min(poll),
            (None, None) => poll,
        };
        let check = match (
            hard_deadline,
            stalled_goaway,
            activity.send_deadline(limits),
        ) {
            (None, false, Some(send)) => send.min(check),
            _ => check,
        };
        tokio::select! {
            _ = stop.changed(), if !stopping => {
                stopping = true;
                activity.rule(CLOSE);
            }
            () = tokio::time::sleep_until(check.into()) => {
                let now = crate::clock::instant();
                if let Some(h) = hard_deadline {
                    if now < h {
                        continue;
                    }
                    tracing::debug!(%peer, "closed: did not finish after a close");
                    return activity.rule(CUT);
                }
                if stalled_goaway {
                    if activity.all_stalled(now, limits) {
                        tracing::info!(%peer, "closed: every stream left stalled past send_timeout");
                        return activity.rule(CUT);
                    }
                    continue;
                }
                if activity.send_deadline(limits).is_some_and(|d| now >= d) {
                    if proto == Proto::Http1 {
                        tracing::info!(%peer, "closed: the client took no bytes of a response within send_timeout");
                        return activity.rule(CUT);
                    }
                    // HTTP/2: GOAWAY, so no new stream starts here; streams still being read
                    // finish, and the connection is cut once only stalled ones are left.
                    tracing::info!(%peer, "GOAWAY: a stream's client took no bytes within send_timeout");
                    activity.rule(CLOSE);
                    stalled_goaway = true;
                    if activity.all_stalled(now, limits) {
                        return activity.rule(CUT);
                    }
                    continue;
                }
                let Some((expiry, head)) = activity.expires_at(limits) else { continue };
                if crate::clock::instant() < expiry {
                    continue;
                }
                if head {
                    // A request head that did not arrive in time: a slow or silent client.
                    tracing::debug!(%peer, "closed: no whole request head within header_read_timeout");
                    return activity.rule(CUT);
                }
                activity.rule(CLOSE);
                hard_deadline = Some(crate::clock::instant() + limits.header_read);
            }
        }
    }
}

/// One request: the ops endpoints, or the service; then the access log and metrics, which
/// are written when the response body ends (so they hold the bytes really sent).
async fn answer(
    req: http::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    shared: &Shared,
    activity: Arc<Activity>,
    slot: &Slot,
) -> Response<Accounted> {
    // Ends the request however it ends: with its response body, or dropped half-way (an
    // HTTP/2 client that resets the stream while the service is still working).
    let in_flight = InFlight::begin(activity.clone());
    let start = crate::clock::instant();
    let app = shared.app.load_full();
    let id = request_id(&req, peer, &app, &shared.ids);
    let draining = shared.draining.load(Ordering::SeqCst);
    let line = AccessLine {
        id,
        peer,
        // Kept only while the access log is on: a shared handle to the URI (only its path
        // is ever logged), which otherwise pins hyper's read buffer for nothing.
        target: tracing::enabled!(target: "edgesign::access", tracing::Level::INFO)
            .then(|| (req.method().clone(), req.uri().clone())),
        version: req.version(),
        route: "-",
        cache: "-",
    };
    let answered = async {
        match req.uri().path() {
            "/healthz" => {
                notes::note_route("healthz");
                ops::healthz()
            }
            "/readyz" => {
                notes::note_route("readyz");
                ops::readyz(draining)
            }
            "/metrics" => {
                notes::note_route("metrics");
                if metrics_allowed(&req, peer, &app) {
                    ops::metrics(&app.metrics, app.cache().entries_now())
                } else {
                    let denied = crate::Error::Forbidden("metrics are not served to this address");
                    respond::error(&denied, Style::Json)
                }
            }
            // On a connection beyond max_connections, anything but the ops endpoints waits
            // for a slot, as long as an idle connection would be kept, then hears 503.
            _ if !slot
                .take_full(&shared.slots, app.config.server.idle_timeout)
                .await =>
            {
                let full =
                    crate::Error::Unavailable("every connection slot is taken; retry shortly");
                let mut resp = respond::error(&full, Style::Json);
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                resp
            }
            _ => app.handle(req, peer).await,
        }
    };
    let (mut resp, noted) = notes::with_notes(line.id.clone(), answered).await;
    let (route, cache) = (noted.route(), noted.cache());
    resp.headers_mut()
        .insert(X_REQUEST_ID.clone(), line.id.clone());
    if draining && line.version < http::Version::HTTP_2 {
        // Draining: have clients (and load balancers) open their next request elsewhere.
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let status = resp.status().as_u16();
    let line = AccessLine {
        route,
        cache,
        ..line
    };
    // Bodies that have something to send are watched for send_timeout (a redirect has none).
    let sending = (!resp.body().is_end_stream()).then(|| activity.sending());
    resp.map(|body| Accounted {
        body,
        bytes: 0,
        complete: false,
        sending,
        done: Some(Done {
            line,
            status,
            start,
            app,
            in_flight,
        }),
    })
}

/// A request in flight on its connection, until [`InFlight::end`] or drop.
struct InFlight(Option<Arc<Activity>>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.begin();
        InFlight(Some(activity))
    }

    /// The request finished at `now`.
    fn end(mut self, now: Instant) {
        if let Some(activity) = self.0.take() {
            activity.end(now);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(activity) = self.0.take() {
            activity.end(crate::clock::instant());
        }
    }
}

/// Whether the client (through trusted proxies) is in `server.metrics_allow`.
fn metrics_allowed(
    req: &http::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    app: &App,
) -> bool {
    let server = &app.config.server;
    let client = crate::auth::client_ip(peer.ip(), req.headers(), &server.trusted_proxies);
    server.metrics_allow.iter().any(|n| n.contains(&client))
}

static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The request id: an `X-Request-Id` from a trusted proxy when it is sane, else a new one.
fn request_id(
    req: &http::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    app: &App,
    ids: &RequestIds,
) -> HeaderValue {
    let given = req.headers().get(&X_REQUEST_ID).filter(|v| {
        let v = v.as_bytes();
        (1..=64).contains(&v.len())
            && v.iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
            && app
                .config
                .server
                .trusted_proxies
                .iter()
                .any(|n| n.contains(&peer.ip().to_canonical()))
    });
    match given {
        Some(v) => v.clone(),
        None => HeaderValue::from_maybe_shared(Bytes::from(ids.next()))
            .unwrap_or(HeaderValue::from_static("-")),
    }
}

/// A path as the access log writes it: bytes outside printable ASCII percent-encoded, so
/// that no line carries a raw control, a line or paragraph separator (U+0085, U+2028,
/// U+2029, which some log readers and JSON-in-JavaScript consumers split lines on) or a
/// bidirectional override (U+202E) that makes a path read as another in a terminal.
fn log_safe(path: &str) -> std::borrow::Cow<'_, str> {
    if path.bytes().all(|b| b.is_ascii_graphic()) {
        return std::borrow::Cow::Borrowed(path);
    }
    let mut out = String::with_capacity(path.len() + 16);
    for b in path.bytes() {
        if b.is_ascii_graphic() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    std::borrow::Cow::Owned(out)
}

#[derive(Debug)]
struct AccessLine {
    id: HeaderValue,
    peer: SocketAddr,
    /// Method and URI, while the access log is on.
    target: Option<(http::Method, http::Uri)>,
    version: http::Version,
    route: &'static str,
    cache: &'static str,
}

/// Everything the end of a response reports to.
struct Done {
    line: AccessLine,
    status: u16,
    start: Instant,
    app: Arc<App>,
    in_flight: InFlight,
}

/// A response body that counts what it sends and, when it ends or is dropped (client gone),
/// writes the access-log line and the request metrics.
struct Accounted {
    body: Body,
    bytes: u64,
    complete: bool,
    /// Its progress, for send_timeout.
    sending: Option<Arc<Sending>>,
    done: Option<Done>,
}

impl http_body::Body for Accounted {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // Asked for more: the connection took what it was handed.
        if let Some(s) = &self.sending {
            s.handed_ns.store(0, Ordering::Relaxed);
        }
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                    if let Some(s) = &self.sending {
                        s.handed();
                    }
                }
                if self.body.is_end_stream() {
                    self.complete = true;
                }
            }
            Poll::Ready(None) => self.complete = true,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Accounted {
    fn drop(&mut self) {
        let Some(done) = self.done.take() else { return };
        if let (Some(sending), Some(activity)) = (&self.sending, &done.in_flight.0) {
            activity.sent(sending);
        }
        let complete = self.complete || self.body.is_end_stream();
        let now = crate::clock::instant();
        let took = now.saturating_duration_since(done.start);
        let l = &done.line;
        if let Some((method, uri)) = &l.target {
            tracing::info!(
                target: "edgesign::access",
                request_id = l.id.to_str().unwrap_or("-"),
                peer = %l.peer.ip(),
                method = %method,
                path = &*log_safe(uri.path()),
                version = ?l.version,
                route = l.route,
                status = done.status,
                bytes = self.bytes,
                duration_us = took.as_micros() as u64,
                cache = l.cache,
                complete,
            );
        }
        done.app
            .metrics
            .request(l.route, done.status, self.bytes, took);
        done.in_flight.end(now);
    }
}
