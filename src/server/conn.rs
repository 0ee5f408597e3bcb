//! One connection: its limits, what it is doing ([`Activity`]), the watchdog that enforces
//! the head, idle and send timeouts, the slot it holds, and the HTTP/1.1 transport that
//! sees its bytes (and answers an oversized head).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;

use futures_util::task::AtomicWaker;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Semaphore, watch};

use crate::config::Config;
use crate::respond::{self};

use super::request::{Accounted, answer};
use super::*;

/// A connection's limits, fixed when it opens (a reload applies to new connections).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) header_read: Duration,
    idle: Duration,
    send: Duration,
    max_header: usize,
}

impl Limits {
    pub(super) fn of(config: &Config) -> Self {
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
pub(super) struct Activity {
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
    /// The connection is handing its socket back from hyper to park (HTTP/1.1): the
    /// transport then flushes instead of shutting down.
    parking: AtomicBool,
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
pub(super) struct Sending {
    /// When the connection opened.
    opened: Instant,
    /// 1 + nanoseconds after the connection opened when the body last handed a frame to
    /// the connection and has not been asked for the next one since; 0 while it is not
    /// waiting on the client.
    pub(super) handed_ns: AtomicU64,
}

impl Sending {
    /// The body handed a frame to the connection just now.
    pub(super) fn handed(&self) {
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
pub(super) struct Slot {
    full: std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
    has_full: AtomicBool,
    ops: std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>,
}

impl Slot {
    pub(super) fn full(permit: tokio::sync::OwnedSemaphorePermit) -> Arc<Slot> {
        Arc::new(Slot {
            full: std::sync::Mutex::new(Some(permit)),
            has_full: AtomicBool::new(true),
            ops: std::sync::Mutex::new(None),
        })
    }

    pub(super) fn ops(permit: tokio::sync::OwnedSemaphorePermit) -> Arc<Slot> {
        Arc::new(Slot {
            full: std::sync::Mutex::new(None),
            has_full: AtomicBool::new(false),
            ops: std::sync::Mutex::new(Some(permit)),
        })
    }

    /// Waits, at most `within`, for a full slot unless the connection holds one; the ops
    /// slot is then freed. `false`: none came free in time.
    pub(super) async fn take_full(&self, slots: &Arc<Semaphore>, within: Duration) -> bool {
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

/// The watchdog's verdicts: carry on; finish what is in flight and close; drop at once;
/// idle for [`PARK_AFTER`], so park (HTTP/1.1).
pub(super) const KEEP: u8 = 0;
pub(super) const CLOSE: u8 = 1;
pub(super) const CUT: u8 = 2;
pub(super) const PARK: u8 = 3;

impl Activity {
    pub(super) fn new() -> Self {
        Activity {
            opened: crate::clock::instant(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_done_ns: AtomicU64::new(0),
            head_since_ns: AtomicU64::new(0),
            verdict: AtomicU8::new(KEEP),
            waker: AtomicWaker::new(),
            parking: AtomicBool::new(false),
            sends: std::sync::Mutex::new(Vec::new()),
            write_blocked_ns: AtomicU64::new(0),
        }
    }

    /// Starts watching a response body's progress.
    pub(super) fn sending(&self) -> Arc<Sending> {
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
    pub(super) fn sent(&self, sending: &Arc<Sending>) {
        self.sends
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|s| !Arc::ptr_eq(s, sending));
    }

    /// When the longest-waiting response runs out of `send_timeout`, if one is waiting: a
    /// body the connection stopped asking for, or (HTTP/1.1) bytes the socket stopped taking.
    pub(super) fn send_deadline(&self, limits: Limits) -> Option<Instant> {
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
    pub(super) fn all_stalled(&self, now: Instant, limits: Limits) -> bool {
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
    pub(super) fn write_blocked(&self, blocked: bool) {
        if !blocked {
            if self.write_blocked_ns.load(Ordering::Relaxed) != 0 {
                self.write_blocked_ns.store(0, Ordering::SeqCst);
            }
        } else if self.write_blocked_ns.load(Ordering::Relaxed) == 0 {
            let at = self.since_opened(crate::clock::instant());
            self.write_blocked_ns.store(at + 1, Ordering::SeqCst);
        }
    }

    pub(super) fn since_opened(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.opened).as_nanos()).unwrap_or(u64::MAX - 1)
    }

    /// A request head is complete and the request starts.
    pub(super) fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.head_since_ns.store(0, Ordering::SeqCst);
    }

    /// A request finished at `now`.
    pub(super) fn end(&self, now: Instant) {
        self.last_done_ns
            .store(self.since_opened(now), Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// Bytes arrived. On an idle HTTP/1.1 connection they start a request head, which must
    /// then be complete within `header_read_timeout`.
    pub(super) fn bytes_arrived(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since_ns.load(Ordering::Relaxed) == 0
        {
            let at = self.since_opened(crate::clock::instant());
            self.head_since_ns.store(at + 1, Ordering::SeqCst);
        }
    }

    /// When the connection expires if nothing happens (`None`: a request is in flight), and
    /// whether it expires waiting for a request head (as opposed to merely idle).
    pub(super) fn expires_at(&self, limits: Limits) -> Option<(Instant, bool)> {
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

    /// Whether the connection is idle and may be parked: it served a request, nothing is
    /// in flight, the socket took every byte written, and no new request head is arriving.
    pub(super) fn may_park(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
            && self.requests.load(Ordering::SeqCst) > 0
            && self.head_since_ns.load(Ordering::SeqCst) == 0
            && self.write_blocked_ns.load(Ordering::SeqCst) == 0
    }

    /// When an idle connection is to be parked, if it is idle and not parked or closing.
    pub(super) fn park_at(&self) -> Option<Instant> {
        if self.verdict.load(Ordering::SeqCst) != KEEP || !self.may_park() {
            return None;
        }
        let done = Duration::from_nanos(self.last_done_ns.load(Ordering::SeqCst));
        Some(self.opened + done + PARK_AFTER)
    }

    /// Rules [`PARK`] unless another verdict stands.
    pub(super) fn park(&self) {
        if self
            .verdict
            .compare_exchange(KEEP, PARK, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.waker.wake();
        }
    }

    /// The watchdog's verdict, which wakes the connection.
    pub(super) fn rule(&self, verdict: u8) {
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
pub(super) struct Watched<T> {
    io: T,
    activity: Arc<Activity>,
    max_header: usize,
    /// edgesign's 431, still to be written, once hyper's has been seen.
    replacement: Option<Bytes>,
    /// Bytes read while the connection was parked (or read ahead by the hyper connection
    /// before it), handed to the next reader before the socket's.
    prefix: Bytes,
}

impl<T> Watched<T> {
    pub(super) fn new(io: T, activity: Arc<Activity>, max_header: usize) -> Self {
        Watched {
            io,
            activity,
            max_header,
            replacement: None,
            prefix: Bytes::new(),
        }
    }

    /// Whether `first` starts hyper's own 431, written outside any request of the service.
    pub(super) fn is_hypers_431(&self, first: &[u8]) -> bool {
        (first.starts_with(b"HTTP/1.1 431 ") || first.starts_with(b"HTTP/1.0 431 "))
            && self.activity.in_flight.load(Ordering::SeqCst) == 0
    }

    pub(super) fn start_replacing(&mut self) {
        self.replacement = Some(respond::error_http1(&crate::Error::HeaderTooLarge(
            self.max_header,
        )));
    }
}

impl<T: AsyncWrite + Unpin> Watched<T> {
    /// Writes what is left of the replacement; `Ready(Ok)` once it is all out.
    pub(super) fn drain_replacement(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
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
    pub(super) fn write_instead(
        &mut self,
        cx: &mut Context<'_>,
        len: usize,
    ) -> Poll<std::io::Result<usize>> {
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
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
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
        if self.activity.parking.load(Ordering::SeqCst) {
            // Parking: hyper is done with the socket, which stays open.
            return Pin::new(&mut self.io).poll_flush(cx);
        }
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
pub(super) enum Proto {
    Http1,
    Http2,
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub(super) const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Tells h2c prior knowledge from HTTP/1.1 by peeking at the first bytes, without consuming
/// them. `None`: the client closed or sent nothing in time.
pub(super) async fn sniff(sock: &tokio::net::TcpStream, within: Duration) -> Option<Proto> {
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

/// What every request of one connection shares: one reference-counted handle per
/// connection, so a request clones nothing that other connections touch.
pub(super) struct ConnCx {
    pub(super) shared: Arc<Shared>,
    pub(super) activity: Arc<Activity>,
    pub(super) slot: Arc<Slot>,
    pub(super) peer: SocketAddr,
}

/// How long an HTTP/1.1 keep-alive connection stays idle before hyper hands its socket
/// back and the connection waits with nothing but the socket (see [`serve_http1`]).
pub(super) const PARK_AFTER: Duration = Duration::from_secs(1);

/// Serves one accepted connection over `io` (the socket, or its TLS stream) until it ends.
///
/// Called straight from the accepting task's future, not through a method of [`Accepted`]:
/// every `async fn` level keeps its own arguments for as long as the connection lives, a
/// parked one included.
pub(super) async fn serve_connection<T>(io: T, proto: Proto, accepted: Accepted)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Only what is not kept elsewhere becomes a local (see serve_http1). The limits are read
    // now (a reload applies to new connections) and kept in the watchdog only.
    let activity = Arc::new(Activity::new());
    // The deadlines live in a task of their own, so serving a request polls nothing but the
    // connection and one atomic.
    let mut watchdog = Watchdog {
        activity: activity.clone(),
        limits: accepted.limits(),
        stop: accepted.stop,
        peer: accepted.peer,
        proto,
        task: None,
    };
    let _guard = accepted.guard;
    let cx = Arc::new(ConnCx {
        shared: accepted.shared,
        activity: activity.clone(),
        slot: accepted.slot,
        peer: accepted.peer,
    });
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let cx = cx.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(req, &cx).await) }
    });
    watchdog.start();
    let ended = match proto {
        Proto::Http1 => serve_http1(io, &mut watchdog, svc).await,
        Proto::Http2 => {
            // Each stream is a task hyper spawns with the request's future in it; boxed, the
            // spawn moves a pointer instead of the future's kilobytes.
            let svc = service_fn(move |req| {
                use hyper::service::Service as _;
                Box::pin(svc.call(req))
            });
            // hyper's own builders, not hyper-util's auto one: its version detection wraps
            // every read of the connection, which cost a fifth of the redirect throughput.
            let mut conn = Box::pin(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .max_header_list_size(
                        u32::try_from(watchdog.limits.max_header).unwrap_or(u32::MAX),
                    )
                    .max_concurrent_streams(H2_MAX_STREAMS)
                    .keep_alive_interval(H2_PING_INTERVAL)
                    .keep_alive_timeout(H2_PING_INTERVAL)
                    .serve_connection(TokioIo::new(io), svc),
            );
            let mut closing = false;
            std::future::poll_fn(|cx| {
                activity.waker.register(cx.waker());
                match activity.verdict.load(Ordering::SeqCst) {
                    CUT => return Poll::Ready(Ok(())),
                    CLOSE if !closing => {
                        closing = true;
                        conn.as_mut().graceful_shutdown();
                    }
                    _ => {}
                }
                conn.as_mut().poll(cx)
            })
            .await
        }
    };
    drop(watchdog);
    if let Err(e) = ended {
        tracing::debug!(peer = %accepted.peer, error = %e, "connection ended with an error");
    }
}

/// Serves an HTTP/1.1 connection.
///
/// While requests come, hyper serves it. Once it has been idle for [`PARK_AFTER`] (the
/// watchdog rules [`PARK`]), hyper is asked to finish: it flushes what it wrote, hands back
/// the socket and any bytes it had read ahead, and is dropped with its read and write
/// buffers (16 KiB). The connection then waits holding only the socket until the client
/// sends again (a new hyper connection serves it, starting with those bytes), closes, or the
/// watchdog closes it. Nothing a client sees changes: hyper is only asked to finish while
/// no request is in flight, so no response gains a `Connection: close`.
///
/// HTTP/1.1 request heads are timed by the watchdog, not by hyper: hyper would start its
/// head timer as soon as a keep-alive connection goes idle, closing it at
/// `header_read_timeout` instead of `idle_timeout`. `half_close`: hyper otherwise reads
/// ahead as soon as it hands a request to the service, to notice a client that hangs up
/// mid-request, and that read takes a fresh 8 KiB buffer for every request while the
/// request still holds the last one. A client that vanishes is noticed when a write fails.
async fn serve_http1<T, S>(io: T, dog: &mut Watchdog, mut svc: S) -> Result<(), hyper::Error>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = Accounted> + Unpin,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Every local here that lives across an await is room in the connection's task for as
    // long as the connection lives, parked or not: the limits are read from `dog`, the
    // builder is made anew for each hyper connection, and hyper's parts are taken apart in
    // a block that ends before the wait.
    let activity = &dog.activity.clone();
    let mut io = Watched::new(io, activity.clone(), dog.limits.max_header);
    loop {
        // Boxed: the connection's task then holds hyper's state only while hyper serves.
        let mut conn = Box::new(
            hyper::server::conn::http1::Builder::new()
                .header_read_timeout(None)
                .half_close(true)
                .max_buf_size(dog.limits.max_header)
                .serve_connection(TokioIo::new(io), svc),
        );
        let mut closing = false;
        let ended = std::future::poll_fn(|cx| {
            activity.waker.register(cx.waker());
            match activity.verdict.load(Ordering::SeqCst) {
                CUT => return Poll::Ready(Ok(())),
                CLOSE if !closing => {
                    closing = true;
                    activity.parking.store(false, Ordering::SeqCst);
                    Pin::new(&mut *conn).graceful_shutdown();
                }
                PARK if !closing => {
                    if activity.may_park() {
                        closing = true;
                        activity.parking.store(true, Ordering::SeqCst);
                        Pin::new(&mut *conn).graceful_shutdown();
                    } else {
                        // A request came after all: the watchdog looks again later.
                        let _ = activity.verdict.compare_exchange(
                            PARK,
                            KEEP,
                            Ordering::SeqCst,
                            Ordering::SeqCst,
                        );
                    }
                }
                _ => {}
            }
            Pin::new(&mut *conn).poll(cx)
        })
        .await;
        if ended.is_err()
            || !activity.parking.load(Ordering::SeqCst)
            || activity.verdict.load(Ordering::SeqCst) != PARK
        {
            return ended;
        }
        // hyper finished, flushed and left the socket open (Watched skips the shutdown).
        let idle = {
            let parts = conn.into_parts();
            tracing::trace!(read_ahead = parts.read_buf.len(), "idle connection parked");
            svc = parts.service;
            io = parts.io.into_inner();
            // What hyper read ahead is a view into its whole read buffer, even when empty:
            // it must not live on through the wait, or the buffer parking frees stays held.
            // Pipelined bytes are copied out; the block's end drops the view.
            let read_ahead = parts.read_buf;
            if !read_ahead.is_empty() {
                io.prefix = Bytes::copy_from_slice(&read_ahead);
            }
            read_ahead.is_empty()
        };
        activity.parking.store(false, Ordering::SeqCst);
        if idle {
            // Parked, the connection keeps its own deadlines: its watchdog task goes.
            dog.stop_watching();
            let idle_until = activity
                .expires_at(dog.limits)
                .map_or_else(|| crate::clock::instant() + dog.limits.idle, |(at, _)| at);
            match wait_parked(&mut io, activity, idle_until, &mut dog.stop).await {
                Some(first) => io.prefix = first,
                None => return Ok(()),
            }
        }
        let _ = activity
            .verdict
            .compare_exchange(PARK, KEEP, Ordering::SeqCst, Ordering::SeqCst);
        dog.start();
    }
}

/// A parked connection's wait: for the client's next bytes (returned; hyper reads the rest),
/// or `None` when the client closes, the socket fails, `idle_until` (where the connection
/// has been idle for `idle_timeout`) passes, or the server drains. No watchdog task runs
/// meanwhile: these are the only deadlines a parked connection has (nothing is in flight,
/// and no head has begun).
async fn wait_parked<T: AsyncRead + Unpin>(
    io: &mut Watched<T>,
    activity: &Activity,
    idle_until: Instant,
    stop: &mut watch::Receiver<bool>,
) -> Option<Bytes> {
    if *stop.borrow() || matches!(activity.verdict.load(Ordering::SeqCst), CLOSE | CUT) {
        return None;
    }
    // The first bytes only (hyper reads the rest): this buffer is room in every parked
    // connection's task.
    let mut buf = [0u8; 16];
    let next_bytes = std::future::poll_fn(|cx| {
        activity.waker.register(cx.waker());
        if matches!(activity.verdict.load(Ordering::SeqCst), CLOSE | CUT) {
            return Poll::Ready(None);
        }
        let mut read = ReadBuf::new(&mut buf);
        match Pin::new(&mut *io).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => Poll::Ready(Some(Bytes::copy_from_slice(read.filled()))),
            Poll::Ready(Err(_)) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    });
    tokio::select! {
        first = next_bytes => first,
        // A drain (or the server gone) closes a parked connection at once: nothing is in
        // flight to finish.
        _ = stop.changed() => None,
        () = tokio::time::sleep_until(idle_until.into()) => None,
    }
}

/// A connection's [`watchdog`] task, while one runs: from when the connection opens until it
/// ends, except while it is parked.
pub(super) struct Watchdog {
    activity: Arc<Activity>,
    limits: Limits,
    stop: watch::Receiver<bool>,
    peer: SocketAddr,
    proto: Proto,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Watchdog {
    /// Starts the watchdog task unless one runs.
    fn start(&mut self) {
        if self.task.is_none() {
            let (activity, stop) = (self.activity.clone(), self.stop.clone());
            let (limits, peer, proto) = (self.limits, self.peer, self.proto);
            self.task = Some(tokio::spawn(watchdog(activity, limits, stop, peer, proto)));
        }
    }

    /// Ends the watchdog task, if one runs.
    fn stop_watching(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.stop_watching();
    }
}

/// A connection's deadlines: a new connection must send a whole request head within
/// `header_read_timeout`, and so must an HTTP/1.1 client once it starts a new one; a
/// connection with nothing in flight closes after `idle_timeout`; a drain closes it
/// gracefully. Rules by [`Activity::rule`]; the connection aborts this task when it ends.
pub(super) async fn watchdog(
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
    // And, on HTTP/1.1, at least every PARK_AFTER: an idle connection is then parked between
    // one and two PARK_AFTERs after its last request, not a whole head timeout later, so
    // hyper's buffers are not held by every connection that just went idle. A parked
    // connection has no watchdog, so this costs a wake-up a second only while serving.
    let every = if proto == Proto::Http1 {
        every.min(PARK_AFTER)
    } else {
        every
    };
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
        let park_at = (proto == Proto::Http1 && hard_deadline.is_none())
            .then(|| activity.park_at())
            .flatten();
        let check = park_at.map_or(check, |p| p.min(check));
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
                if activity.park_at().is_some_and(|p| now >= p) && proto == Proto::Http1 {
                    activity.park();
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
