//! The integration tests' one support module: [`vectors`] (the vendors' test vectors and
//! origins built from them), the Python oracles beside this file (botocore), and the
//! in-process test rig: a real S3-compatible origin (s3s + s3s-fs, which verifies presigned
//! signatures and expiry), the proxy on `127.0.0.1:0`, and a raw HTTP client that sends
//! paths exactly as written.
#![allow(dead_code, reason = "each test crate uses a different subset")]
#![allow(
    unreachable_pub,
    reason = "a private module of each test crate, used as a library"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

pub mod scratch;
pub mod vectors;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use edgesign::app::App;
use edgesign::config::Config;
use edgesign::server::{self, Listeners, Running};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// The AWS documentation keys; the origin accepts only these.
pub const AK: &str = "AKIAIOSFODNN7EXAMPLE";
/// Secret of [`AK`].
pub const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// The bucket every test uses.
pub const BUCKET: &str = "test-bucket";
/// A secret API key and its org.
pub const SK_ACME: &str = "sk_test_acme_0123456789";
/// A secret API key with no org.
pub const SK_ADMIN: &str = "sk_test_admin_0123456789";

/// A fresh temporary directory (see [`scratch`]).
pub fn tempdir(tag: &str) -> PathBuf {
    scratch::dir(tag)
}

/// A running s3s-fs origin.
pub struct S3Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data directory; `root/<bucket>/<key>` are the objects.
    pub root: PathBuf,
    /// `Host` and request target of every request that reached it, in order.
    pub seen: Arc<std::sync::Mutex<Vec<String>>>,
}

impl S3Origin {
    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests that reached it so far, as `http://<Host><path>?<query>`.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    /// Writes an object.
    pub fn put(&self, key: &str, body: &[u8]) {
        let path = self.root.join(BUCKET).join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
}

/// Starts s3s + s3s-fs over a fresh directory holding the test bucket (path-style).
pub async fn s3_origin() -> S3Origin {
    start_s3(false).await
}

/// Starts s3s + s3s-fs addressed virtual-host style: the bucket is
/// `<bucket>.localhost:<port>` (which edgesign resolves to loopback, RFC 6761).
pub async fn s3_origin_virtual_host() -> S3Origin {
    start_s3(true).await
}

async fn start_s3(virtual_host: bool) -> S3Origin {
    start_s3_with(virtual_host, s3s::auth::SimpleAuth::from_single(AK, SK)).await
}

/// Starts s3s + s3s-fs (path-style) whose keys `auth` knows: for credentials that a
/// stand-in credential service hands out while the test runs.
pub async fn s3_origin_with_auth(auth: impl s3s::auth::S3Auth) -> S3Origin {
    start_s3_with(false, auth).await
}

async fn start_s3_with(virtual_host: bool, auth: impl s3s::auth::S3Auth) -> S3Origin {
    use s3s::service::S3ServiceBuilder;
    let root = tempdir("s3");
    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fs = s3s_fs::FileSystem::new(&root).unwrap();
    let mut b = S3ServiceBuilder::new(fs);
    b.set_auth(auth);
    if virtual_host {
        b.set_host(s3s::host::SingleDomain::new(&format!("localhost:{}", addr.port())).unwrap());
    }
    let service = b.build();
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let _ = sock.set_nodelay(true);
            let (svc, log) = (service.clone(), log.clone());
            let recorded =
                hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let host = req
                        .headers()
                        .get(http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let target = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("");
                    log.lock().unwrap().push(format!("http://{host}{target}"));
                    let svc = svc.clone();
                    async move { hyper::service::Service::call(&svc, req).await }
                });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), recorded)
                    .await;
            });
        }
    });
    S3Origin { addr, root, seen }
}

/// A running proxy.
pub struct Proxy {
    /// The server handle (its `app` holds config, cache and counters).
    pub running: Running,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The directory its config lives in.
    pub dir: PathBuf,
}

impl Proxy {
    /// The app behind it.
    pub fn app(&self) -> Arc<App> {
        self.running.app()
    }
}

/// The `[[auth.api_keys]]` block for [`SK_ACME`] (org acme) and [`SK_ADMIN`] (no org).
pub fn api_keys_toml() -> String {
    let h = |k: &str| hex::encode(edgesign::auth::api_key::hash(k));
    format!(
        "[[auth.api_keys]]\nsha256 = \"{}\"\nkind = \"secret\"\norg = \"acme\"\n[[auth.api_keys]]\nsha256 = \"{}\"\nkind = \"secret\"\n",
        h(SK_ACME),
        h(SK_ADMIN)
    )
}

/// An S3 origin block named `docs` for `origin`.
pub fn s3_origin_toml(origin: &S3Origin, ttl: &str) -> String {
    format!(
        "[[origins]]\nname = \"docs\"\nkind = \"s3\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"{BUCKET}\"\npath_style = true\nttl = \"{ttl}\"\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n",
        origin.endpoint()
    )
}

/// Starts the proxy. `body` is the config after `[server]`; `{dir}` in it becomes the
/// config's directory. Plain listener only unless `tls` (then `server.tls_*` are set).
pub async fn proxy(body: &str, tls: bool) -> Proxy {
    proxy_with(body, tls, "").await
}

/// [`proxy`] with extra `[server]` keys.
pub async fn proxy_with(body: &str, tls: bool, server_extra: &str) -> Proxy {
    let dir = tempdir("proxy");
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = http.local_addr().unwrap().port();
    let https = tls.then(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs");
    let tls_toml = match &https {
        Some(l) => format!(
            "tls_listen = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            l.local_addr().unwrap(),
            certs.join("dev.crt").display(),
            certs.join("dev.key").display()
        ),
        None => String::new(),
    };
    // Tests that do not test rate limiting must not trip over it.
    let limits = if body.contains("[rate_limit]") {
        ""
    } else {
        "[rate_limit]\nper_second = 1000000\nburst = 1000000\n"
    };
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n{server_extra}\n{tls_toml}\n{limits}{}",
        body.replace("{dir}", &dir.display().to_string())
    );
    std::fs::write(dir.join("config.toml"), &text).unwrap();
    let config =
        Config::parse(&text, &dir, &|_| None).unwrap_or_else(|e| panic!("config:\n{e}\n{text}"));
    let tls_cfg = config
        .server
        .tls
        .as_ref()
        .map(|t| edgesign::tls::server_config(t).unwrap());
    let listeners = Listeners {
        http,
        https: https.zip(tls_cfg),
    };
    let running = server::serve(App::new(config).unwrap(), listeners).unwrap();
    Proxy {
        running,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    }
}

/// A response, body collected.
#[derive(Debug)]
pub struct Got {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// HTTP version.
    pub version: http::Version,
}

impl Got {
    /// A header as text.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {:?}", self.body))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Sends `method url` (the path and query exactly as written) with `headers`.
pub async fn send(method: &str, url: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client()
        .request(req.body(Empty::new()).unwrap())
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e:?}"));
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        body,
        version: parts.version,
    }
}

/// `GET url`.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> Got {
    send("GET", url, headers).await
}

/// A presigned URL minted by botocore itself (python3 + boto3), clock frozen at `at`
/// (`YYYYMMDDTHHMMSSZ`). The independent oracle for stale-URL rescue.
pub fn botocore_presign(endpoint: &str, key: &str, at: &str, expires: u64) -> String {
    botocore_presign_with(endpoint, key, at, expires, "path", None)
}

/// [`botocore_presign`] with an addressing `style` (`path` | `virtual`) and an optional
/// `ResponseContentDisposition`.
pub fn botocore_presign_with(
    endpoint: &str,
    key: &str,
    at: &str,
    expires: u64,
    style: &str,
    disposition: Option<&str>,
) -> String {
    let mut args: Vec<String> = [
        endpoint,
        BUCKET,
        key,
        at,
        &expires.to_string(),
        AK,
        SK,
        style,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(disposition.map(str::to_owned));
    python("botocore_presign.py", &args)
}

/// `url` signed by botocore's own `S3SigV4QueryAuth` at `at` for `expires` seconds, its raw
/// path and every non-auth parameter kept: URLs with extra parameters (the AWS JS SDK's),
/// and the oracle that re-derives a re-signed URL's signature.
pub fn botocore_sign(url: &str, at: &str, expires: u64) -> String {
    let args = [url, at, &expires.to_string(), AK, SK].map(str::to_owned);
    python("botocore_sign.py", &args)
}

/// Runs `tests/support/<script>` with python3 and returns its stdout, trimmed.
pub fn python(script: &str, args: &[String]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(script);
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .expect("python3 (tests/requirements.txt is installed by .ci/run)");
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The value of query parameter `name` in `url`, raw.
pub fn query_param<'u>(url: &'u str, name: &str) -> Option<&'u str> {
    url.split_once('?')?
        .1
        .split('&')
        .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
}

/// The path and query of an absolute URL (what a client sends to a proxy route).
pub fn path_and_query(url: &str) -> &str {
    let after = url.split_once("://").unwrap().1;
    &after[after.find('/').unwrap()..]
}

/// An origin on `127.0.0.1:0` that accepts connections and never answers (nor closes them).
pub async fn silent_origin() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    addr
}

/// A stand-in HTTP server on `127.0.0.1:0` answering every request with `answer`; for
/// behaviour no real origin here has (conditional GETs on s3s-fs, redirects).
pub async fn serve_fn<F>(answer: F) -> SocketAddr
where
    F: Fn(&http::request::Parts) -> http::Response<http_body_util::Full<Bytes>>
        + Clone
        + Send
        + Sync
        + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let answer = answer.clone();
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let resp = answer(&req.into_parts().0);
                    async move { Ok::<_, std::convert::Infallible>(resp) }
                });
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    addr
}

/// The built `edgesign` binary serving a config file, stderr captured to a file.
pub struct Spawned {
    /// The process.
    pub child: std::process::Child,
    /// `http://127.0.0.1:<port>` of the plain listener.
    pub base: String,
    /// `127.0.0.1:<port>` of the TLS listener, when configured.
    pub https: Option<String>,
    /// Where its stderr (the logs) goes.
    pub log: PathBuf,
}

impl Spawned {
    /// Starts `edgesign --config config` with `env` and waits for its listening line(s).
    pub fn start(config: &Path, tls: bool, env: &[(&str, &str)]) -> Spawned {
        use std::io::BufRead;
        static N: AtomicUsize = AtomicUsize::new(0);
        let log = config.with_extension(format!("{}.log", N.fetch_add(1, Ordering::Relaxed)));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_edgesign"))
            .arg("--config")
            .arg(config)
            .envs(env.iter().copied())
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut next = || {
            let mut line = String::new();
            out.read_line(&mut line).unwrap();
            line.trim()
                .strip_prefix("edgesign listening on ")
                .unwrap_or_else(|| {
                    panic!(
                        "unexpected {line:?}; log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    )
                })
                .to_owned()
        };
        let base = next();
        let https = tls.then(|| next().trim_start_matches("https://").to_owned());
        Spawned {
            child,
            base,
            https,
            log,
        }
    }

    /// Sends a signal (`TERM`, `HUP`, …).
    pub fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (polling, up to `within`) until the log holds `needle`.
    pub async fn wait_for_log(&self, needle: &str, within: std::time::Duration) -> bool {
        let deadline = edgesign::clock::instant() + within;
        while edgesign::clock::instant() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self.log().contains(needle)
    }

    /// Waits up to `within` for the process to exit.
    pub async fn wait_exit(
        &mut self,
        within: std::time::Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = edgesign::clock::instant() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if edgesign::clock::instant() >= deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the built binary on a free port with `[server]` `listen` and then `body` as its
/// config, `env` in its environment.
pub fn spawn_with(tag: &str, body: &str, env: &[(&str, &str)]) -> Spawned {
    let dir = tempdir(tag);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\n{body}"),
    )
    .unwrap();
    Spawned::start(&config, false, env)
}

/// Parsed Prometheus text: `name{labels}` (labels as printed) → value.
pub fn parse_metrics(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {l:?}"));
            (series.to_owned(), value)
        })
        .collect()
}

/// A metric from `GET base/metrics`, 0 when the series does not exist yet.
pub async fn metric(base: &str, series: &str) -> f64 {
    let got = get(&format!("{base}/metrics"), &[]).await;
    assert_eq!(got.status, 200);
    parse_metrics(&got.text())
        .get(series)
        .copied()
        .unwrap_or(0.0)
}

/// `POST url` with a JSON `body`.
pub async fn post(url: &str, body: &str, headers: &[(&str, &str)]) -> Got {
    let mut req = http::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let resp = client
        .request(
            req.body(http_body_util::Full::new(bytes::Bytes::from(
                body.to_owned(),
            )))
            .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = resp.into_parts();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
        version: parts.version,
    }
}

/// An HS256 JWT over `header` and `claims`.
pub fn jwt_hs256(secret: &[u8], header: serde_json::Value, claims: serde_json::Value) -> String {
    use base64::Engine as _;
    let h = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header.to_string());
    let c = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(secret).unwrap();
    hmac::Mac::update(&mut mac, format!("{h}.{c}").as_bytes());
    format!(
        "{h}.{c}.{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(hmac::Mac::finalize(mac).into_bytes())
    )
}

/// `redis-server` on a free 127.0.0.1 port, nothing persisted, stopped by PID.
pub struct Redis {
    child: std::process::Child,
    /// Its port.
    pub port: u16,
}

impl Redis {
    /// Starts one (on `port`, or a free one).
    pub fn start(port: Option<u16>) -> Redis {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let dir = tempdir("redis");
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install -y redis-server)");
        let deadline = edgesign::clock::instant() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                edgesign::clock::instant() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Redis { child, port }
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Redis {
    /// How many times Redis ran a script (`EVAL` and `EVALSHA`, less the `EVALSHA`s that
    /// found no script), from `INFO commandstats`.
    pub fn script_calls(&self) -> u64 {
        let out = std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["info", "commandstats"])
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("cmdstat_eval:") || l.starts_with("cmdstat_evalsha:"))
            .filter_map(|l| {
                l.split("calls=")
                    .nth(1)?
                    .split(',')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }

    /// The keys whose names start with `prefix` (through `redis-cli`).
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let out = std::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["--scan", "--pattern", &format!("{prefix}*")])
            .output()
            .expect("redis-cli");
        assert!(out.status.success(), "redis-cli failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
