//! Serving floor: listeners and connections — plain HTTP (HTTP/1.1 and h2c prior knowledge)
//! and TLS (HTTP/1.1 and HTTP/2 by ALPN); connection limits and timeouts; the access log;
//! reload and graceful drain. This file: the listeners, the accept loop, reload and drain;
//! [`conn`]: one connection and its watchdog; [`request`]: one request and its access line.
//!
//! The TLS config is built from the certificate and key files *before* any port is bound
//! ([`crate::tls::server_config`]), so a bad certificate never leaves a half-started proxy.
//!
//! Every connection holds a slot of `server.max_connections`; when none is free the accept
//! loop waits and new clients queue in the kernel's backlog. Each connection has a watchdog
//! (a task of its own, except while the connection is parked, when the connection's task
//! keeps the two deadlines a parked connection has: idle and drain):
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
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::{ArcSwap, ArcSwapOption};

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::config::Config;
use crate::notes::RequestIds;

mod conn;
mod request;

use conn::{Limits, Proto, Slot, serve_connection, sniff};
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
    /// Where background work (credential refresh) runs.
    runtime: tokio::runtime::Handle,
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
        let app = old.reloaded(config)?;
        {
            // Origins whose credential source is new start asking for credentials.
            let _on = self.runtime.enter();
            app.start();
        }
        self.shared.app.store(app);
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
    {
        let _on = runtime.enter();
        app.start();
    }
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
        runtime: runtime.clone(),
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
        // Plain and TLS connections are tasks of their own types: a task is as large as its
        // future, and a plain connection should not carry room for a TLS session.
        let accepted = Accepted {
            peer,
            shared,
            stop,
            guard,
            slot,
        };
        if tls {
            tokio::spawn(tracker.track_future(serve_tls(sock, accepted)));
        } else {
            tokio::spawn(tracker.track_future(serve_plain(sock, accepted)));
        }
    }
}

/// A connection just accepted: what serving it needs besides its socket.
struct Accepted {
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    guard: crate::metrics::ConnectionGuard,
    slot: Arc<Slot>,
}

impl Accepted {
    fn limits(&self) -> Limits {
        Limits::of(&self.shared.app.load().config)
    }
}

/// A plain connection: HTTP/1.1, or h2c with prior knowledge.
///
/// An `async` block, not an `async fn`: an `async fn` keeps its arguments twice for the
/// connection's whole life (as captured, and as the locals they are moved into), and a
/// connection's task is what an idle connection costs.
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would keep its arguments twice"
)]
fn serve_plain(
    sock: tokio::net::TcpStream,
    accepted: Accepted,
) -> impl std::future::Future<Output = ()> {
    async move {
        let Some(proto) = sniff(&sock, accepted.limits().header_read).await else {
            return;
        };
        serve_connection(sock, proto, accepted).await;
    }
}

/// A TLS connection: the handshake within `header_read_timeout`, then HTTP/1.1 or HTTP/2
/// as ALPN chose.
async fn serve_tls(sock: tokio::net::TcpStream, accepted: Accepted) {
    let limits = accepted.limits();
    let Some(cfg) = accepted.shared.tls.load_full() else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    match tokio::time::timeout(limits.header_read, acceptor.accept(sock)).await {
        Ok(Ok(stream)) => {
            let proto = match stream.get_ref().1.alpn_protocol() {
                Some(b"h2") => Proto::Http2,
                _ => Proto::Http1,
            };
            serve_connection(stream, proto, accepted).await;
        }
        _ => tracing::debug!(peer = %accepted.peer, "TLS handshake failed or timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plain connection's task is what an idle (parked) connection costs, for as long as it
    /// is held: with 10,000 idle clients, every 128 bytes here is over a megabyte. Each
    /// `async fn` level keeps its arguments twice, and every local that lives across an
    /// await is room in it; this was 1,736 bytes (a 1,920-byte task) before that was
    /// trimmed. 1,120 keeps tokio's task, with its header and trailer, within 1,280 bytes
    /// (1,064 in a release build).
    #[test]
    fn a_plain_connections_future_stays_small() {
        fn size<Fut>(_: fn(tokio::net::TcpStream, Accepted) -> Fut) -> usize {
            std::mem::size_of::<Fut>()
        }
        let bytes = size(serve_plain);
        println!("a plain connection's future: {bytes} bytes");
        assert!(
            bytes <= 1120,
            "a plain connection's future is {bytes} bytes"
        );
    }
}
