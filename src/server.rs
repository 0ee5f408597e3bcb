//! Listeners and connections: plain HTTP (HTTP/1.1 and h2c prior knowledge) and TLS
//! (HTTP/1.1 and HTTP/2 by ALPN), graceful drain on shutdown.
//!
//! The TLS config is built from the certificate and key files *before* any port is bound
//! ([`tls_config`]), so a bad certificate never leaves a half-started proxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::config::{Config, Tls};
use crate::proxy::App;

/// How long a client may take to send its request head (slowloris bound).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Request ids for access-log lines (per process).
static REQUEST_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the certificate chain and key and builds the rustls server config, ALPN `h2` then
/// `http/1.1`. Errors name the config key.
pub fn tls_config(tls: &Tls) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("server.tls_cert: cannot read {:?} ({e})", tls.cert))?;
    if certs.is_empty() {
        return Err(format!(
            "server.tls_cert: {:?} holds no certificate",
            tls.cert
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| {
        format!(
            "server.tls_key: cannot read a private key from {:?} ({e})",
            tls.key
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("server.tls_cert: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!("server.tls_key: does not match server.tls_cert or is unusable ({e})")
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

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

/// A serving proxy.
#[derive(Debug)]
pub struct Running {
    /// Where plain HTTP is served.
    pub http_addr: SocketAddr,
    /// Where TLS is served.
    pub https_addr: Option<SocketAddr>,
    /// The service state (config, cache, counters).
    pub app: Arc<App>,
    stop: watch::Sender<bool>,
    tracker: TaskTracker,
}

impl Running {
    /// Stops accepting, asks every connection to finish (HTTP/2 GOAWAY, HTTP/1 close after
    /// the current response) and waits up to `grace` for in-flight requests.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        self.tracker.close();
        let _ = tokio::time::timeout(grace, self.tracker.wait()).await;
    }
}

/// Starts serving on bound listeners.
pub fn serve(app: Arc<App>, listeners: Listeners) -> std::io::Result<Running> {
    let (stop, stop_rx) = watch::channel(false);
    let tracker = TaskTracker::new();
    listeners.http.set_nonblocking(true)?;
    let http = TcpListener::from_std(listeners.http)?;
    let http_addr = http.local_addr()?;
    tracker.spawn(accept_loop(
        http,
        None,
        app.clone(),
        stop_rx.clone(),
        tracker.clone(),
    ));
    let https_addr = match listeners.https {
        Some((l, cfg)) => {
            l.set_nonblocking(true)?;
            let l = TcpListener::from_std(l)?;
            let addr = l.local_addr()?;
            tracker.spawn(accept_loop(
                l,
                Some(tokio_rustls::TlsAcceptor::from(cfg)),
                app.clone(),
                stop_rx,
                tracker.clone(),
            ));
            Some(addr)
        }
        None => None,
    };
    Ok(Running {
        http_addr,
        https_addr,
        app,
        stop,
        tracker,
    })
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
    tracker: TaskTracker,
) {
    loop {
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
        let app = app.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        tracker.spawn(async move {
            match tls {
                None => serve_connection(TokioIo::new(sock), peer, app, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(stream)) => {
                            serve_connection(TokioIo::new(stream), peer, app, stop).await
                        }
                        _ => tracing::debug!(%peer, "TLS handshake failed or timed out"),
                    }
                }
            }
        });
    }
}

async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    app: Arc<App>,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let app = app.clone();
        async move {
            let start = crate::clock::instant();
            let id = REQUEST_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // The path only: queries carry signatures, policies and keys, and are never logged.
            let (method, path, version) = (
                req.method().clone(),
                req.uri().path().to_owned(),
                req.version(),
            );
            let resp = app.handle(req, peer).await;
            tracing::info!(
                target: "edgesign::access",
                request_id = id,
                peer = %peer.ip(),
                method = %method,
                path = %path,
                version = ?version,
                status = resp.status().as_u16(),
                bytes = resp.headers().get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).unwrap_or("-"),
                duration_us = start.elapsed().as_micros() as u64,
            );
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
