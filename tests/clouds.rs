//! GCS and Azure origins configured as docs/config.md tells a user to, against real parts:
//!
//! - **Azure**: Azurite 3.35.0 (Microsoft's emulator, which verifies SAS signatures and
//!   expiry itself), blobs uploaded and stale SAS URLs minted by `azure-storage-blob`.
//! - **GCS**: no offline server verifies GCS signatures, so URLs are checked against
//!   `google-cloud-storage`'s own (clock frozen), and served by `support/gcs_origin.py`, a
//!   stand-in written from Google's documentation that verifies RSA signatures with the
//!   service account's *public* key and HMAC signatures by the documented derivation.
//!
//! Both are driven the ways a client would: stable links (redirect and stream), a host route
//! that takes over the store's own name (stale URLs rescued exactly, forged ones refused
//! before anything reaches the store), `/proxy/file` and `/v1/sign`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn now() -> u64 {
    edgesign::clock::unix_secs(edgesign::clock::now())
}

fn stamp(unix: u64) -> String {
    String::from_utf8(edgesign::sign::encoding::amz_date(unix).to_vec()).unwrap()
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// `GET|HEAD http://<edge><path_and_query>` with `Host: host` and optional credentials.
async fn to_edge(
    method: &str,
    edge: &Proxy,
    host: &str,
    path_and_query: &str,
    auth: Option<&str>,
    range: Option<&str>,
) -> Got {
    let url = format!("{}{path_and_query}", edge.base);
    let auth = auth.map(bearer);
    let mut headers = vec![("host", host)];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    if let Some(r) = range {
        headers.push(("range", r));
    }
    send(method, &url, &headers).await
}

fn without_query(url: &str) -> &str {
    url.split_once('?').map_or(url, |(u, _)| u)
}

/// `POST /v1/sign` for `key` of `origin` as acme: the URL handed out.
async fn v1_sign(proxy: &Proxy, origin: &str, key: &str) -> String {
    let signed = post(
        &format!("{}/v1/sign", proxy.base),
        &serde_json::json!({"origin": origin, "key": key}).to_string(),
        &[("authorization", &bearer(SK_ACME))],
    )
    .await;
    assert_eq!(signed.status, 200, "{}", signed.text());
    signed.json()["url"].as_str().unwrap().to_owned()
}

/// `GET /proxy/file?presigned_url=<url>` as acme.
async fn proxy_file(proxy: &Proxy, url: &str) -> Got {
    get(
        &format!(
            "{}/proxy/file?presigned_url={}",
            proxy.base,
            edgesign::sign::encoding::uri_encode(url.as_bytes(), false)
        ),
        &[("authorization", &bearer(SK_ACME))],
    )
    .await
}

/// A body long enough for ranges to mean something.
fn content(tag: &str) -> Vec<u8> {
    let mut body = format!("content of {tag}\n").into_bytes();
    while body.len() < 4096 {
        body.extend_from_slice(b"0123456789abcdef");
    }
    body
}

/// 200 with `body`, 206 with its first ten bytes, and a HEAD with its length: the three
/// ways a client reads an object.
async fn reads_like_the_object(
    what: &str,
    get_with: impl AsyncFn(&str, Option<&str>) -> Got,
    body: &[u8],
) {
    reads_with_get(what, &get_with, body).await;
    reads_head(what, &get_with, body).await;
}

/// [`reads_like_the_object`] for GET and a range only (a URL signed for GET, where the
/// method is signed).
async fn reads_with_get(
    what: &str,
    get_with: &impl AsyncFn(&str, Option<&str>) -> Got,
    body: &[u8],
) {
    let full = get_with("GET", None).await;
    assert_eq!(full.status, 200, "{what}: {}", full.text());
    assert_eq!(&full.body[..], body, "{what}: the object's bytes");
    let part = get_with("GET", Some("bytes=0-9")).await;
    assert_eq!(part.status, 206, "{what} range: {}", part.text());
    assert_eq!(&part.body[..], &body[..10], "{what}: the first ten bytes");
    assert_eq!(
        part.header("content-range"),
        format!("bytes 0-9/{}", body.len()),
        "{what}"
    );
}

async fn reads_head(what: &str, get_with: &impl AsyncFn(&str, Option<&str>) -> Got, body: &[u8]) {
    let head = get_with("HEAD", None).await;
    assert_eq!(head.status, 200, "{what} HEAD");
    assert_eq!(
        head.header("content-length"),
        body.len().to_string(),
        "{what} HEAD"
    );
    assert!(head.body.is_empty(), "{what}: HEAD has no body");
}

// ---------------------------------------------------------------------------------------
// GCS
// ---------------------------------------------------------------------------------------

/// The HMAC key of tests/vectors/gcs_hmac_by_hand.json (made up, the shape of a real one).
const HMAC_ID: &str = "GOOG1EXAMPLEEDGESIGNHMACKEY0123456789ABCDEFGHIJKLMNOPQRSTUV";
const HMAC_SECRET: &str = "bGoa+V7g/yqDXvKRqq+JTFn4uQZbPiQJo4pf9RzJ";
const GCS_BUCKET: &str = "media";

/// `support/gcs_origin.py` on a free port, stopped by PID.
struct GcsOrigin {
    child: std::process::Child,
    port: u16,
    root: PathBuf,
    seen: PathBuf,
}

impl GcsOrigin {
    fn start() -> GcsOrigin {
        let root = tempdir("gcs-origin");
        let seen = root.join("seen.log");
        std::fs::write(&seen, "").unwrap();
        let mut child = std::process::Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/gcs_origin.py"))
            .arg(root.join("objects"))
            .arg(vectors().join("gcs_dummy_service_account.json"))
            .args([HMAC_ID, HMAC_SECRET])
            .arg(&seen)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 with cryptography (tests/requirements.txt)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("gcs_origin.py did not start: {line:?}"));
        GcsOrigin {
            child,
            port,
            root,
            seen,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn put(&self, key: &str, body: &[u8]) {
        let path = self.root.join("objects").join(GCS_BUCKET).join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }

    /// Every request the origin received, path and query as sent.
    fn seen(&self) -> Vec<String> {
        std::fs::read_to_string(&self.seen)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for GcsOrigin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// google-cloud-storage's own V4 URL (GOOG4-RSA-SHA256) at `at`, path style on `endpoint`.
fn gcs_sdk_url(method: &str, endpoint: &str, key: &str, at: &str, expires: u64) -> String {
    let args = [
        vectors()
            .join("gcs_dummy_service_account.json")
            .display()
            .to_string(),
        method.to_owned(),
        endpoint.to_owned(),
        GCS_BUCKET.to_owned(),
        key.to_owned(),
        at.to_owned(),
        expires.to_string(),
    ];
    python("gcs_sign.py", &args)
}

/// What google-cloud-storage signs for the URL that reached the origin (its own
/// `X-Goog-Date` and `X-Goog-Expires`), as the origin heard it.
fn assert_sdk_rederives(endpoint: &str, seen: &str, key: &str) {
    let at = query_param(seen, "X-Goog-Date").unwrap();
    let expires: u64 = query_param(seen, "X-Goog-Expires")
        .unwrap()
        .parse()
        .unwrap();
    let again = gcs_sdk_url("GET", endpoint, key, at, expires);
    assert_eq!(
        format!("{endpoint}{seen}"),
        again,
        "google-cloud-storage signs that URL differently"
    );
}

fn gcs_config(origin: &GcsOrigin) -> String {
    let endpoint = origin.endpoint();
    let sa = vectors().join("gcs_dummy_service_account.json");
    format!(
        r#"
[[origins]]
name = "media"
kind = "gcs"
endpoint = "{endpoint}"
bucket = "{GCS_BUCKET}"
ttl = "1h"
[[origins.keys]]
service_account_file = "{sa}"
[[origins.keys]]
access_id = "{HMAC_ID}"
secret = "{HMAC_SECRET}"

[[origins]]
name = "media-hmac"
kind = "gcs"
endpoint = "{endpoint}"
bucket = "{GCS_BUCKET}"
ttl = "1h"
[[origins.keys]]
access_id = "{HMAC_ID}"
secret = "{HMAC_SECRET}"

[[routes]]
prefix = "/files/"
origin = "media"
mode = "redirect"
access = "org"

[[routes]]
prefix = "/stream/"
origin = "media"
mode = "stream"
access = "org"

[[routes]]
prefix = "/hmac/"
origin = "media-hmac"
mode = "redirect"
access = "org"

[[routes]]
host = "127.0.0.1:{port}"
prefix = "/"
origin = "media"
mode = "stream"
access = "org"

[auth]
{keys}"#,
        sa = sa.display(),
        port = origin.port,
        keys = api_keys_toml()
    )
}

const GCS_KEY: &str = "acme/ünï cödé+report.txt";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcs_links_are_google_cloud_storage_s_own_urls_and_verify_with_the_public_key() {
    let origin = GcsOrigin::start();
    let body = content(GCS_KEY);
    origin.put(GCS_KEY, &body);
    let proxy = proxy(&gcs_config(&origin), false).await;
    let raw = edgesign::sign::signer::raw_key_of(GCS_KEY);
    let acme = bearer(SK_ACME);

    // Redirect: the Location is exactly what google-cloud-storage signs for that instant and
    // lifetime, and the origin (public key) accepts it for GET, a range and HEAD.
    let located = async |method: &str| {
        let got = send(
            method,
            &format!("{}/files/{raw}", proxy.base),
            &[("authorization", &acme)],
        )
        .await;
        assert_eq!(got.status, 302, "{method}: {}", got.text());
        got.header("location").to_owned()
    };
    let loc = located("GET").await;
    assert!(
        loc.starts_with(&format!("{}/{GCS_BUCKET}/", origin.endpoint())),
        "{loc}"
    );
    assert_eq!(
        query_param(&loc, "X-Goog-Algorithm"),
        Some("GOOG4-RSA-SHA256")
    );
    let at = query_param(&loc, "X-Goog-Date").unwrap();
    assert_eq!(query_param(&loc, "X-Goog-Expires"), Some("3600"));
    assert_eq!(
        loc,
        gcs_sdk_url("GET", &origin.endpoint(), GCS_KEY, at, 3600),
        "google-cloud-storage mints another URL"
    );
    // The stand-in verifies: one flipped hex digit of the signature and it refuses.
    let sig = query_param(&loc, "X-Goog-Signature").unwrap();
    let flipped = format!(
        "{}{}",
        &sig[..sig.len() - 1],
        if sig.ends_with('0') { '1' } else { '0' }
    );
    let refused = get(&loc.replace(sig, &flipped), &[]).await;
    assert_eq!(
        refused.status, 403,
        "the GCS stand-in must verify signatures"
    );
    let head_loc = located("HEAD").await;
    assert_eq!(
        head_loc,
        gcs_sdk_url("HEAD", &origin.endpoint(), GCS_KEY, at, 3600),
        "a HEAD link is signed for HEAD"
    );
    reads_like_the_object(
        "minted URL at the origin",
        async |method, range| {
            let url = if method == "HEAD" { &head_loc } else { &loc };
            let range: Vec<(&str, &str)> = range.map(|r| ("range", r)).into_iter().collect();
            send(method, url, &range).await
        },
        &body,
    )
    .await;

    // /v1/sign hands out the same (bucketed, cached) URL.
    assert_eq!(v1_sign(&proxy, "media", GCS_KEY).await, loc);

    // An HMAC key signs GOOG4-HMAC-SHA256 URLs the origin accepts (the documented derivation).
    let got = get(
        &format!("{}/hmac/{raw}", proxy.base),
        &[("authorization", &acme)],
    )
    .await;
    assert_eq!(got.status, 302, "{}", got.text());
    let hmac_loc = got.header("location").to_owned();
    assert_eq!(
        query_param(&hmac_loc, "X-Goog-Algorithm"),
        Some("GOOG4-HMAC-SHA256")
    );
    let at_origin = get(&hmac_loc, &[]).await;
    assert_eq!(at_origin.status, 200, "{}", at_origin.text());
    assert_eq!(&at_origin.body[..], &body[..]);

    // Stream: the proxy fetches with a URL the origin verifies.
    reads_like_the_object(
        "stream route",
        async |method, range| {
            let mut headers = vec![("authorization", acme.as_str())];
            headers.extend(range.map(|r| ("range", r)));
            send(method, &format!("{}/stream/{raw}", proxy.base), &headers).await
        },
        &body,
    )
    .await;
    let last = origin.seen().last().unwrap().clone();
    assert_eq!(without_query(&last), format!("/{GCS_BUCKET}/{raw}"));

    // Another org's object: refused, nothing minted.
    let other = get(
        &format!("{}/files/other/x.txt", proxy.base),
        &[("authorization", &acme)],
    )
    .await;
    assert_eq!(other.status, 403, "{}", other.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_gcs_urls_are_rescued_exactly_through_a_host_route_and_forged_ones_refused() {
    let origin = GcsOrigin::start();
    let body = content(GCS_KEY);
    origin.put(GCS_KEY, &body);
    let proxy = proxy(&gcs_config(&origin), false).await;
    let endpoint = origin.endpoint();
    let host = format!("127.0.0.1:{}", origin.port);

    // A URL an old client holds: minted by google-cloud-storage long ago, for a minute. The
    // origin itself refuses it.
    let stale = gcs_sdk_url("GET", &endpoint, GCS_KEY, "20200101T000000Z", 60);
    assert_eq!(get(&stale, &[]).await.status, 400, "the store refuses it");
    let stale_path = path_and_query(&stale);

    // With credentials: re-signed for the same host and raw path, and streamed; the URL
    // that reached the store is exactly google-cloud-storage's for its instant.
    reads_with_get(
        "rescued",
        &async |method, range| {
            to_edge(method, &proxy, &host, stale_path, Some(SK_ACME), range).await
        },
        &body,
    )
    .await;
    let reached = origin.seen().last().unwrap().clone();
    assert_eq!(without_query(&reached), without_query(stale_path));
    assert_ne!(
        query_param(&reached, "X-Goog-Date"),
        Some("20200101T000000Z")
    );
    assert_sdk_rederives(&endpoint, &reached, GCS_KEY);
    // The method is signed: a stale HEAD URL is rescued as a HEAD.
    let stale_head = gcs_sdk_url("HEAD", &endpoint, GCS_KEY, "20200101T000000Z", 60);
    reads_head(
        "rescued HEAD",
        &async |method, _| {
            to_edge(
                method,
                &proxy,
                &host,
                path_and_query(&stale_head),
                Some(SK_ACME),
                None,
            )
            .await
        },
        &body,
    )
    .await;

    // Without credentials: no rescue, and the store hears nothing.
    let before = origin.seen().len();
    let anon = to_edge("GET", &proxy, &host, stale_path, None, None).await;
    assert_eq!(anon.status, 401, "{}", anon.text());
    assert_eq!(anon.json()["code"], "unauthorized");

    // Forged: a flipped signature digit, another object, a longer lifetime, a foreign
    // credential. Refused with 403, credentials or not, and never sent on.
    let sig = query_param(stale_path, "X-Goog-Signature").unwrap();
    let flipped = format!(
        "{}{}",
        &sig[..sig.len() - 1],
        if sig.ends_with('0') { '1' } else { '0' }
    );
    let forged = [
        stale_path.replace(sig, &flipped),
        stale_path.replace("report", "r3port"),
        stale_path.replace("X-Goog-Expires=60", "X-Goog-Expires=6000"),
        stale_path.replace("test-iam-credentials", "someone-else"),
    ];
    for f in &forged {
        let got = to_edge("GET", &proxy, &host, f, Some(SK_ACME), None).await;
        assert_eq!(got.status, 403, "{f}: {}", got.text());
        assert_eq!(got.json()["code"], "invalid_signature", "{f}");
    }
    assert_eq!(
        origin.seen().len(),
        before,
        "a refused URL reached the store"
    );

    // A valid URL is the capability: served without credentials, sent on as it was.
    let valid = gcs_sdk_url("GET", &endpoint, GCS_KEY, &stamp(now()), 600);
    let got = to_edge("GET", &proxy, &host, path_and_query(&valid), None, None).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(origin.seen().last().unwrap(), path_and_query(&valid));

    // Key rotation: a URL signed by the origin's second key (HMAC) verifies too.
    let minted = get(
        &format!(
            "{}/hmac/{}",
            proxy.base,
            edgesign::sign::signer::raw_key_of(GCS_KEY)
        ),
        &[("authorization", &bearer(SK_ACME))],
    )
    .await
    .header("location")
    .to_owned();
    let got = to_edge("GET", &proxy, &host, path_and_query(&minted), None, None).await;
    assert_eq!(got.status, 200, "an HMAC-signed URL: {}", got.text());

    // /proxy/file: the stale URL is rescued for an authorized caller; a URL on another
    // bucket of the same store is refused before any connection.
    let proxied = proxy_file(&proxy, &stale).await;
    assert_eq!(proxied.status, 200, "{}", proxied.text());
    assert_eq!(&proxied.body[..], &body[..]);
    let before = origin.seen().len();
    let elsewhere = stale.replace(&format!("/{GCS_BUCKET}/"), "/other-bucket/");
    let refused = proxy_file(&proxy, &elsewhere).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["code"], "forbidden_origin");
    assert_eq!(origin.seen().len(), before);
}

// ---------------------------------------------------------------------------------------
// Azure
// ---------------------------------------------------------------------------------------

const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's published well-known account key.
const ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const CONTAINER: &str = "media";
const AZURE_KEY: &str = "acme/ünï cödé report.txt";
/// A key the account used to have (made up): listed second, it verifies and never signs.
const RETIRED_KEY: &str =
    "cmV0aXJlZC1hY2NvdW50LWtleS1vZi1lZGdlc2lnbi10ZXN0cy0wMTIzNDU2Nzg5YWJjZGVm";

/// Azurite (blob service) on a free 127.0.0.1 port, its data in a temporary directory,
/// stopped by PID. Installed by `.ci/run` with `npm install --prefix tests/node
/// azurite@3.35.0`; `EDGESIGN_AZURITE` names another `azurite-blob`.
struct Azurite {
    child: std::process::Child,
    port: u16,
    data: PathBuf,
}

impl Azurite {
    async fn start() -> Azurite {
        let bin = std::env::var_os("EDGESIGN_AZURITE").map_or_else(
            || {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/node/node_modules/.bin/azurite-blob")
            },
            PathBuf::from,
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let data = tempdir("azurite");
        // Flags: no --loose and no --skipApiVersionCheck (azure-storage-blob 12.26.0 and
        // edgesign both speak 2025-07-05, which Azurite 3.35.0 knows); telemetry off (there
        // is no network).
        let child = std::process::Command::new(&bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .arg("--location")
            .arg(&data)
            .arg("--disableTelemetry")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; install it: npm install --prefix tests/node azurite@3.35.0",
                    bin.display()
                )
            });
        let mut azurite = Azurite { child, port, data };
        // Ready when it answers HTTP (it listens only once loaded).
        let deadline = edgesign::clock::instant() + std::time::Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = azurite.child.try_wait() {
                panic!("azurite exited: {status}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                edgesign::clock::instant() < deadline,
                "azurite did not start"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        azurite.port = port;
        azurite
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// azure-storage-blob (the SDK) against `endpoint`.
fn azure_sdk(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    python("azure_blob.py", &args)
}

fn azure_sas(endpoint: &str, key: &str, start: u64, expiry: u64) -> String {
    azure_sas_with(ACCOUNT_KEY, endpoint, key, start, expiry)
}

fn azure_sas_with(account_key: &str, endpoint: &str, key: &str, start: u64, expiry: u64) -> String {
    azure_sdk(&[
        "sas",
        endpoint,
        ACCOUNT,
        account_key,
        CONTAINER,
        key,
        &start.to_string(),
        &expiry.to_string(),
    ])
}

/// A recording HTTP relay in front of `target`: what reaches the store, request by request.
/// Azure SAS signs the resource path, not the host, so URLs for the relay are Azurite's.
async fn relay(target: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let client: hyper_util::client::legacy::Client<_, Empty<Bytes>> =
            hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build_http();
        while let Ok((sock, _)) = listener.accept().await {
            let (client, log) = (client.clone(), log.clone());
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (client, log) = (client.clone(), log.clone());
                    async move {
                        let pq = req
                            .uri()
                            .path_and_query()
                            .map_or("/", |p| p.as_str())
                            .to_owned();
                        log.lock().unwrap().push(format!("{} {pq}", req.method()));
                        let mut out = http::Request::builder()
                            .method(req.method())
                            .uri(format!("http://{target}{pq}"));
                        for (k, v) in req.headers() {
                            out = out.header(k, v);
                        }
                        let resp = client
                            .request(out.body(Empty::new()).unwrap())
                            .await
                            .unwrap();
                        let (parts, body) = resp.into_parts();
                        let body = body.collect().await.unwrap().to_bytes();
                        Ok::<_, std::convert::Infallible>(http::Response::from_parts(
                            parts,
                            Full::new(body),
                        ))
                    }
                });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(sock), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azurite_serves_what_edgesign_mints_and_rescues_and_never_hears_a_forgery() {
    let azurite = Azurite::start().await;
    let (relay_addr, seen) = relay(([127, 0, 0, 1], azurite.port).into()).await;
    let endpoint = format!("http://{relay_addr}/{ACCOUNT}");
    let body = content(AZURE_KEY);
    let file = tempdir("azure-blob").join("blob");
    std::fs::write(&file, &body).unwrap();
    azure_sdk(&[
        "upload",
        &azurite.endpoint(),
        ACCOUNT,
        ACCOUNT_KEY,
        CONTAINER,
        AZURE_KEY,
        file.to_str().unwrap(),
    ]);
    let cfg = format!(
        r#"
[[origins]]
name = "blobs"
kind = "azure"
account = "{ACCOUNT}"
container = "{CONTAINER}"
endpoint = "{endpoint}"
ttl = "1h"
[[origins.keys]]
account_key = "{ACCOUNT_KEY}"
[[origins.keys]]
account_key = "{RETIRED_KEY}"

[[routes]]
prefix = "/files/"
origin = "blobs"
mode = "redirect"
access = "org"

[[routes]]
prefix = "/stream/"
origin = "blobs"
mode = "stream"
access = "org"

[[routes]]
host = "{relay_addr}"
prefix = "/"
origin = "blobs"
mode = "stream"
access = "org"

[auth]
{}"#,
        api_keys_toml()
    );
    let proxy = proxy(&cfg, false).await;
    let raw = edgesign::sign::signer::raw_key_of(AZURE_KEY);
    let acme = bearer(SK_ACME);

    // Redirect: the Location is azure-storage-blob's own SAS for that window, and Azurite
    // (which verifies SAS) serves it: GET, a range, HEAD.
    let got = get(
        &format!("{}/files/{raw}", proxy.base),
        &[("authorization", &acme)],
    )
    .await;
    assert_eq!(got.status, 302, "{}", got.text());
    let loc = got.header("location").to_owned();
    let st = query_param(&loc, "st").unwrap().replace("%3A", ":");
    let st = edgesign::sign::azure::parse_time(&st).unwrap();
    assert_eq!(
        loc,
        azure_sas(&endpoint, AZURE_KEY, st, st + 3600),
        "azure-storage-blob signs another SAS"
    );
    assert_eq!(
        get(&loc.replace("sp=r&", "sp=rl&"), &[]).await.status,
        403,
        "Azurite verifies SAS signatures"
    );
    reads_like_the_object(
        "minted SAS at Azurite",
        async |method, range| {
            let range: Vec<(&str, &str)> = range.map(|r| ("range", r)).into_iter().collect();
            send(method, &loc, &range).await
        },
        &body,
    )
    .await;

    // /v1/sign: the same URL.
    assert_eq!(v1_sign(&proxy, "blobs", AZURE_KEY).await, loc);

    // Stream.
    reads_like_the_object(
        "stream route",
        async |method, range| {
            let mut headers = vec![("authorization", acme.as_str())];
            headers.extend(range.map(|r| ("range", r)));
            send(method, &format!("{}/stream/{raw}", proxy.base), &headers).await
        },
        &body,
    )
    .await;

    // A stale SAS an old client holds, minted by the SDK, refused by Azurite itself...
    let t = now();
    let stale = azure_sas(&endpoint, AZURE_KEY, t - 7200, t - 3600);
    assert_eq!(
        get(&stale, &[]).await.status,
        403,
        "Azurite refuses the stale SAS"
    );
    let stale_path = path_and_query(&stale).to_owned();
    let host = relay_addr.to_string();
    // ...is rescued through the host route for an authorized caller, and streamed.
    reads_like_the_object(
        "rescued through the host route",
        async |method, range| {
            to_edge(method, &proxy, &host, &stale_path, Some(SK_ACME), range).await
        },
        &body,
    )
    .await;
    let reached = seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(
        without_query(reached.split_once(' ').unwrap().1),
        without_query(&stale_path),
        "the same raw path"
    );
    assert_ne!(query_param(&reached, "se"), query_param(&stale_path, "se"));

    // Without credentials: 401, and Azurite hears nothing.
    let before = seen.lock().unwrap().len();
    let anon = to_edge("GET", &proxy, &host, &stale_path, None, None).await;
    assert_eq!(anon.status, 401, "{}", anon.text());

    // Tampered (permissions widened, another blob, a later expiry) or a user-delegation SAS
    // (no delegation key here): 403 invalid_signature, and Azurite hears nothing.
    let se = query_param(&stale_path, "se").unwrap();
    let forged = [
        stale_path.replace("sp=r&", "sp=rw&"),
        stale_path.replace("report", "rep0rt"),
        stale_path.replace(se, "2099-01-01T00%3A00%3A00Z"),
        format!(
            "{stale_path}&skoid=00000000-0000-0000-0000-000000000000&sktid=00000000-0000-0000-0000-000000000000&skt=2026-01-01T00%3A00%3A00Z&ske=2027-01-01T00%3A00%3A00Z&sks=b&skv=2025-07-05"
        ),
    ];
    for f in &forged {
        let got = to_edge("GET", &proxy, &host, f, Some(SK_ACME), None).await;
        assert_eq!(got.status, 403, "{f}: {}", got.text());
        assert_eq!(got.json()["code"], "invalid_signature", "{f}");
    }
    assert_eq!(
        seen.lock().unwrap().len(),
        before,
        "a refused SAS reached Azurite"
    );

    // A valid SDK SAS is the capability: served without credentials.
    let valid = azure_sas(&endpoint, AZURE_KEY, t - 60, t + 600);
    let got = to_edge("GET", &proxy, &host, path_and_query(&valid), None, None).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(&got.body[..], &body[..]);

    // Key rotation: a stale SAS signed with the retired (second) key is genuine to edgesign,
    // and rescued with the first key, which Azurite knows.
    let retired = azure_sas_with(RETIRED_KEY, &endpoint, AZURE_KEY, t - 7200, t - 3600);
    let got = to_edge(
        "GET",
        &proxy,
        &host,
        path_and_query(&retired),
        Some(SK_ACME),
        None,
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(&got.body[..], &body[..]);

    // /proxy/file: another container of the same account is not this origin.
    let elsewhere = valid.replace(&format!("/{CONTAINER}/"), "/other/");
    let refused = proxy_file(&proxy, &elsewhere).await;
    assert_eq!(refused.json()["code"], "forbidden_origin");
    let proxied = proxy_file(&proxy, &stale).await;
    assert_eq!(proxied.status, 200, "{}", proxied.text());
    assert_eq!(&proxied.body[..], &body[..]);
}

// ---------------------------------------------------------------------------------------
// S3-compatible profiles
// ---------------------------------------------------------------------------------------

/// Cloudflare R2 as config.toml's commented example writes it (`region = "auto"`, the
/// account endpoint, path style): `edgesign sign` prints exactly the URL botocore presigns
/// for R2 at that instant.
#[test]
fn an_r2_origin_signs_region_auto_urls_exactly_as_botocore() {
    let dir = tempdir("r2");
    let endpoint = "https://0123456789abcdef0123456789abcdef.r2.cloudflarestorage.com";
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[origins]]\nname = \"r2\"\nkind = \"s3\"\nendpoint = \"{endpoint}\"\nregion = \"auto\"\nbucket = \"{BUCKET}\"\npath_style = true\nttl = \"1h\"\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key_env = \"R2_SECRET_ACCESS_KEY\"\n"
        ),
    )
    .unwrap();
    let key = "acme/ünï cödé+report.txt";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edgesign"))
        .args(["sign", "--config"])
        .arg(&config)
        .args([
            "--origin",
            "r2",
            "--at",
            "2026-01-15T10:30:00Z",
            "--expires-in",
            "3600",
            key,
        ])
        .env("R2_SECRET_ACCESS_KEY", SK)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(ours.contains("%2Fauto%2Fs3%2Faws4_request"), "{ours}");
    let botocore = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/botocore_presign.py"))
        .args([
            endpoint,
            BUCKET,
            key,
            "20260115T103000Z",
            "3600",
            AK,
            SK,
            "path",
        ])
        .env("EDGESIGN_TEST_REGION", "auto")
        .output()
        .unwrap();
    assert!(
        botocore.status.success(),
        "{}",
        String::from_utf8_lossy(&botocore.stderr)
    );
    assert_eq!(ours, String::from_utf8(botocore.stdout).unwrap().trim());
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------------------

fn edgesign(args: &[&str], config: &Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_edgesign"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// `edgesign sign` prints the SDKs' own URLs for GCS and Azure origins, refuses a GCS
/// lifetime past 7 days, and `inspect` finds the SDKs' URLs genuine and names the key.
#[test]
fn sign_and_inspect_speak_gcs_and_azure() {
    let dir = tempdir("cli-clouds");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[[origins]]\nname = \"media\"\nkind = \"gcs\"\nendpoint = \"http://127.0.0.1:4443\"\nbucket = \"{GCS_BUCKET}\"\n[[origins.keys]]\nservice_account_file = \"{}\"\n\n[[origins]]\nname = \"blobs\"\nkind = \"azure\"\naccount = \"{ACCOUNT}\"\ncontainer = \"{CONTAINER}\"\nendpoint = \"http://127.0.0.1:10000/{ACCOUNT}\"\n[[origins.keys]]\naccount_key = \"{RETIRED_KEY}\"\n[[origins.keys]]\naccount_key = \"{ACCOUNT_KEY}\"\n",
            vectors().join("gcs_dummy_service_account.json").display()
        ),
    )
    .unwrap();
    let stdout = |o: std::process::Output| {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap().trim().to_owned()
    };

    let gcs = stdout(edgesign(
        &[
            "sign",
            "--origin",
            "media",
            "--at",
            "2026-01-15T10:30:00Z",
            GCS_KEY,
        ],
        &config,
    ));
    assert_eq!(
        gcs,
        gcs_sdk_url(
            "GET",
            "http://127.0.0.1:4443",
            GCS_KEY,
            "20260115T103000Z",
            3600
        )
    );
    let head = stdout(edgesign(
        &[
            "sign",
            "--origin",
            "media",
            "--method",
            "HEAD",
            "--at",
            "2026-01-15T10:30:00Z",
            GCS_KEY,
        ],
        &config,
    ));
    assert_eq!(
        head,
        gcs_sdk_url(
            "HEAD",
            "http://127.0.0.1:4443",
            GCS_KEY,
            "20260115T103000Z",
            3600
        )
    );
    let long = edgesign(
        &[
            "sign",
            "--origin",
            "media",
            "--expires-in",
            "604801",
            GCS_KEY,
        ],
        &config,
    );
    assert_eq!(long.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&long.stderr).contains("604800"));

    let start = 1_768_473_000; // 2026-01-15T10:30:00Z
    let azure = stdout(edgesign(
        &[
            "sign",
            "--origin",
            "blobs",
            "--at",
            "2026-01-15T10:30:00Z",
            AZURE_KEY,
        ],
        &config,
    ));
    // The first key signs: the retired one here, so the SDK signs with it too.
    assert_eq!(
        azure,
        azure_sas_with(
            RETIRED_KEY,
            &format!("http://127.0.0.1:10000/{ACCOUNT}"),
            AZURE_KEY,
            start,
            start + 3600
        )
    );

    for (url, scheme, key_id) in [
        (
            gcs_sdk_url("GET", "http://127.0.0.1:4443", GCS_KEY, &stamp(now()), 600),
            "gcs",
            "test-iam-credentials@dummy-project-id.iam.gserviceaccount.com",
        ),
        (
            azure_sas(
                &format!("http://127.0.0.1:10000/{ACCOUNT}"),
                AZURE_KEY,
                start,
                now() + 600,
            ),
            "azure",
            "key2",
        ),
    ] {
        let report: serde_json::Value =
            serde_json::from_str(&stdout(edgesign(&["inspect", &url], &config))).unwrap();
        assert_eq!(report["scheme"], scheme, "{report}");
        assert_eq!(report["genuine"], true, "{report}");
        assert_eq!(report["key_id"], key_id, "{report}");
        assert_eq!(
            report["key"],
            if scheme == "gcs" { GCS_KEY } else { AZURE_KEY }
        );
        assert_eq!(report["expired"], false);
    }
    let _ = std::fs::remove_dir_all(dir);
}
