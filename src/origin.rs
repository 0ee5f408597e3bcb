//! The origin client: a pooled hyper-util client, HTTPS through rustls with the webpki roots,
//! connect and response timeouts from `[origin_client]`. It never follows redirects; the
//! origin's body is handed back unbuffered.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::rt::TokioExecutor;

use crate::Error;
use crate::config::OriginClient as Settings;
use crate::metrics::Metrics;
use crate::sign::Method;
use crate::sign::signer::Layout;

/// Request headers passed to the origin in stream mode.
pub const PASSED_REQUEST_HEADERS: [http::HeaderName; 5] = [
    http::header::RANGE,
    http::header::IF_NONE_MATCH,
    http::header::IF_MODIFIED_SINCE,
    http::header::IF_MATCH,
    http::header::IF_UNMODIFIED_SINCE,
];

/// Response headers passed back from the origin.
pub const PASSED_RESPONSE_HEADERS: [http::HeaderName; 11] = [
    http::header::CONTENT_TYPE,
    http::header::CONTENT_LENGTH,
    http::header::CONTENT_RANGE,
    http::header::ACCEPT_RANGES,
    http::header::ETAG,
    http::header::LAST_MODIFIED,
    http::header::CONTENT_DISPOSITION,
    http::header::CACHE_CONTROL,
    http::header::CONTENT_ENCODING,
    http::header::CONTENT_LANGUAGE,
    http::header::EXPIRES,
];

/// Statuses of the origin that are the client's answer; anything else is the origin's fault.
pub fn is_passed_status(s: StatusCode) -> bool {
    matches!(s.as_u16(), 200 | 206 | 304 | 404 | 412 | 416)
}

/// The system resolver, except that `localhost` and every `*.localhost` name are loopback
/// without asking it (RFC 6761 §6.3: resolvers SHOULD answer them so). glibc only knows
/// `localhost` itself, and a virtual-host S3 origin on this machine is
/// `<bucket>.localhost:<port>`.
#[derive(Clone, Debug)]
pub struct Resolver {
    system: GaiResolver,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver {
            system: GaiResolver::new(),
        }
    }
}

type Resolved = Result<std::vec::IntoIter<std::net::SocketAddr>, std::io::Error>;

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<std::net::SocketAddr>;
    type Error = std::io::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Resolved> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.system.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        if host == "localhost" || host.ends_with(".localhost") {
            let loopback = vec![
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0)),
            ];
            return Box::pin(std::future::ready(Ok(loopback.into_iter())));
        }
        let resolving = self.system.call(name);
        Box::pin(async move { Ok(resolving.await?.collect::<Vec<_>>().into_iter()) })
    }
}

/// Whether an error of the client was a timeout (the connect timeout surfaces as an
/// `io::Error` of kind `TimedOut` somewhere down the error's source chain).
fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The pooled client.
#[derive(Clone)]
pub struct OriginClient {
    client: Client<HttpsConnector<HttpConnector<Resolver>>, Empty<Bytes>>,
    /// HTTP/1.1 only, for requests sent to an `endpoint` other than the URL's host: over
    /// HTTP/2 the request's `:authority` would be the endpoint while `Host` names the
    /// domain, which RFC 9113 §8.3.1 makes malformed.
    via_client: Client<HttpsConnector<HttpConnector<Resolver>>, Empty<Bytes>>,
    response_timeout: Duration,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for OriginClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OriginClient")
            .field("response_timeout", &self.response_timeout)
            .finish_non_exhaustive()
    }
}

impl OriginClient {
    /// A client with `[origin_client]`'s timeouts. `extra_roots` are PEM CA certificates to
    /// trust besides the webpki roots (for private origins). Latency and failures are
    /// counted into `metrics`.
    pub fn new(
        settings: &Settings,
        extra_roots: &[rustls_pki_types::CertificateDer<'static>],
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let mut http = HttpConnector::new_with_resolver(Resolver::default());
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        let tls = crate::tls::client_config(extra_roots)?;
        let via = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http.clone());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let pooled = |builder: &mut hyper_util::client::legacy::Builder| {
            builder.pool_idle_timeout(Duration::from_secs(30)).clone()
        };
        let client = pooled(&mut Client::builder(TokioExecutor::new())).build(https);
        let via_client = pooled(&mut Client::builder(TokioExecutor::new())).build(via);
        Ok(OriginClient {
            client,
            via_client,
            response_timeout: settings.response_timeout,
            metrics,
        })
    }

    /// Sends `method url` to the origin named `origin` with the passed request headers;
    /// waits for the response head at most `response_timeout`. Connection refused or reset →
    /// `502 origin_unavailable`; no answer in time → `504 origin_timeout`.
    ///
    /// `via` (`scheme://host[:port]`, a CloudFront origin's `endpoint`) is where to connect
    /// when it is not the URL's own host: the request still names the URL's path and query
    /// and carries the URL's host in `Host`, as a client of the distribution would send it.
    pub async fn fetch(
        &self,
        origin: &str,
        method: Method,
        url: &str,
        via: Option<&Layout>,
        headers: &HeaderMap,
    ) -> Result<Response<Incoming>, Error> {
        let unsendable = || Error::BadRequest("the URL cannot be sent to the origin".into());
        let (uri, host): (http::Uri, Option<HeaderValue>) = match via {
            None => (url.parse().map_err(|_| unsendable())?, None),
            Some(via) => {
                let parsed = crate::sign::url::RawUrl::parse(url).map_err(|_| unsendable())?;
                let target = if parsed.query.is_empty() {
                    format!("{}{}", via.origin(), parsed.path)
                } else {
                    format!("{}{}?{}", via.origin(), parsed.path, parsed.query)
                };
                let host =
                    HeaderValue::from_str(parsed.signing_host()).map_err(|_| unsendable())?;
                (target.parse().map_err(|_| unsendable())?, Some(host))
            }
        };
        let mut req = Request::builder()
            .method(match method {
                Method::Get => http::Method::GET,
                Method::Head => http::Method::HEAD,
            })
            .uri(uri)
            .body(Empty::new())
            .map_err(|e| Error::Internal(format!("building origin request: {e}")))?;
        for name in &PASSED_REQUEST_HEADERS {
            for v in headers.get_all(name) {
                req.headers_mut().append(name.clone(), v.clone());
            }
        }
        req.headers_mut().insert(
            http::header::USER_AGENT,
            HeaderValue::from_static("edgesign"),
        );
        if let Some(host) = host {
            req.headers_mut().insert(http::header::HOST, host);
        }
        let start = crate::clock::instant();
        let result = self.send(req, via.is_some()).await;
        match &result {
            Ok(resp) => {
                self.metrics.origin_answered(origin, start.elapsed());
                if !is_passed_status(resp.status()) {
                    self.metrics.origin_error(origin, "status");
                }
            }
            Err(Error::OriginTimeout) => self.metrics.origin_error(origin, "timeout"),
            Err(_) => self.metrics.origin_error(origin, "connect"),
        }
        result
    }

    async fn send(
        &self,
        req: Request<Empty<Bytes>>,
        via: bool,
    ) -> Result<Response<Incoming>, Error> {
        let client = if via { &self.via_client } else { &self.client };
        match tokio::time::timeout(self.response_timeout, client.request(req)).await {
            Err(_) => Err(Error::OriginTimeout),
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => {
                if timed_out(&e) {
                    Err(Error::OriginTimeout)
                } else {
                    Err(Error::OriginUnavailable(format!("{e:?}")))
                }
            }
        }
    }
}
