//! One request: the ops endpoints or the service, then — when its response body ends or is
//! dropped — the access-log line and the request metrics, with the bytes really sent.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Response, header};
use http_body::{Body as _, Frame, SizeHint};

use crate::app::App;
use crate::notes::{self, RequestIds};
use crate::ops;
use crate::respond::{self, Body, BoxError, Style};

use super::conn::{Activity, ConnCx, Sending};

/// One request: the ops endpoints, or the service; then the access log and metrics, which
/// are written when the response body ends (so they hold the bytes really sent).
pub(super) async fn answer(
    req: http::Request<hyper::body::Incoming>,
    cx: &ConnCx,
) -> Response<Accounted> {
    let ConnCx {
        shared,
        activity,
        slot,
        peer,
    } = cx;
    let peer = *peer;
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
        target: tracing::enabled!(target: "edgesign::access", tracing::Level::INFO).then(|| {
            // The client as `trusted_proxies` yields it (not the balancer in front).
            let client = crate::auth::client_ip(
                peer.ip(),
                req.headers(),
                &app.config.server.trusted_proxies,
            );
            (req.method().clone(), req.uri().clone(), client)
        }),
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
                ops::readyz(draining, &app.unready())
            }
            "/metrics" => {
                notes::note_route("metrics");
                if metrics_allowed(&req, peer, &app) {
                    app.export_gauges(draining);
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
    // HTTP/1.1 stops polling a body once Content-Length bytes are written, so the end of the
    // stream is never seen there: all of them sent is complete too.
    let expected = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    resp.map(|body| Accounted {
        body,
        bytes: 0,
        expected,
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
pub(super) struct InFlight(Option<Arc<Activity>>);

impl InFlight {
    pub(super) fn begin(activity: Arc<Activity>) -> Self {
        activity.begin();
        InFlight(Some(activity))
    }

    /// The request finished at `now`.
    pub(super) fn end(mut self, now: Instant) {
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
pub(super) fn metrics_allowed(
    req: &http::Request<hyper::body::Incoming>,
    peer: SocketAddr,
    app: &App,
) -> bool {
    let server = &app.config.server;
    let client = crate::auth::client_ip(peer.ip(), req.headers(), &server.trusted_proxies);
    server.metrics_allow.iter().any(|n| n.contains(&client))
}

pub(super) static X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The request id: an `X-Request-Id` from a trusted proxy when it is sane, else a new one.
pub(super) fn request_id(
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
        // One allocation, which the access line and the response header then share: a
        // `Bytes` made from a `String` allocates again the first time it is cloned.
        None => HeaderValue::from_maybe_shared(Bytes::from_owner(ids.next()))
            .unwrap_or(HeaderValue::from_static("-")),
    }
}

/// A path as the access log writes it: bytes outside printable ASCII percent-encoded, so
/// that no line carries a raw control, a line or paragraph separator (U+0085, U+2028,
/// U+2029, which some log readers and JSON-in-JavaScript consumers split lines on) or a
/// bidirectional override (U+202E) that makes a path read as another in a terminal.
pub(super) fn log_safe(path: &str) -> std::borrow::Cow<'_, str> {
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
pub(super) struct AccessLine {
    id: HeaderValue,
    peer: SocketAddr,
    /// Method, URI and client address, while the access log is on.
    target: Option<(http::Method, http::Uri, std::net::IpAddr)>,
    version: http::Version,
    route: &'static str,
    cache: &'static str,
}

/// Everything the end of a response reports to.
pub(super) struct Done {
    line: AccessLine,
    status: u16,
    start: Instant,
    app: Arc<App>,
    in_flight: InFlight,
}

/// A response body that counts what it sends and, when it ends or is dropped (client gone),
/// writes the access-log line and the request metrics.
pub(super) struct Accounted {
    body: Body,
    bytes: u64,
    /// The response's Content-Length, when it has one.
    expected: Option<u64>,
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
        let complete =
            self.complete || self.body.is_end_stream() || self.expected == Some(self.bytes);
        let now = crate::clock::instant();
        let took = now.saturating_duration_since(done.start);
        let l = &done.line;
        if let Some((method, uri, client)) = &l.target {
            tracing::info!(
                target: "edgesign::access",
                request_id = l.id.to_str().unwrap_or("-"),
                client = %client,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A request's future is moved whole when hyper starts it (HTTP/1.1) and when it spawns
    /// an HTTP/2 stream; every byte of it is copied for every request. An `async` wrapper
    /// that awaits a future it was given keeps both, which doubled it once (7,432 bytes).
    #[test]
    fn a_requests_future_stays_small() {
        fn size<Fut>(
            _: &impl Fn(http::Request<hyper::body::Incoming>, Arc<ConnCx>) -> Fut,
        ) -> usize {
            std::mem::size_of::<Fut>()
        }
        let bytes = size(&|req, cx: Arc<ConnCx>| async move { answer(req, &cx).await });
        println!("a request's future: {bytes} bytes");
        assert!(bytes <= 4096, "a request's future is {bytes} bytes");
    }
}
