//! The hyper service: route → verify → authorize → sign → redirect | stream.
//!
//! Every request ends here in exactly one place that turns an [`Error`] into a response
//! ([`error_response`]); a request that arrived as an S3 SigV4 URL gets S3's XML error, every
//! other one the JSON body of docs/errors.md.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::BodyExt;

use crate::app::{App, Cx};
use crate::auth::policy::Verdict;
use crate::auth::{self, Principal, keypath, overrides as override_policy, policy};
use crate::cache::Entry;
use crate::fleet::budget::Take;
use crate::metrics::UrlVerdict;
use crate::notes;
use crate::origin::{OriginClient, PASSED_RESPONSE_HEADERS};
use crate::origins::{self, Origin};
use crate::respond::{self, Body, BoxError, Style, empty};
use crate::route::{Access, Mode};
use crate::sign::encoding::percent_decode;
use crate::sign::signer::{Kind, Scheme};
use crate::sign::url::{RawUrl, query_segments};
use crate::sign::{Method, Signed, cloudfront, cookies, native};
use crate::{Error, api, local, route};

/// The inputs of one signing decision.
struct Ask<'a> {
    principal: &'a Principal,
    origin: usize,
    raw_key: &'a str,
    method: Method,
    access: Access,
    stale_grace: u64,
    headers: &'a HeaderMap,
    now: u64,
    /// The client's address when edgesign fetches the object for it (stream mode), so that a
    /// CloudFront policy's `IpAddress` is checked against the client and not the proxy.
    /// `None` when the client follows a redirect and the CDN checks it.
    fetched_for: Option<std::net::IpAddr>,
    /// The client's address (through trusted proxies), for the audit log.
    client: std::net::IpAddr,
    /// The part of the origin's keys the route serves, relative to the origin's base: a
    /// host route's prefix without the origin's own path prefix (`public/` for
    /// `prefix = "/public/"`), empty when the route serves every key.
    scope: &'a str,
}

/// The keys a host route serves, relative to the origin's base: its prefix without the
/// origin's path prefix (path-style S3: `/<bucket>`), ending in `/`; empty for every key.
fn host_route_scope(route_prefix: &str, origin_path_prefix: &str) -> String {
    let rel = route_prefix
        .strip_prefix(origin_path_prefix)
        .unwrap_or(route_prefix)
        .trim_start_matches('/');
    match rel {
        "" => String::new(),
        r if r.ends_with('/') => r.to_owned(),
        r => format!("{r}/"),
    }
}

/// `private, max-age=N`, shared with the thread's last answer with the same `N`: a redirect's
/// `max-age` counts down to its bucket's end, so answers within one second mostly carry the
/// same value, and a clone of it allocates nothing.
fn private_max_age(secs: u64) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u64, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((n, value)) if *n == secs => value.clone(),
            _ => {
                let value = spell_private_max_age(secs);
                *last = Some((secs, value.clone()));
                value
            }
        }
    })
}

/// `private, max-age=N` without going through `fmt`.
fn spell_private_max_age(secs: u64) -> HeaderValue {
    const PREFIX: &[u8] = b"private, max-age=";
    let mut buf = [0u8; 40];
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 20];
    let mut n = secs;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = PREFIX.len() + digits.len() - i;
    buf[PREFIX.len()..len].copy_from_slice(&digits[i..]);
    HeaderValue::from_bytes(&buf[..len]).unwrap_or(HeaderValue::from_static("private"))
}

/// Headers every streamed object gets, since it is served from edgesign's own origin (where
/// its session cookie lives): `nosniff`, so a browser renders it only as the type it says,
/// and `Content-Security-Policy: sandbox`, so even an HTML or SVG object stored at the
/// origin runs no script with the proxy's origin. When the caller needed credentials, the
/// answer is `private` (whatever the origin or an override said: `public` and `s-maxage`
/// are dropped, `max-age` and the rest kept) and varies on the credentials, so no shared
/// cache in front hands it to someone else.
fn harden(h: &mut HeaderMap, private: bool) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    if private {
        let kept: Vec<String> = h
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|d| {
                let name = d
                    .split('=')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                !d.is_empty() && !matches!(name.as_str(), "public" | "private" | "s-maxage")
            })
            .map(str::to_owned)
            .collect();
        let value = std::iter::once("private".to_owned())
            .chain(kept)
            .collect::<Vec<_>>()
            .join(", ");
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("private")),
        );
        h.insert(
            header::VARY,
            HeaderValue::from_static("Authorization, Cookie"),
        );
    }
}

/// The methods a path answers: each API its own, everything else `GET`/`HEAD`.
fn allow(api: Option<api::Api>) -> HeaderValue {
    HeaderValue::from_static(api.map_or("GET, HEAD, OPTIONS", api::Api::allow))
}

fn request_method(m: &http::Method) -> Result<Method, Error> {
    match *m {
        http::Method::GET => Ok(Method::Get),
        http::Method::HEAD => Ok(Method::Head),
        _ => Err(Error::MethodNotAllowed),
    }
}

/// `response-*` overrides of a stable link, raw and in order (part of the cache key).
fn overrides(query: &str) -> Vec<&str> {
    query_segments(query)
        .filter(|s| s.starts_with("response-"))
        .collect()
}

/// The CloudFront cookies a request carries, as one `Cookie` header (its other cookies
/// left out): what is sent on to the origin when they verified.
fn sent_cookies(headers: &HeaderMap) -> String {
    let all: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    cookies::CookieSet::from_header(&all.join("; ")).header()
}

/// `Set-Cookie` for a cookie set kept in `entry`.
fn set_cookies(
    h: &mut HeaderMap,
    signer: &crate::sign::signer::OriginSigner,
    entry: &Entry,
    now: u64,
) {
    for v in crate::minter::set_cookie_headers(signer, entry, now) {
        h.append(header::SET_COOKIE, v);
    }
}

impl App {
    /// Answers one request. Never panics and never fails: errors become responses.
    pub async fn handle<B>(self: &Arc<Self>, req: Request<B>, peer: SocketAddr) -> Response<Body>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = req.into_parts();
        let path = parts.uri.path();
        let s3_client = parts
            .uri
            .query()
            .is_some_and(|q| Scheme::of_query(q) == Scheme::Sigv4)
            && !matches!(path, "/proxy/file" | "/api/v1/proxy/file");
        let api = api::Api::of(&parts.method, path);
        if parts.method == http::Method::OPTIONS {
            notes::note_route("options");
            return self.options(&parts, peer, api).await;
        }
        if let Some(api) = api {
            notes::note_route(api.route_name());
        }
        let mut admitted = self.admit(&parts, peer).await;
        if self.config.auth.jwks.is_some() && self.may_know_more_keys(&parts, &admitted) {
            admitted = Box::pin(self.admit_with_fresh_keys(&parts, peer, admitted)).await;
        }
        let result = match admitted {
            Err(e) => Err(e),
            Ok(cx) => match api {
                // The signing APIs and the cold routes below are boxed: an async fn's future is
                // as large as its largest path, and the redirect hit path should not move
                // kilobytes of stream and API state around on every request.
                Some(api) => Ok(Box::pin(api::handle(self, api, &parts, body, &cx)).await),
                None => self.dispatch(&parts, &cx).await,
            },
        };
        let mut resp = match (result, api) {
            (Ok(resp), _) => resp,
            (Err(e), Some(api)) => respond::error(&e, api.style()),
            (Err(e), None) => {
                respond::error(&e, if s3_client { Style::S3Xml } else { Style::Json })
            }
        };
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED {
            resp.headers_mut().insert(header::ALLOW, allow(api));
        }
        if let Some(api) = api {
            api::cors(
                &self.config.cors,
                &parts.headers,
                resp.headers_mut(),
                false,
                api,
            );
        }
        resp
    }

    /// `OPTIONS`: `204` with `Allow`, and for the signing APIs a CORS preflight answer when
    /// the page's origin is in `[cors] allow_origins`. Rate-limited like any anonymous call.
    async fn options(
        &self,
        parts: &http::request::Parts,
        peer: SocketAddr,
        api: Option<api::Api>,
    ) -> Response<Body> {
        if let Err(e) = self.admit(parts, peer).await {
            return respond::error(&e, Style::Json);
        }
        let mut resp = Response::new(empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let all = parts.uri.path() == "*";
        resp.headers_mut().insert(
            header::ALLOW,
            if all {
                HeaderValue::from_static("GET, HEAD, POST, OPTIONS")
            } else {
                allow(api)
            },
        );
        if let Some(api) = api {
            api::cors(
                &self.config.cors,
                &parts.headers,
                resp.headers_mut(),
                true,
                api,
            );
        }
        resp
    }

    /// Whether the request's token names a `kid` the JWKS in hand lacks, and it was not
    /// admitted as itself (refused, or a session cookie read as anonymous).
    fn may_know_more_keys(
        &self,
        parts: &http::request::Parts,
        admitted: &Result<Cx, Error>,
    ) -> bool {
        let unauthenticated = match admitted {
            Err(Error::Unauthorized(_)) => true,
            Ok(cx) => !cx.principal.is_authenticated(),
            Err(_) => false,
        };
        unauthenticated
            && self
                .keys
                .with(|jwks| auth::unknown_kid(&self.config.auth, &parts.headers, jwks))
                .is_some()
    }

    /// Fetches the JWKS again (rate-limited) and admits the request once more if it did.
    async fn admit_with_fresh_keys(
        &self,
        parts: &http::request::Parts,
        peer: SocketAddr,
        first: Result<Cx, Error>,
    ) -> Result<Cx, Error> {
        if self.keys.refresh_for_unknown_kid(&self.origin).await {
            self.admit(parts, peer).await
        } else {
            first
        }
    }

    /// Authenticates once and applies the rate limit, before any signing work.
    async fn admit(&self, parts: &http::request::Parts, peer: SocketAddr) -> Result<Cx, Error> {
        let now = self.clock.unix_secs();
        let ip = auth::client_ip(
            peer.ip(),
            &parts.headers,
            &self.config.server.trusted_proxies,
        );
        let authenticated = self
            .keys
            .with(|jwks| auth::authenticate(&self.config.auth, &parts.headers, now, jwks));
        let principal = match authenticated {
            Ok(p) => p,
            // Failed logins count against the client's address, so guessing is limited too.
            Err(e) => {
                let bucket = auth::RateKey::address(ip, self.config.rate_limit.ipv6_prefix);
                self.charge(&bucket).await?;
                return Err(e);
            }
        };
        self.charge(&principal.rate_key(ip, self.config.rate_limit.ipv6_prefix))
            .await?;
        let revoked = self.fleet.revocations();
        if !revoked.is_empty()
            && revoked
                .of_principal(&self.config.auth, &principal, now)
                .is_some()
        {
            return Err(Error::Revoked);
        }
        Ok(Cx { principal, now, ip })
    }

    /// Takes a token from `key`'s local bucket, then (with `[fleet]`) from its lease of the
    /// fleet's budget, asking Redis only when the lease is empty.
    async fn charge(&self, key: &auth::RateKey) -> Result<(), Error> {
        self.limiter.check(key)?;
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        match budget.try_take(key, &self.metrics) {
            Take::Granted => Ok(()),
            Take::Refused(e) => Err(e),
            Take::Ask => {
                let name = key.fleet_name(&self.config.auth);
                Box::pin(budget.ask(key, &name, &self.metrics)).await
            }
        }
    }

    async fn dispatch(
        &self,
        parts: &http::request::Parts,
        cx: &Cx,
    ) -> Result<Response<Body>, Error> {
        match parts.uri.path() {
            "/proxy/file" | "/api/v1/proxy/file" => {
                notes::note_route("proxy_file");
                Box::pin(self.proxy_file(parts, cx)).await
            }
            p if p.starts_with(native::PATH_PREFIX) => {
                notes::note_route("local_origin");
                Box::pin(self.serve_local(parts, cx)).await
            }
            _ => self.serve_route(parts, cx).await,
        }
    }

    fn host(parts: &http::request::Parts) -> Option<&str> {
        parts.uri.authority().map(|a| a.as_str()).or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
    }

    /// A stable link or a signed URL on a configured route.
    async fn serve_route(
        &self,
        parts: &http::request::Parts,
        cx: &Cx,
    ) -> Result<Response<Body>, Error> {
        let method = request_method(&parts.method)?;
        let matched = route::route(&self.config.routes, Self::host(parts), parts.uri.path())
            .ok_or(Error::NotFound)?;
        let route = &self.config.routes[matched.route];
        notes::note_route(match route.mode {
            Mode::Redirect => "redirect",
            Mode::Stream => "stream",
            Mode::Cookie => "cookie",
        });
        let origin = &self.config.origins[route.origin];
        let layout = origin.signer.layout();
        // docs/http.md, host routes: a route without `host` lives on the
        // proxy's name and its prefix stands for the origin's base; a route with `host` takes
        // over the origin's own name, where the path is the origin's own URL path, exactly as
        // the client holds it (`/<bucket>/<key>` for path-style S3).
        let path = parts.uri.path();
        let raw_key = match route.host {
            None => matched.raw_key,
            Some(_) => layout.key_of_path(path).ok_or(Error::NotFound)?,
        };
        let scope = match route.host {
            None => String::new(),
            Some(_) => host_route_scope(&route.prefix, &layout.path_prefix),
        };
        let scope = scope.as_str();
        if raw_key.is_empty() {
            return Err(Error::NotFound);
        }
        if let Some(b) = raw_key.bytes().find(|b| *b <= b' ' || *b >= 0x7f) {
            return Err(Error::BadRequest(format!(
                "byte 0x{b:02x} in the path must be percent-encoded"
            )));
        }
        let query = parts.uri.query().unwrap_or("");
        // How the answer goes out: a host route takes over the origin's own name, so a cookie
        // route there serves (streams) once the cookies are set.
        let mode = match (route.mode, route.host.is_some()) {
            (Mode::Cookie, true) => Mode::Stream,
            (Mode::Cookie, false) => Mode::Redirect,
            (m, _) => m,
        };
        let ask = Ask {
            principal: &cx.principal,
            origin: route.origin,
            raw_key,
            method,
            access: route.access,
            stale_grace: route.stale_grace,
            headers: &parts.headers,
            now: cx.now,
            fetched_for: (mode == Mode::Stream).then_some(cx.ip),
            client: cx.ip,
            scope,
        };
        let unsigned = Scheme::of_query(query) == Scheme::Unsigned;
        if unsigned && matches!(origin.signer.kind, Kind::CloudFront(_)) {
            // docs/http.md, signed cookies: on a host route, CloudFront cookies are decided
            // like a signed URL, against the URL the client asked for.
            if route.host.is_some() {
                let headers = parts.headers.get_all(header::COOKIE);
                let sent = headers.iter().filter_map(|v| v.to_str().ok());
                if let Some(parsed) = cookies::parse(sent) {
                    let url_text = match query {
                        "" => format!("{}{path}", layout.origin()),
                        q => format!("{}{path}?{q}", layout.origin()),
                    };
                    return Box::pin(self.serve_with_cookies(&ask, parsed, &url_text)).await;
                }
            }
            if route.mode == Mode::Cookie {
                let at = match route.host {
                    None => layout.object_url(raw_key),
                    Some(_) => format!("{}{path}", layout.origin()),
                };
                let location = match query {
                    "" => at,
                    q => format!("{at}?{q}"),
                };
                return Box::pin(self.issue_cookies(&ask, &location)).await;
            }
        }
        let (signed, rolls_at) = if unsigned {
            self.fresh_url(&ask, None, &overrides(query)).await?
        } else {
            // A signed URL is verified as the origin URL it was made for: on a host route, the
            // origin's root and the raw path as the client sent it.
            let url_text = match route.host {
                None => format!("{}?{query}", layout.object_url(raw_key)),
                Some(_) => format!("{}{path}?{query}", layout.origin()),
            };
            let url = RawUrl::parse(&url_text)?;
            self.fresh_url(&ask, Some((&url, &url_text)), &[]).await?
        };
        self.deliver(mode, &signed, rolls_at, &ask).await
    }

    /// `mode = "cookie"` without cookies: authorizes the caller for the key's whole
    /// directory, sets the directory's bucketed cookies and sends the client to `location`
    /// (the unsigned URL at the distribution).
    async fn issue_cookies(&self, ask: &Ask<'_>, location: &str) -> Result<Response<Body>, Error> {
        keypath::judge(ask.raw_key)?;
        let origin = &self.config.origins[ask.origin];
        let dir = cookies::directory_of(ask.raw_key);
        let audit = |decision, entry: Option<&Entry>| {
            let presented =
                entry.and_then(|e| crate::minter::cookie_evidence(&origin.signer, dir, e.url()));
            self.audit(
                (ask.principal, ask.client),
                ask.origin,
                dir,
                decision,
                entry.map(|e| e.expires_at),
                presented.as_deref(),
            );
        };
        if let Err(e) = self.may_open_prefix(
            ask,
            dir,
            Error::Unauthorized("signed cookies for this directory need credentials"),
        ) {
            if matches!(e, Error::Revoked) {
                audit(crate::audit::Decision::Revoked, None);
            }
            return Err(e);
        }
        let (entry, _) = self.minter.mint_cookies(ask.origin, dir, ask.now).await?;
        audit(crate::audit::Decision::Minted, Some(&entry));
        let location = HeaderValue::from_str(location)
            .map_err(|_| Error::BadRequest("the URL cannot be a Location".into()))?;
        let mut resp = Response::new(empty());
        *resp.status_mut() = StatusCode::FOUND;
        let h = resp.headers_mut();
        h.insert(header::LOCATION, location);
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
        set_cookies(h, &origin.signer, &entry, ask.now);
        Ok(resp)
    }

    /// A request that carries CloudFront cookies and no URL signature, on a host route of a
    /// CloudFront origin: the table of docs/http.md, for cookies. Genuine and valid → streamed
    /// with them; genuine and expired → the caller re-authorized (or `stale_grace`), fresh
    /// cookies set, streamed; forged, or a policy that does not cover the URL → refused,
    /// nothing fetched.
    async fn serve_with_cookies(
        &self,
        ask: &Ask<'_>,
        parsed: Result<cloudfront::Parsed<'_>, crate::sign::Error>,
        url_text: &str,
    ) -> Result<Response<Body>, Error> {
        let origin = &self.config.origins[ask.origin];
        let key = keypath::judge(ask.raw_key)?;
        let forged = |e: &crate::sign::Error| {
            if matches!(e, crate::sign::Error::InvalidSignature(_)) {
                self.metrics.url_verdict(UrlVerdict::Forged);
            }
        };
        let presented = sent_cookies(ask.headers);
        let audit = |decision, entry: Option<&Entry>| {
            let shown = match entry {
                Some(e) => crate::minter::cookie_evidence(&origin.signer, "", e.url()),
                None => crate::minter::cookie_evidence(&origin.signer, "", &presented),
            };
            self.audit(
                (ask.principal, ask.client),
                ask.origin,
                ask.raw_key,
                decision,
                entry.map(|e| e.expires_at),
                shown.as_deref(),
            );
        };
        let decided = async {
            let revoked = self.fleet.revocations();
            if !revoked.is_empty() && revoked.of_key(&origin.signer.name, &key, ask.now).is_some() {
                return Err(Error::Revoked);
            }
            let parsed = parsed.inspect_err(forged)?;
            let url = RawUrl::parse(url_text)?;
            let verified = origin
                .signer
                .verify_cookies(&url, &parsed)
                .inspect_err(forged)?;
            if let (Some(client), Some(range)) = (ask.fetched_for, verified.source_ip.as_deref())
                && !cloudfront::source_ip_admits(range, client)
            {
                return Err(Error::Forbidden(
                    "the cookies' policy does not admit this client's address",
                ));
            }
            let in_grace = match policy::verdict(
                verified.expires_at,
                verified.valid_from,
                ask.now,
                ask.stale_grace,
            ) {
                Verdict::NotYetValid => {
                    return Err(Error::InvalidSignature("the cookies are not valid yet"));
                }
                Verdict::Serve => return Ok(None),
                Verdict::RenewInGrace => true,
                Verdict::RenewForCaller => false,
            };
            let renewed = match verified.wildcard_prefix() {
                Some(prefix) => self.may_renew_wildcard(ask, &prefix, in_grace),
                None if in_grace => Ok(()),
                None => self.authorize(ask, true),
            };
            renewed.inspect_err(|_| self.metrics.url_verdict(UrlVerdict::ExpiredRefused))?;
            let (entry, _) =
                Box::pin(self.minter.resign_cookies(ask.origin, &verified, ask.now)).await?;
            self.metrics.url_verdict(UrlVerdict::Rescued);
            Ok(Some(entry))
        }
        .await;
        let entry = match decided {
            Ok(None) => {
                audit(crate::audit::Decision::Served, None);
                None
            }
            Ok(Some(entry)) => {
                audit(crate::audit::Decision::Rescued, Some(&entry));
                Some(entry)
            }
            Err(e) => {
                let decision = match e {
                    Error::Revoked => crate::audit::Decision::Revoked,
                    _ => crate::audit::Decision::Refused,
                };
                audit(decision, None);
                return Err(e);
            }
        };
        // The object itself is fetched unsigned, with the cookies that authorize it.
        let unsigned = url_text;
        let cookie = entry.as_ref().map_or(presented, |e| e.url().to_owned());
        let private = self.needs_credentials(ask);
        let mut resp = Box::pin(self.stream(
            origin,
            ask.raw_key,
            unsigned,
            ask.method,
            ask.headers,
            private,
            Some(&cookie),
        ))
        .await?;
        if let Some(entry) = &entry {
            set_cookies(resp.headers_mut(), &origin.signer, entry, ask.now);
        }
        Ok(resp)
    }

    /// The decision of docs/http.md (signed URLs on a route), with its audit line.
    /// Unsigned (`url` is `None`): the caller is authorized and a bucketed URL minted.
    /// Signed: verified; genuine and valid → the URL itself (a capability); genuine and
    /// expired → re-authorized (unless in `stale_grace`) and re-signed exactly; forged →
    /// `InvalidSignature`. Returns the URL and when the answer stops being cacheable.
    async fn fresh_url(
        &self,
        ask: &Ask<'_>,
        url: Option<(&RawUrl<'_>, &str)>,
        params: &[&str],
    ) -> Result<(Arc<Entry>, u64), Error> {
        let decided = self.decide(ask, url, params).await;
        if self.audit.is_some() {
            self.audit_decision(ask, url.map(|(_, text)| text), &decided);
        }
        decided
    }

    /// The audit line of a decision: a URL handed out, served or rescued, a signed URL
    /// refused, a revoked key. Other failures (origin errors, bad requests, an unsigned
    /// request refused) are not access decisions on a URL.
    fn audit_decision(
        &self,
        ask: &Ask<'_>,
        presented: Option<&str>,
        decided: &Result<(Arc<Entry>, u64), Error>,
    ) {
        use crate::audit::Decision;
        let (decision, expires_at, url) = match (decided, presented) {
            (Ok((e, _)), None) => (Decision::Minted, Some(e.expires_at), Some(e.url())),
            (Ok((e, _)), Some(p)) if e.url() == p => {
                (Decision::Served, Some(e.expires_at), Some(p))
            }
            (Ok((e, _)), Some(_)) => (Decision::Rescued, Some(e.expires_at), Some(e.url())),
            (Err(Error::Revoked), p) => (Decision::Revoked, None, p),
            (
                Err(
                    Error::InvalidSignature(_)
                    | Error::Expired
                    | Error::Unauthorized(_)
                    | Error::Forbidden(_),
                ),
                Some(p),
            ) => (Decision::Refused, None, Some(p)),
            _ => return,
        };
        self.audit(
            (ask.principal, ask.client),
            ask.origin,
            ask.raw_key,
            decision,
            expires_at,
            url,
        );
    }

    /// The decision itself (see [`App::fresh_url`]).
    async fn decide(
        &self,
        ask: &Ask<'_>,
        url: Option<(&RawUrl<'_>, &str)>,
        params: &[&str],
    ) -> Result<(Arc<Entry>, u64), Error> {
        let origin = &self.config.origins[ask.origin];
        // Judged before anything is verified, authorized or signed: a key that climbs above
        // its root is refused on every path.
        let key = keypath::judge(ask.raw_key)?;
        {
            let revoked = self.fleet.revocations();
            if !revoked.is_empty() && revoked.of_key(&origin.signer.name, &key, ask.now).is_some() {
                return Err(Error::Revoked);
            }
        }
        // A host route narrowed by its prefix serves only keys under it, in every form: its
        // `public/../acme/x` is acme's object wherever dot segments are resolved.
        if !key.all_start_with(ask.scope.as_bytes()) {
            return Err(Error::BadRequest(
                "the key's dot segments leave the route's prefix; such keys are not served".into(),
            ));
        }
        let Some((url, url_text)) = url else {
            self.authorize(ask, false)?;
            override_policy::check(params, ask.principal, self.needs_credentials(ask))?;
            return self
                .minter
                .mint(ask.origin, ask.raw_key, ask.method, params, ask.now)
                .await;
        };
        let header = |name: &str| ask.headers.get(name).and_then(|v| v.to_str().ok());
        let known = self.minter.live.known(ask.origin);
        let verified = origin
            .signer
            .verify_with(
                url,
                ask.method,
                header,
                known.as_deref().map_or(&[], Vec::as_slice),
            )
            .inspect_err(|e| {
                if matches!(e, crate::sign::Error::InvalidSignature(_)) {
                    self.metrics.url_verdict(UrlVerdict::Forged);
                }
            })?;
        if let Some(client) = ask.fetched_for
            && !verified.admits(client)
        {
            return Err(Error::Forbidden(
                "the URL's address condition does not admit this client's address",
            ));
        }
        let in_grace = match policy::verdict(
            verified.expires_at,
            verified.valid_from,
            ask.now,
            ask.stale_grace,
        ) {
            Verdict::NotYetValid => {
                return Err(Error::InvalidSignature("the URL is not valid yet"));
            }
            Verdict::Serve => {
                let signed = Signed {
                    url: url_text.to_owned(),
                    expires_at: verified.expires_at,
                };
                return Ok((Entry::uncached(signed), verified.expires_at));
            }
            Verdict::RenewInGrace => true,
            Verdict::RenewForCaller => {
                self.authorize(ask, true)
                    .inspect_err(|_| self.metrics.url_verdict(UrlVerdict::ExpiredRefused))?;
                false
            }
        };
        if let Some(prefix) = verified.wildcard_prefix() {
            self.may_renew_wildcard(ask, &prefix, in_grace)
                .inspect_err(|_| self.metrics.url_verdict(UrlVerdict::ExpiredRefused))?;
        }
        let renewed = Box::pin(self.minter.resign(ask.origin, &verified, url_text, ask.now)).await;
        if renewed.is_ok() {
            self.metrics.url_verdict(UrlVerdict::Rescued);
        }
        renewed
    }

    /// A wildcard policy re-signed keeps its wildcard, so it is renewed only inside this
    /// origin's own URLs (never `*` or `https://*`: a URL good for every distribution that
    /// trusts the key), and — unless the route is public or the wildcard lies under a public
    /// prefix — only for a caller who may read everything it covers, in `stale_grace` too.
    fn may_renew_wildcard(&self, ask: &Ask<'_>, prefix: &str, in_grace: bool) -> Result<(), Error> {
        let origin = &self.config.origins[ask.origin];
        let base = origin.signer.layout().base();
        let rel = prefix
            .strip_prefix(base.as_str())
            .ok_or(Error::Forbidden("the URL's policy covers other hosts"))?;
        let anonymous = if in_grace {
            Error::Unauthorized("renewing a wildcard policy needs credentials")
        } else {
            Error::Expired
        };
        self.may_open_prefix(ask, rel, anonymous)
    }

    /// Whether a grant over every key under `rel` (a raw key prefix of the origin) may be
    /// given to this caller: nothing under it revoked, and the route public over all of it,
    /// or it under a public prefix, or the caller may read all of it (`anonymous` is the
    /// error for a caller without credentials).
    fn may_open_prefix(&self, ask: &Ask<'_>, rel: &str, anonymous: Error) -> Result<(), Error> {
        let origin = &self.config.origins[ask.origin];
        let covered = keypath::judge_wildcard_prefix(rel)?;
        // Renewed, the wildcard opens every key it covers: none of them may be revoked.
        let revoked = self.fleet.revocations();
        if !revoked.is_empty()
            && revoked
                .under_wildcard(&origin.signer.name, &covered, ask.now)
                .is_some()
        {
            return Err(Error::Revoked);
        }
        // A public route is the whole origin's only without a host; a host route's prefix
        // may be a part of it.
        let public_route =
            ask.access == Access::Public && covered.all_start_with(ask.scope.as_bytes());
        if public_route || policy::under_any(&origin.public_prefixes, &covered) {
            return Ok(());
        }
        if !ask.principal.is_authenticated() {
            return Err(anonymous);
        }
        policy::may_read_prefix(ask.principal, rel)
    }

    /// Whether serving this key needed credentials (so its answers are private).
    fn needs_credentials(&self, ask: &Ask<'_>) -> bool {
        ask.access != Access::Public && !self.config.origins[ask.origin].is_public(ask.raw_key)
    }

    /// Whether the caller may read the key. Public routes and public prefixes need nothing;
    /// otherwise an anonymous caller of an expired URL hears "expired" (S3's wording).
    fn authorize(&self, ask: &Ask<'_>, expired: bool) -> Result<(), Error> {
        let origin = &self.config.origins[ask.origin];
        if ask.access == Access::Public || origin.is_public(ask.raw_key) {
            return Ok(());
        }
        if expired && *ask.principal == Principal::Anonymous {
            return Err(Error::Expired);
        }
        policy::may_read(ask.access, ask.principal, ask.raw_key)
    }

    /// Answers with a fresh (or still valid) URL by the route's mode (a cookie route's signed
    /// URLs as its stable links go: redirected, or streamed on a host route).
    async fn deliver(
        &self,
        mode: Mode,
        entry: &Entry,
        rolls_at: u64,
        ask: &Ask<'_>,
    ) -> Result<Response<Body>, Error> {
        let now = ask.now;
        match mode {
            Mode::Redirect | Mode::Cookie => {
                let max_age = rolls_at.min(entry.expires_at).saturating_sub(now).max(1);
                let location = entry
                    .location()
                    .cloned()
                    .ok_or_else(|| Error::Internal("unencodable Location".into()))?;
                let mut resp = Response::new(empty());
                *resp.status_mut() = StatusCode::FOUND;
                let h = resp.headers_mut();
                h.insert(header::LOCATION, location);
                h.insert(header::CACHE_CONTROL, private_max_age(max_age));
                Ok(resp)
            }
            Mode::Stream => {
                let origin = &self.config.origins[ask.origin];
                let private = self.needs_credentials(ask);
                let (key, url) = (ask.raw_key, entry.url());
                Box::pin(self.stream(origin, key, url, ask.method, ask.headers, private, None))
                    .await
            }
        }
    }

    /// Streams an object (a local origin's file directly, any other origin through the
    /// client), with the headers of [`harden`]: `private` when the caller needed
    /// credentials.
    #[allow(
        clippy::too_many_arguments,
        reason = "one fetch's parts: what, how, for whom, with which cookies"
    )]
    async fn stream(
        &self,
        origin: &Origin,
        raw_key: &str,
        url: &str,
        method: Method,
        headers: &HeaderMap,
        private: bool,
        cookie: Option<&str>,
    ) -> Result<Response<Body>, Error> {
        let mut resp = if let Kind::Local(local) = &origin.signer.kind {
            let path = local::resolve(&local.root, raw_key).await?;
            local::serve(&path, method, headers).await?
        } else {
            self.fetch(origin, url, method, headers, cookie).await?
        };
        harden(resp.headers_mut(), private);
        Ok(resp)
    }

    /// Fetches a signed URL from a remote origin and passes its answer on.
    async fn fetch(
        &self,
        origin: &Origin,
        url: &str,
        method: Method,
        headers: &HeaderMap,
        cookie: Option<&str>,
    ) -> Result<Response<Body>, Error> {
        let name = &origin.signer.name;
        let via = origin.signer.fetched_from();
        let upstream = self
            .origin
            .fetch(name, method, url, via, headers, cookie)
            .await?;
        let status = upstream.status();
        // docs/http.md, stream mode and origin errors: the status is kept, the origin's error
        // body (bucket names, request ids, hosts) never reaches the client.
        let named = |what: &str| format!("origin {name} answered {status} {what}");
        match status.as_u16() {
            200 | 206 | 304 => {}
            404 => return Err(Error::NotFound),
            412 => return Err(Error::PreconditionFailed),
            416 => {
                let content_range = upstream
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                return Err(Error::RangeNotSatisfiable { content_range });
            }
            400..=499 => {
                let said = OriginClient::error_summary(upstream.into_body()).await;
                return Err(Error::OriginRejected(named(&format!(
                    "to a URL edgesign signed or verified{}",
                    said.map(|s| format!(" ({s})")).unwrap_or_default()
                ))));
            }
            _ => {
                let said = OriginClient::error_summary(upstream.into_body()).await;
                return Err(Error::OriginUnavailable(named(
                    &said.map(|s| format!("({s})")).unwrap_or_default(),
                )));
            }
        }
        let (up, body) = upstream.into_parts();
        let mut resp = Response::new(
            if method == Method::Head || status == StatusCode::NOT_MODIFIED {
                empty()
            } else {
                let (metrics, name) = (self.metrics.clone(), name.clone());
                body.map_err(move |e| -> BoxError {
                    metrics.origin_error(&name, "body");
                    Box::new(e)
                })
                .boxed_unsync()
            },
        );
        *resp.status_mut() = status;
        for name in &PASSED_RESPONSE_HEADERS {
            for v in up.headers.get_all(name) {
                resp.headers_mut().append(name.clone(), v.clone());
            }
        }
        Ok(resp)
    }

    /// `/proxy/file?presigned_url=`: only URLs of configured origins, matched exactly.
    async fn proxy_file(
        &self,
        parts: &http::request::Parts,
        cx: &Cx,
    ) -> Result<Response<Body>, Error> {
        let method = request_method(&parts.method)?;
        let query = parts.uri.query().unwrap_or("");
        let raw = query_segments(query)
            .filter_map(|s| s.strip_prefix("presigned_url="))
            .next()
            .ok_or_else(|| {
                Error::BadRequest("the presigned_url query parameter is required".into())
            })?;
        let decoded = percent_decode(&raw.replace('+', " ")).into_owned();
        let text = String::from_utf8(decoded).map_err(|_| Error::ForbiddenOrigin)?;
        let url = RawUrl::parse(&text).map_err(|_| Error::ForbiddenOrigin)?;
        let (origin_idx, origin, raw_key) =
            origins::by_url(&self.config.origins, &url).ok_or(Error::ForbiddenOrigin)?;
        // Send exactly what matched, rebuilt from its parts: no parser differential.
        let exact = if url.query.is_empty() {
            format!("{}{}", url.origin(), url.path)
        } else {
            format!("{}{}?{}", url.origin(), url.path, url.query)
        };
        let ask = Ask {
            principal: &cx.principal,
            origin: origin_idx,
            raw_key,
            method,
            access: Access::Org,
            stale_grace: 0,
            headers: &parts.headers,
            now: cx.now,
            fetched_for: Some(cx.ip),
            client: cx.ip,
            scope: "",
        };
        let (signed, _) = if Scheme::of_query(url.query) == Scheme::Unsigned {
            self.fresh_url(&ask, None, &overrides(url.query)).await?
        } else {
            self.fresh_url(&ask, Some((&url, &exact)), &[]).await?
        };
        let private = self.needs_credentials(&ask);
        let url = signed.url();
        self.stream(origin, raw_key, url, method, &parts.headers, private, None)
            .await
    }

    /// `/_origin/<name>/<key>`: a local origin's file, under a genuine, unexpired signature.
    async fn serve_local(
        &self,
        parts: &http::request::Parts,
        cx: &Cx,
    ) -> Result<Response<Body>, Error> {
        let method = request_method(&parts.method)?;
        let rest = &parts.uri.path()[native::PATH_PREFIX.len()..];
        let (name, _) = rest.split_once('/').ok_or(Error::NotFound)?;
        let (idx, origin) = origins::by_name(&self.config.origins, name).ok_or(Error::NotFound)?;
        let Kind::Local(local) = &origin.signer.kind else {
            return Err(Error::NotFound);
        };
        let query = parts.uri.query().unwrap_or("");
        let url_text = format!(
            "{}{}?{query}",
            self.config.server.public_url,
            parts.uri.path()
        );
        let url = RawUrl::parse(&url_text)?;
        let verified = origin
            .signer
            .verify(&url, method, |_| None)
            .inspect_err(|e| {
                if matches!(e, crate::sign::Error::InvalidSignature(_)) {
                    self.metrics.url_verdict(UrlVerdict::Forged);
                }
            })?;
        if let Err(e) = self.check_revoked(idx, verified.raw_key, cx.now) {
            self.audit(
                (&cx.principal, cx.ip),
                idx,
                verified.raw_key,
                crate::audit::Decision::Revoked,
                None,
                Some(&url_text),
            );
            return Err(e);
        }
        if cx.now >= verified.expires_at {
            // A stale link is rescued like any stale URL (docs/http.md): the caller is
            // re-authorized as on an org route (anonymous callers of a non-public key: 401),
            // then sent to a fresh link.
            let ask = Ask {
                principal: &cx.principal,
                origin: idx,
                raw_key: verified.raw_key,
                method,
                access: Access::Org,
                stale_grace: 0,
                headers: &parts.headers,
                now: cx.now,
                fetched_for: None,
                client: cx.ip,
                scope: "",
            };
            let (entry, rolls_at) =
                Box::pin(self.fresh_url(&ask, Some((&url, &url_text)), &[])).await?;
            return self.deliver(Mode::Redirect, &entry, rolls_at, &ask).await;
        }
        self.audit(
            (&cx.principal, cx.ip),
            idx,
            verified.raw_key,
            crate::audit::Decision::Served,
            Some(verified.expires_at),
            Some(&url_text),
        );
        let path = local::resolve(&local.root, verified.raw_key).await?;
        let mut resp = local::serve(&path, method, &parts.headers).await?;
        // A link to /_origin/ is a capability: whoever holds it may fetch it, like a CDN URL.
        harden(resp.headers_mut(), false);
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn private_max_age_spells_every_number() {
        // Repeats and returns: the thread's last value is reused only for the same number.
        for n in [0u64, 7, 7, 10, 900, 900, 7, 3599, u64::MAX, 0] {
            assert_eq!(
                super::private_max_age(n).to_str().ok(),
                Some(format!("private, max-age={n}").as_str())
            );
        }
    }
}
