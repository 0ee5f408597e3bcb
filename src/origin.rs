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

type Resolved = Result<std::vec::IntoIter<std::net::SocketAddr>, DnsError>;

/// A name the resolver could not look up (told apart from other connect failures in the
/// log and in `edgesign_origin_errors_total{kind="dns"}`).
#[derive(Debug)]
pub struct DnsError {
    name: String,
    source: std::io::Error,
}

impl std::fmt::Display for DnsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DNS lookup of {:?} failed: {}", self.name, self.source)
    }
}

impl std::error::Error for DnsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl tower_service::Service<Name> for Resolver {
    type Response = std::vec::IntoIter<std::net::SocketAddr>;
    type Error = DnsError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Resolved> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.system.poll_ready(cx).map_err(|source| DnsError {
            name: String::new(),
            source,
        })
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
        Box::pin(async move {
            match resolving.await {
                Ok(addrs) => Ok(addrs.collect::<Vec<_>>().into_iter()),
                Err(source) => Err(DnsError { name: host, source }),
            }
        })
    }
}

/// Why a request to an origin failed, read down the error's source chain: the `kind` of
/// `edgesign_origin_errors_total` (`dns`, `tls`, `refused`, `timeout`, `connect`) and a
/// sentence for the log.
fn classify(e: &(dyn std::error::Error + 'static)) -> (&'static str, String) {
    let mut chain = Vec::new();
    let mut cause = Some(e);
    // An `io::Error` wrapping another error hides it from `source()` (hyper-rustls wraps the
    // TLS error's `io::Error` in another one), so the walk steps into `get_ref()` too.
    fn next<'e>(
        c: &'e (dyn std::error::Error + 'static),
    ) -> Option<&'e (dyn std::error::Error + 'static)> {
        match c
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner),
            None => c.source(),
        }
    }
    while let Some(c) = cause {
        if let Some(dns) = c.downcast_ref::<DnsError>() {
            return ("dns", dns.to_string());
        }
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return ("tls", format!("TLS handshake failed: {tls}"));
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::TimedOut => {
                    return (
                        "timeout",
                        "connect timed out (origin_client.connect_timeout)".into(),
                    );
                }
                std::io::ErrorKind::ConnectionRefused => {
                    return ("refused", io.to_string());
                }
                _ => {}
            }
        }
        let text = c.to_string();
        if !chain
            .last()
            .is_some_and(|last: &String| last.ends_with(&text))
        {
            chain.push(text);
        }
        cause = next(c);
    }
    ("connect", chain.join(": "))
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
    /// A client with `[origin_client]`'s timeouts and trust (`ca_file`, `web_roots`).
    /// Latency and failures are counted into `metrics`.
    pub fn new(settings: &Settings, metrics: Arc<Metrics>) -> Result<Self, String> {
        let mut http = HttpConnector::new_with_resolver(Resolver::default());
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        let tls = crate::tls::client_config(&settings.ca_roots, settings.web_roots)?;
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
    /// `cookie` is a `Cookie` header to send (CloudFront signed cookies), the only one sent.
    pub async fn fetch(
        &self,
        origin: &str,
        method: Method,
        url: &str,
        via: Option<&Layout>,
        headers: &HeaderMap,
        cookie: Option<&str>,
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
        // CloudFront signed cookies that authorize this fetch (edgesign's own, or a client's
        // that verified); the client's other cookies never reach the origin.
        if let Some(cookie) = cookie {
            let value = HeaderValue::from_str(cookie).map_err(|_| unsendable())?;
            req.headers_mut().insert(http::header::COOKIE, value);
        }
        let start = crate::clock::instant();
        let client = if via.is_some() {
            &self.via_client
        } else {
            &self.client
        };
        let target = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .unwrap_or_default();
        match tokio::time::timeout(self.response_timeout, client.request(req)).await {
            Ok(Ok(resp)) => {
                self.metrics.origin_answered(origin, start.elapsed());
                if !is_passed_status(resp.status()) {
                    self.metrics.origin_error(origin, "status");
                }
                Ok(resp)
            }
            Err(_) => {
                self.metrics.origin_error(origin, "timeout");
                Err(Error::OriginTimeout(format!(
                    "origin {origin} at {target}: no response head within origin_client.response_timeout"
                )))
            }
            Ok(Err(e)) => {
                let (kind, why) = classify(&e);
                self.metrics.origin_error(origin, kind);
                if kind == "timeout" {
                    Err(Error::OriginTimeout(format!(
                        "origin {origin} at {target}: {why}"
                    )))
                } else {
                    Err(Error::OriginUnavailable(format!(
                        "origin {origin} at {target}: {why}"
                    )))
                }
            }
        }
    }

    /// `GET url` for a small document (a JWKS): the body, at most `max` bytes, within the
    /// response timeout; any status but 200 is an error.
    pub async fn get_small(&self, url: &str, max: usize) -> Result<Bytes, String> {
        use http_body_util::BodyExt;
        let uri: http::Uri = url.parse().map_err(|_| format!("{url:?} is not a URL"))?;
        let req = Request::get(uri)
            .header(http::header::USER_AGENT, "edgesign")
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let fetched = async {
            let resp = self.client.request(req).await.map_err(|e| classify(&e).1)?;
            if resp.status() != StatusCode::OK {
                return Err(format!("answered {}", resp.status()));
            }
            let body = http_body_util::Limited::new(resp.into_body(), max)
                .collect()
                .await
                .map_err(|e| format!("reading the body: {e}"))?;
            Ok(body.to_bytes())
        };
        tokio::time::timeout(self.response_timeout, fetched)
            .await
            .map_err(|_| "no answer within origin_client.response_timeout".to_owned())?
    }

    /// The error code and message an origin put in an error body (S3's XML
    /// `<Code>`/`<Message>`, or a JSON `code`/`message`), for the log: at most 8 KiB read, for
    /// at most a second. Never sent to the client.
    pub async fn error_summary(body: Incoming) -> Option<String> {
        use http_body_util::BodyExt;
        let limited = http_body_util::Limited::new(body, 8 * 1024);
        let bytes = tokio::time::timeout(Duration::from_secs(1), limited.collect())
            .await
            .ok()?
            .ok()?
            .to_bytes();
        let text = String::from_utf8_lossy(&bytes);
        let between = |open: &str, close: &str| {
            let start = text.find(open)? + open.len();
            let len = text[start..].find(close)?;
            Some(text[start..start + len].trim().to_owned())
        };
        let code = between("<Code>", "</Code>");
        let message = between("<Message>", "</Message>");
        let (code, message) = match (code, message) {
            (None, None) => {
                let v: serde_json::Value = serde_json::from_str(&text).ok()?;
                let field = |k: &str| {
                    v.get(k)
                        .or_else(|| v.get("error").and_then(|e| e.get(k)))
                        .and_then(|x| x.as_str())
                        .map(str::to_owned)
                };
                (field("code"), field("message"))
            }
            other => other,
        };
        let clip = |s: String| s.chars().take(200).collect::<String>();
        match (code.map(clip), message.map(clip)) {
            (Some(c), Some(m)) => Some(format!("{c}: {m}")),
            (Some(x), None) | (None, Some(x)) => Some(x),
            (None, None) => None,
        }
    }
}
