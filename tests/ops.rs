//! Fleet operations, as an operator sees them: `/metrics` counters that move, `SIGTERM`
//! draining a slow HTTP/1.1 and HTTP/2 stream, `SIGHUP` reloading config, keys and
//! certificates (and refusing a bad config), limits that a slowloris cannot get around, and
//! access logs that never hold a secret.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

mod support;

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A local origin `demo` over `root` (keys given as TOML), a stream route `/d/` and a
/// redirect route `/r/`, both public.
fn local_origin(root: &Path, keys: &str) -> String {
    format!(
        "[[origins]]\nname = \"demo\"\nkind = \"local\"\nroot = \"{}\"\nttl = \"1h\"\n{keys}\n[[routes]]\nprefix = \"/d/\"\norigin = \"demo\"\nmode = \"stream\"\naccess = \"public\"\n\n[[routes]]\nprefix = \"/r/\"\norigin = \"demo\"\nmode = \"redirect\"\naccess = \"public\"\n",
        root.display()
    )
}

const KEY_1: &str = "[[origins.keys]]\nkey_id = \"k1\"\nsecret = \"0123456789abcdef0123456789\"\n";
const KEY_2: &str = "[[origins.keys]]\nkey_id = \"k2\"\nsecret = \"fedcba9876543210fedcba9876\"\n";

/// A directory with `ok.txt` and a `big.bin` of `size` patterned bytes.
fn files(size: usize) -> (std::path::PathBuf, Vec<u8>) {
    let root = tempdir("ops-root");
    std::fs::write(root.join("ok.txt"), "fine").unwrap();
    let big: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    (root, big)
}

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn addr_of(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Reads a response body at about `per_second` bytes a second, counting into `read`.
async fn read_slowly(
    body: hyper::body::Incoming,
    per_second: usize,
    read: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<u8> {
    let mut body = body;
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("the stream was cut");
        if let Some(d) = frame.data_ref() {
            out.extend_from_slice(d);
            read.store(out.len(), std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs_f64(d.len() as f64 / per_second as f64)).await;
        }
    }
    out
}

/// Sends a header line every 200 ms, for 20 s or until the proxy closes the connection.
fn drip_headers(mut write: tokio::net::tcp::OwnedWriteHalf) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if write.write_all(b"X-Slow: 1\r\n").await.is_err() {
                return;
            }
        }
    })
}

fn get_req(path: &str) -> http::Request<Empty<Bytes>> {
    http::Request::get(path)
        .header("host", "127.0.0.1")
        .body(Empty::new())
        .unwrap()
}

/// An HTTP/1.1 connection of its own (keep-alive), and the task driving it.
async fn h1_conn(
    addr: &str,
) -> (
    hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    (
        send,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

/// An h2c (prior knowledge) connection of its own, and the task driving it.
async fn h2_conn(
    addr: &str,
) -> (
    hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    tokio::task::JoinHandle<()>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    (
        send,
        tokio::spawn(async move {
            let _ = conn.await;
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_cache_signing_origins_and_connections() {
    let origin = s3_origin().await;
    origin.put("m/obj.txt", b"metered");
    let dead = s3_origin_toml(&origin, "1h")
        .replace("name = \"docs\"", "name = \"dead\"")
        .replace(
            &origin.endpoint(),
            &format!("http://127.0.0.1:{}", free_port()),
        );
    let cfg = format!(
        "{}{dead}[[routes]]\nprefix = \"/r/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"public\"\n[[routes]]\nprefix = \"/s/\"\norigin = \"docs\"\nmode = \"stream\"\naccess = \"public\"\n[[routes]]\nprefix = \"/dead/\"\norigin = \"dead\"\nmode = \"stream\"\naccess = \"public\"\n",
        s3_origin_toml(&origin, "1h")
    );
    let proxy = proxy(&cfg, false).await;
    let scrape = || async {
        let got = get(&format!("{}/metrics", proxy.base), &[]).await;
        assert_eq!(got.status, 200);
        assert!(
            got.header("content-type")
                .starts_with("application/openmetrics-text"),
            "{}",
            got.header("content-type")
        );
        (got.text(), parse_metrics(&got.text()))
    };
    let (text, before) = scrape().await;
    assert!(text.contains("# TYPE edgesign_requests counter"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");

    let r = format!("{}/r/m/obj.txt", proxy.base);
    assert_eq!(get(&r, &[]).await.status, 302);
    assert_eq!(get(&r, &[]).await.status, 302);
    assert_eq!(
        get(&format!("{}/s/m/obj.txt", proxy.base), &[])
            .await
            .text(),
        "metered"
    );
    let dead = get(&format!("{}/dead/x.txt", proxy.base), &[]).await;
    assert_eq!(dead.status, 502);
    assert_eq!(
        get(&format!("{}/nowhere", proxy.base), &[]).await.status,
        404
    );

    let (text, after) = scrape().await;
    let delta = |series: &str| {
        after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
    };
    for (series, want) in [
        (
            r#"edgesign_requests_total{route="redirect",status="302"}"#,
            2.0,
        ),
        (
            r#"edgesign_requests_total{route="stream",status="200"}"#,
            1.0,
        ),
        (
            r#"edgesign_requests_total{route="stream",status="502"}"#,
            1.0,
        ),
        (r#"edgesign_requests_total{route="-",status="404"}"#, 1.0),
        (
            r#"edgesign_request_duration_seconds_count{route="redirect"}"#,
            2.0,
        ),
        // The object, and the 502's JSON error body.
        (
            r#"edgesign_response_bytes_total{route="stream"}"#,
            (7 + dead.body.len()) as f64,
        ),
        // The second redirect and the stream (same key, same bucket) are hits.
        ("edgesign_cache_hits_total", 2.0),
        ("edgesign_cache_misses_total", 2.0),
        (r#"edgesign_signing_operations_total{scheme="sigv4"}"#, 2.0),
        (
            r#"edgesign_signing_duration_seconds_count{scheme="sigv4"}"#,
            2.0,
        ),
        (
            r#"edgesign_origin_response_duration_seconds_count{origin="docs"}"#,
            1.0,
        ),
        (
            // Nothing listens there: told apart from DNS, TLS and timeouts.
            r#"edgesign_origin_errors_total{origin="dead",kind="refused"}"#,
            1.0,
        ),
        // Five requests, each on a connection of its own, plus the scrape itself.
        (r#"edgesign_connections_total{listener="http"}"#, 6.0),
    ] {
        assert_eq!(delta(series), want, "{series}\n{text}");
    }
    assert_eq!(after["edgesign_cache_entries"], 2.0, "{text}");
    assert_eq!(after["edgesign_ready"], 1.0);
    // The scrape's own connection is open while it is answered.
    assert!(after[r#"edgesign_open_connections{listener="http"}"#] >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readyz_503_and_drains_slow_h1_and_h2_streams_then_exits_0() {
    const SIZE: usize = 24 << 20;
    let (root, big) = files(SIZE);
    let dir = tempdir("drain");
    let config = dir.join("edgesign.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://edge.example\"\ndrain_delay = \"1s\"\nshutdown_grace = \"30s\"\n{}",
            local_origin(&root, KEY_1)
        ),
    )
    .unwrap();
    let mut edge = Spawned::start(&config, false, &[]);
    let addr = addr_of(&edge.base);

    // Two slow downloads in flight: one over HTTP/1.1, one over HTTP/2.
    let (mut h1, _h1_task) = h1_conn(&addr).await;
    let resp1 = h1.send_request(get_req("/d/big.bin")).await.unwrap();
    assert_eq!(resp1.status(), 200);
    let (mut h2, h2_task) = h2_conn(&addr).await;
    let resp2 = h2.send_request(get_req("/d/big.bin")).await.unwrap();
    assert_eq!(resp2.status(), 200);
    let read1 = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let read2 = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let slow1 = tokio::spawn(read_slowly(resp1.into_body(), 6 << 20, read1.clone()));
    let slow2 = tokio::spawn(read_slowly(resp2.into_body(), 6 << 20, read2.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;

    edge.signal("TERM");
    assert!(
        edge.wait_for_log("draining", Duration::from_secs(5)).await,
        "{}",
        edge.log()
    );
    // During drain_delay: still accepting, but not ready.
    let ready = get(&format!("{}/readyz", edge.base), &[]).await;
    assert_eq!(
        (ready.status.as_u16(), ready.json()["status"].clone()),
        (503, json!("draining"))
    );
    let alive = get(&format!("{}/healthz", edge.base), &[]).await;
    assert_eq!(alive.status, 200);
    assert_eq!(
        alive.header("connection"),
        "close",
        "draining closes HTTP/1.1"
    );

    // Then the listener closes while both streams are still being read.
    let deadline = edgesign::clock::instant() + Duration::from_secs(5);
    while TcpStream::connect(&addr).await.is_ok() {
        assert!(
            edgesign::clock::instant() < deadline,
            "the listener never closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(edge.child.try_wait().unwrap().is_none(), "exited too early");
    let (r1, r2) = (
        read1.load(std::sync::atomic::Ordering::SeqCst),
        read2.load(std::sync::atomic::Ordering::SeqCst),
    );
    assert!(
        r1 < SIZE && r2 < SIZE,
        "streams still in flight at close: {r1} {r2} of {SIZE}"
    );
    // HTTP/2 got GOAWAY: the connection takes no new stream, the open one goes on.
    let refused = match h2.ready().await {
        Err(_) => true,
        Ok(()) => h2.send_request(get_req("/d/ok.txt")).await.is_err(),
    };
    assert!(refused, "a new stream was accepted after GOAWAY");

    assert!(slow1.await.unwrap() == big, "HTTP/1.1 stream intact");
    assert!(slow2.await.unwrap() == big, "HTTP/2 stream intact");
    let status = edge
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("did not exit after draining");
    assert!(status.success(), "exit status {status:?}\n{}", edge.log());
    assert!(edge.log().contains("drained; exiting"), "{}", edge.log());
    let _ = h2_task.await;
}

/// A TLS handshake with `127.0.0.1:port` trusting only `ca`.
async fn tls_handshake(addr: &str, ca: &Path) -> Result<(), std::io::Error> {
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(tls_client(ca, rustls::DEFAULT_VERSIONS))
        .connect(name, tcp)
        .await
        .map(|_| ())
}

/// A TLS client trusting only `ca`, speaking `versions`, with a session store of its own.
fn tls_client(
    ca: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_file(ca).unwrap())
        .unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(versions)
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    std::sync::Arc::new(cfg)
}

/// One visit: a handshake, `GET /healthz` over HTTP/1.1 and its whole answer (TLS 1.3
/// tickets come after the handshake, so a client only has them once it has read on). Says
/// whether the handshake was full or resumed.
async fn tls_visit(
    addr: &str,
    client: std::sync::Arc<rustls::ClientConfig>,
) -> rustls::HandshakeKind {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(client)
        .connect(name, tcp)
        .await
        .unwrap();
    let kind = tls.get_ref().1.handshake_kind().unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let mut answer = Vec::new();
    let read = tls.read_to_end(&mut answer).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{read:?} {}",
        String::from_utf8_lossy(&answer)
    );
    kind
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returning_tls_clients_resume_even_after_thousands_of_other_sessions() {
    use futures_util::StreamExt;
    use rustls::HandshakeKind::{Full, Resumed};
    let (root, _) = files(16);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (certs, ca) = (repo.join("certs"), repo.join("certs/ca.crt"));
    let dir = tempdir("tickets");
    let config = dir.join("edgesign.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{}\"\ntls_listen = \"127.0.0.1:{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{}",
            free_port(),
            free_port(),
            certs.join("dev.crt").display(),
            certs.join("dev.key").display(),
            local_origin(&root, KEY_1)
        ),
    )
    .unwrap();
    let edge = Spawned::start(&config, true, &[]);
    let https = edge.https.clone().unwrap();
    let tls13 = tls_client(&ca, &[&rustls::version::TLS13]);
    let tls12 = tls_client(&ca, &[&rustls::version::TLS12]);
    assert_eq!(tls_visit(&https, tls13.clone()).await, Full);
    assert_eq!(tls_visit(&https, tls12.clone()).await, Full);
    assert_eq!(tls_visit(&https, tls13.clone()).await, Resumed);
    assert_eq!(tls_visit(&https, tls12.clone()).await, Resumed);
    // More clients than a server-side session cache holds (4,096 sessions) come and go; the
    // first ones still resume, since their tickets carry their sessions.
    let others = futures_util::stream::iter(0..3000)
        .map(|i| {
            let https = https.clone();
            let version = if i % 2 == 0 {
                &rustls::version::TLS13
            } else {
                &rustls::version::TLS12
            };
            let client = tls_client(&ca, &[version]);
            async move { tls_visit(&https, client).await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    assert!(others.iter().all(|k| *k == Full));
    assert_eq!(tls_visit(&https, tls13).await, Resumed);
    assert_eq!(tls_visit(&https, tls12).await, Resumed);
    // A client the server has never seen gets a full handshake.
    assert_eq!(
        tls_visit(&https, tls_client(&ca, &[&rustls::version::TLS13])).await,
        Full
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_config_keys_and_certificates_and_refuses_a_bad_config() {
    const SIZE: usize = 16 << 20;
    let (root, big) = files(SIZE);
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (dev_ca, new_ca) = (
        repo.join("certs/ca.crt"),
        repo.join("tests/certs/reload/ca.crt"),
    );
    let dir = tempdir("reload");
    let config = dir.join("edgesign.toml");
    let (http_port, https_port) = (free_port(), free_port());
    let write = |certs: &Path, keys: &str, extra: &str| {
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{http_port}\"\ntls_listen = \"127.0.0.1:{https_port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{}{extra}",
                certs.join("dev.crt").display(),
                certs.join("dev.key").display(),
                local_origin(&root, keys)
            ),
        )
        .unwrap();
    };
    write(&repo.join("certs"), KEY_1, "");
    let edge = Spawned::start(&config, true, &[]);
    let https = edge.https.clone().unwrap();
    let addr = addr_of(&edge.base);
    tls_handshake(&https, &dev_ca).await.unwrap();
    assert!(tls_handshake(&https, &new_ca).await.is_err());

    // An open keep-alive connection and a slow stream, across the reload.
    let (mut conn, conn_task) = h1_conn(&addr).await;
    let location = |resp: &http::Response<hyper::body::Incoming>| {
        resp.headers()["location"].to_str().unwrap().to_owned()
    };
    let first = conn.send_request(get_req("/r/ok.txt")).await.unwrap();
    assert!(
        location(&first).contains("key_id=k1"),
        "{}",
        location(&first)
    );
    first.into_body().collect().await.unwrap();
    let (mut slow_conn, _slow_task) = h1_conn(&addr).await;
    let slow = slow_conn.send_request(get_req("/d/big.bin")).await.unwrap();
    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let slow = tokio::spawn(read_slowly(slow.into_body(), 6 << 20, read.clone()));

    // Good: a new signing key first, a new route, a new certificate.
    write(
        &repo.join("tests/certs/reload"),
        &format!("{KEY_2}{KEY_1}"),
        "[[routes]]\nprefix = \"/new/\"\norigin = \"demo\"\nmode = \"redirect\"\naccess = \"public\"\n",
    );
    edge.signal("HUP");
    assert!(
        edge.wait_for_log("config reloaded", Duration::from_secs(5))
            .await,
        "{}",
        edge.log()
    );
    assert!(
        read.load(std::sync::atomic::Ordering::SeqCst) < SIZE,
        "the stream must span the reload"
    );
    let again = conn.send_request(get_req("/r/ok.txt")).await.unwrap();
    assert!(
        location(&again).contains("key_id=k2"),
        "same connection, new signer: {}",
        location(&again)
    );
    again.into_body().collect().await.unwrap();
    assert_eq!(
        get(&format!("{}/new/ok.txt", edge.base), &[]).await.status,
        302
    );
    tls_handshake(&https, &new_ca).await.unwrap();
    assert!(tls_handshake(&https, &dev_ca).await.is_err());
    assert!(
        slow.await.unwrap() == big,
        "the in-flight stream finished intact"
    );
    // URLs signed by the old key still verify (rotation).
    let old = get(&format!("{}/r/ok.txt", edge.base), &[]).await;
    assert_eq!(old.status, 302);

    // Bad: refused with the key named; the running config keeps serving.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace("[server]\n", "[cache]\nbucket = \"soon\"\n[server]\n"),
    )
    .unwrap();
    edge.signal("HUP");
    assert!(
        edge.wait_for_log("config reload refused", Duration::from_secs(5))
            .await,
        "{}",
        edge.log()
    );
    let refusal = edge
        .log()
        .lines()
        .find(|l| l.contains("config reload refused"))
        .unwrap()
        .to_owned();
    assert!(refusal.contains("cache.bucket"), "names the key: {refusal}");
    let still = conn.send_request(get_req("/new/ok.txt")).await.unwrap();
    assert_eq!(
        still.status(),
        302,
        "old config still serves on the same connection"
    );
    assert!(location(&still).contains("key_id=k2"));
    still.into_body().collect().await.unwrap();
    tls_handshake(&https, &new_ca).await.unwrap();

    // A listener cannot move by reload: refused too, naming the key.
    write(
        &repo.join("tests/certs/reload"),
        &format!("{KEY_2}{KEY_1}"),
        "",
    );
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)
            .unwrap()
            .replace(&format!(":{http_port}\""), &format!(":{}\"", free_port())),
    )
    .unwrap();
    edge.signal("HUP");
    let deadline = edgesign::clock::instant() + Duration::from_secs(5);
    while !edge.log().contains("server.listen: cannot move") {
        assert!(edgesign::clock::instant() < deadline, "{}", edge.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        metric(&edge.base, r#"edgesign_config_reloads_total{result="ok"}"#).await,
        1.0
    );
    assert_eq!(
        metric(
            &edge.base,
            r#"edgesign_config_reloads_total{result="error"}"#
        )
        .await,
        2.0
    );
    drop(conn);
    let _ = conn_task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_cannot_hold_a_connection_slot_past_the_header_timeout() {
    let (root, _) = files(16);
    let proxy = proxy_with(
        &local_origin(&root, KEY_1),
        false,
        "max_connections = 2\nheader_read_timeout = \"1s\"\nidle_timeout = \"30s\"",
    )
    .await;
    let addr = addr_of(&proxy.base);
    let open = || {
        parse_metrics(&proxy.app().metrics.render(0))
            .get(r#"edgesign_open_connections{listener="http"}"#)
            .copied()
            .unwrap_or(0.0)
    };
    // One client says nothing; the other drips a request head a header at a time.
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let mut drip = TcpStream::connect(&addr).await.unwrap();
    drip.write_all(b"GET /d/ok.txt HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (mut drip_read, drip_write) = drip.into_split();
    let dripping = drip_headers(drip_write);
    let deadline = edgesign::clock::instant() + Duration::from_secs(5);
    while open() < 2.0 {
        assert!(edgesign::clock::instant() < deadline, "slots never taken");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Both slots are held: a real client waits, then gets through once the timeout frees one.
    let start = edgesign::clock::instant();
    let got = tokio::time::timeout(
        Duration::from_secs(10),
        get(&format!("{}/d/ok.txt", proxy.base), &[]),
    )
    .await
    .expect("a slowloris held the slots past the header timeout");
    assert_eq!(got.text(), "fine");
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "answered at once: max_connections was not applied"
    );
    // And both slow clients were cut off.
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("the silent client was never disconnected")
        .unwrap_or(0);
    assert_eq!(n, 0, "silent client closed");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), drip_read.read_to_end(&mut answer))
        .await
        .expect("the dripping client was never disconnected");
    assert!(
        !String::from_utf8_lossy(&answer).contains("200 OK"),
        "the dripping client was served"
    );
    dripping.abort();
}

/// Reads one HTTP/1.1 response with a body of `len` bytes from a raw connection.
async fn read_response(sock: &mut TcpStream, len: usize) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n")
            && got.len() >= at + 4 + len
        {
            return String::from_utf8_lossy(&got).into_owned();
        }
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
            .await
            .expect("no response")
            .unwrap_or(0);
        assert!(
            n > 0,
            "connection closed mid-exchange: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// A proxy whose request heads (and API bodies) must arrive within 1 s, idle connections
/// living 30 s, and a raw connection to it.
async fn quick_heads_proxy() -> (Proxy, TcpStream) {
    let (root, _) = files(16);
    let proxy = proxy_with(
        &local_origin(&root, KEY_1),
        false,
        "header_read_timeout = \"1s\"\nidle_timeout = \"30s\"",
    )
    .await;
    let sock = TcpStream::connect(addr_of(&proxy.base)).await.unwrap();
    (proxy, sock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dripped_api_body_is_refused_at_the_header_timeout() {
    let (_proxy, mut sock) = quick_heads_proxy().await;
    let started = edgesign::clock::instant();
    sock.write_all(
        b"POST /v1/sign HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ke",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut answer))
        .await
        .expect("a dripped body held the connection past header_read_timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("header_read_timeout"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(800));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_outlives_the_header_timeout_but_a_slow_next_head_is_cut() {
    let (_proxy, mut sock) = quick_heads_proxy().await;
    let request = b"GET /d/ok.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    sock.write_all(request).await.unwrap();
    assert!(read_response(&mut sock, 4).await.ends_with("fine"));
    // Idle for longer than header_read_timeout, well within idle_timeout: a load balancer's
    // pooled connection, which must still be there (closing it early races the balancer's
    // next request into a 502).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    sock.write_all(request).await.unwrap();
    assert!(read_response(&mut sock, 4).await.ends_with("fine"));
    // The next head starts but drips in a header at a time: cut off at header_read_timeout.
    let started = edgesign::clock::instant();
    sock.write_all(b"GET /d/ok.txt HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (mut read, write) = sock.into_split();
    let dripping = drip_headers(write);
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut rest))
        .await
        .expect("a dripping head held the connection past header_read_timeout");
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "cut before header_read_timeout: {:?}",
        started.elapsed()
    );
    assert!(
        !String::from_utf8_lossy(&rest).contains("200 OK"),
        "the dripping head was served"
    );
    dripping.abort();
}

/// An answer without the lines that differ between two answers to the same request.
fn without_date_and_id(answer: &str) -> String {
    answer
        .split("\r\n")
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            !l.starts_with("date:") && !l.starts_with("x-request-id:")
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_idle_connection_answers_pipelined_requests_exactly_as_before() {
    let (_proxy, mut sock) = quick_heads_proxy().await;
    let request =
        b"GET /d/ok.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: parked-connection-test\r\n\r\n";
    sock.write_all(request).await.unwrap();
    let first = read_response(&mut sock, 4).await;
    assert!(first.starts_with("HTTP/1.1 200 OK"), "{first}");
    // Idle for more than a second and past a watchdog check (header_read_timeout = 1s): the
    // connection is parked, hyper's buffers dropped (docs/deploy.md).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Two requests in one write: the first bytes wake the parked connection and the rest,
    // which straddle its first read, must all reach the new hyper connection.
    sock.write_all(&[&request[..], &request[..]].concat())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&got)
        .matches("\r\n\r\nfine")
        .count()
        < 2
    {
        let n = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf))
            .await
            .expect("a parked connection did not answer")
            .unwrap();
        assert!(n > 0, "closed: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let got = String::from_utf8_lossy(&got).into_owned();
    let answers: Vec<&str> = got
        .split_inclusive("fine")
        .filter(|a| !a.is_empty())
        .collect();
    assert_eq!(answers.len(), 2, "{got}");
    for answer in answers {
        assert_eq!(without_date_and_id(answer), without_date_and_id(&first));
    }
    // Still keep-alive: a third request on the same connection.
    sock.write_all(request).await.unwrap();
    assert!(read_response(&mut sock, 4).await.ends_with("fine"));
}

/// A parked connection has no watchdog task; its own task keeps `idle_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_still_closes_at_idle_timeout() {
    let (root, _) = files(16);
    let proxy = proxy_with(
        &local_origin(&root, KEY_1),
        false,
        "header_read_timeout = \"1s\"\nidle_timeout = \"2500ms\"",
    )
    .await;
    let mut sock = TcpStream::connect(addr_of(&proxy.base)).await.unwrap();
    sock.write_all(b"GET /d/ok.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut sock, 4).await.ends_with("fine"));
    let served = edgesign::clock::instant();
    // Parked after a second idle (docs/deploy.md), then closed at idle_timeout.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(8), sock.read_to_end(&mut rest))
        .await
        .expect("a parked connection outlived idle_timeout")
        .unwrap();
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    let idle = served.elapsed();
    assert!(
        idle >= Duration::from_millis(2300),
        "closed before idle_timeout: {idle:?}"
    );
}

/// A drain closes parked connections at once: they have nothing in flight to finish, and
/// the process must not wait out `shutdown_grace` for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_closes_parked_connections_and_exits_without_waiting_for_them() {
    let (root, _) = files(16);
    let dir = tempdir("drain-parked");
    let config = dir.join("edgesign.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://edge.example\"\ndrain_delay = \"200ms\"\nshutdown_grace = \"60s\"\nidle_timeout = \"120s\"\n{}",
            local_origin(&root, KEY_1)
        ),
    )
    .unwrap();
    let mut edge = Spawned::start(&config, false, &[("RUST_LOG", "edgesign::server=trace")]);
    let mut sock = TcpStream::connect(addr_of(&edge.base)).await.unwrap();
    sock.write_all(b"GET /d/ok.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_response(&mut sock, 4).await.ends_with("fine"));
    assert!(
        edge.wait_for_log("idle connection parked", Duration::from_secs(10))
            .await,
        "{}",
        edge.log()
    );
    let signalled = edgesign::clock::instant();
    edge.signal("TERM");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut rest))
        .await
        .expect("the drain left a parked connection open")
        .unwrap();
    let status = edge
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("did not exit after draining");
    assert!(status.success(), "exit status {status:?}\n{}", edge.log());
    assert!(
        signalled.elapsed() < Duration::from_secs(20),
        "waited for a parked connection: {:?}",
        signalled.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_shuts_down_its_sending_side_still_gets_the_answer() {
    let (_proxy, sock) = quick_heads_proxy().await;
    let (mut read, mut write) = sock.into_split();
    write
        .write_all(b"GET /d/ok.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // FIN right after the request (`shutdown(SHUT_WR)`), as some HTTP/1.0-era tools do.
    write.shutdown().await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut answer))
        .await
        .expect("the connection was neither answered nor closed")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("fine"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431_and_idle_connections_are_closed() {
    let (root, _) = files(16);
    let proxy = proxy_with(
        &local_origin(&root, KEY_1),
        false,
        "max_header_size = 8192\nidle_timeout = \"300ms\"\nheader_read_timeout = \"10s\"",
    )
    .await;
    let addr = addr_of(&proxy.base);
    let big = "a".repeat(10_000);
    let got = get(&format!("{}/d/ok.txt", proxy.base), &[("x-big", &big)]).await;
    assert_eq!(got.status, 431);
    let small = "a".repeat(4_000);
    let got = get(&format!("{}/d/ok.txt", proxy.base), &[("x-small", &small)]).await;
    assert_eq!(got.text(), "fine");

    // HTTP/1.1 keep-alive and HTTP/2: served, then closed once idle: at idle_timeout, well
    // before header_read_timeout (10 s) or anything else could close them.
    let (mut h1, h1_task) = h1_conn(&addr).await;
    let r = h1.send_request(get_req("/d/ok.txt")).await.unwrap();
    assert_eq!(r.into_body().collect().await.unwrap().to_bytes(), "fine");
    let (mut h2, h2_task) = h2_conn(&addr).await;
    let r = h2.send_request(get_req("/d/ok.txt")).await.unwrap();
    assert_eq!(r.into_body().collect().await.unwrap().to_bytes(), "fine");
    tokio::time::timeout(Duration::from_secs(3), h1_task)
        .await
        .expect("idle HTTP/1.1 connection kept open")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(3), h2_task)
        .await
        .expect("idle HTTP/2 connection kept open")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_signature_cache_until_an_origin_mints_differently() {
    let (root, _) = files(16);
    let proxy = proxy(&local_origin(&root, KEY_1), false).await;
    let config = proxy.dir.join("config.toml");
    let location = || async {
        let got = get(&format!("{}/r/ok.txt", proxy.base), &[]).await;
        assert_eq!(got.status, 302);
        got.header("location").to_owned()
    };
    let minted = location().await;
    // Signatures made since start, across reloads (the metrics outlive them).
    let signed = || {
        parse_metrics(&proxy.app().metrics.render(0))
            .get(r#"edgesign_signing_operations_total{scheme="native"}"#)
            .copied()
            .unwrap_or(0.0)
    };
    assert_eq!(signed(), 1.0);
    // A reload that changes no origin (here: the rate limit) keeps
    // the cache: the URL is served without being signed again.
    let text = std::fs::read_to_string(&config).unwrap();
    let edited = text.replace("per_second = 1000000", "per_second = 999999");
    assert_ne!(edited, text);
    std::fs::write(&config, &edited).unwrap();
    proxy.running.reload_file(&config).unwrap();
    assert_eq!(location().await, minted);
    assert_eq!(signed(), 1.0, "the reload re-signed a URL it already had");
    // A rotated key mints differently: the cache starts again and the URL changes.
    std::fs::write(&config, edited.replace(KEY_1, KEY_2)).unwrap();
    proxy.running.reload_file(&config).unwrap();
    let rotated = location().await;
    assert_ne!(
        rotated, minted,
        "a URL signed by the retired key was served"
    );
    assert!(rotated.contains("k2"), "{rotated}");
    assert_eq!(signed(), 2.0, "the new cache signed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_answer_this_host_only_unless_configured() {
    let (root, _) = files(16);
    // Behind a load balancer on 127.0.0.1 (trusted): the client is whoever it forwards for.
    let proxy = proxy_with(
        &local_origin(&root, KEY_1),
        false,
        "trusted_proxies = [\"127.0.0.1/32\"]",
    )
    .await;
    let metrics = |from: Option<&'static str>| {
        let url = format!("{}/metrics", proxy.base);
        async move {
            let headers: Vec<(&str, &str)> =
                from.map(|ip| ("x-forwarded-for", ip)).into_iter().collect();
            get(&url, &headers).await
        }
    };
    for from in [None, Some("127.0.0.1"), Some("::1")] {
        let got = metrics(from).await;
        assert_eq!(got.status, 200, "{from:?}");
        assert!(got.text().contains("# TYPE edgesign_"), "{from:?}");
    }
    // Anyone else, private networks included (a load balancer that is not trusted makes
    // every internet client look private), and a forwarded hop that cannot be read.
    for from in ["203.0.113.5", "10.1.2.3", "fd00::7", "10.0.0.1, unknown"] {
        let got = metrics(Some(from)).await;
        assert_eq!(got.status, 403, "{from}");
        assert_eq!(got.json()["code"], "forbidden");
        assert!(!got.text().contains("edgesign_"));
    }

    // An explicit list replaces the default.
    let proxy = proxy_with(
        &local_origin(&root, KEY_1),
        false,
        "trusted_proxies = [\"127.0.0.1/32\"]\nmetrics_allow = [\"203.0.113.0/24\"]",
    )
    .await;
    let from = |ip: &'static str| {
        let url = format!("{}/metrics", proxy.base);
        async move { get(&url, &[("x-forwarded-for", ip)]).await.status }
    };
    assert_eq!(from("203.0.113.5").await, 200);
    assert_eq!(from("10.1.2.3").await, 403);
    assert_eq!(
        get(&format!("{}/metrics", proxy.base), &[]).await.status,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_reset_mid_request_does_not_keep_an_h2_connection_alive() {
    // An origin that accepts and never answers: the request stays inside the service.
    let origin = silent_origin().await;
    let cfg = format!(
        "[[origins]]\nname = \"docs\"\nkind = \"s3\"\nendpoint = \"http://{origin}\"\nregion = \"us-east-1\"\nbucket = \"{BUCKET}\"\npath_style = true\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n[[routes]]\nprefix = \"/s/\"\norigin = \"docs\"\nmode = \"stream\"\naccess = \"public\"\n"
    );
    let proxy = proxy_with(&cfg, false, "idle_timeout = \"300ms\"").await;
    let (mut h2, h2_task) = h2_conn(&addr_of(&proxy.base)).await;
    // The client gives up: hyper resets the stream, and the service's future is dropped.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(300),
        h2.send_request(get_req("/s/k.txt")),
    )
    .await;
    assert!(gave_up.is_err(), "the silent origin answered");
    // Nothing is in flight any more: the connection closes once idle.
    tokio::time::timeout(Duration::from_secs(3), h2_task)
        .await
        .expect("a reset stream kept the connection counted as busy")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_logs_describe_every_request_and_never_hold_a_secret() {
    let origin = s3_origin().await;
    origin.put("acme/log.txt", b"logged");
    origin.put("acme/files/f_log1", b"file");
    let (root, _) = files(16);
    let hs_secret = "an-hs256-secret-for-the-log-test-0123456789";
    let cf_pem =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/cloudfront_test_key.pem");
    let dir = tempdir("logs");
    let config = dir.join("edgesign.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://edge.example\"\ntrusted_proxies = [\"127.0.0.1/32\"]\n[rate_limit]\nper_second = 1\nburst = 30\n{}{}\n[[origins]]\nname = \"cdn\"\nkind = \"cloudfront\"\ndomain = \"d111111abcdef8.cloudfront.net\"\nttl = \"1h\"\n[[origins.keys]]\nkey_pair_id = \"K2JCJMDEHXQW5F\"\nprivate_key_file = \"{}\"\n[[routes]]\nprefix = \"/org/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"org\"\n[[routes]]\nprefix = \"/s/\"\norigin = \"docs\"\nmode = \"stream\"\naccess = \"org\"\n[[routes]]\nprefix = \"/cf/\"\norigin = \"cdn\"\nmode = \"redirect\"\naccess = \"org\"\n[auth]\njwt_hs256_secret = \"{hs_secret}\"\n{}\n[compat]\ncontent_sign_origin = \"docs\"\nfiles_origin = \"docs\"\nfiles_key_prefix = \"acme/files/\"\npresign_origin = \"docs\"\n",
            s3_origin_toml(&origin, "1h"),
            local_origin(&root, KEY_1).replace("/d/", "/ld/").replace("/r/", "/lr/"),
            cf_pem.display(),
            api_keys_toml()
        ),
    )
    .unwrap();
    // JSON lines, and debug level for edgesign itself: secrets must not leak even there.
    let edge = Spawned::start(
        &config,
        false,
        &[
            ("EDGESIGN_LOG_FORMAT", "json"),
            ("RUST_LOG", "info,edgesign=debug"),
        ],
    );
    let base = edge.base.clone();
    let enc = |s: &str| edgesign::sign::encoding::uri_encode(s.as_bytes(), true);
    let now = edgesign::clock::unix_secs(edgesign::clock::now());
    let jwt = jwt_hs256(
        hs_secret.as_bytes(),
        json!({"alg": "HS256", "typ": "JWT"}),
        json!({"sub": "u1", "org": "acme", "exp": now + 600}),
    );
    let bearer_key = format!("Bearer {SK_ADMIN}");
    let bearer_jwt = format!("Bearer {jwt}");
    let cookie = format!("edgesign_session={jwt}");
    let stale = botocore_presign(&origin.endpoint(), "acme/log.txt", "20130524T000000Z", 3600);
    let query = stale.split_once('?').unwrap().1.to_owned();
    let sig = query.rsplit_once("X-Amz-Signature=").unwrap().1.to_owned();
    let forged = query.replace(&sig[..8], "00000000");
    let sts_token = "FQoGZXIvYXdzEXAMPLESESSIONTOKENvalue";
    let cf_sig = "CloudFrontSignatureValue~abc";
    let cf_policy = "eyJTdGF0ZW1lbnQiOltdfQ__";

    // Every kind of request, with every kind of credential: (method, path, JSON body,
    // header, status class or exact status).
    let sk_acme_bearer = format!("Bearer {SK_ACME}");
    let proxy_file = format!("/proxy/file?presigned_url={}", enc(&stale));
    type Case<'a> = (&'a str, String, &'a str, (&'a str, &'a str), u16);
    let cases: Vec<Case> = vec![
        (
            "GET",
            "/org/acme/log.txt".into(),
            "",
            ("x-api-key", SK_ACME),
            302,
        ),
        (
            "GET",
            "/org/acme/log.txt".into(),
            "",
            ("authorization", &bearer_jwt),
            302,
        ),
        (
            "GET",
            "/org/acme/log.txt".into(),
            "",
            ("cookie", &cookie),
            302,
        ),
        (
            "GET",
            "/s/acme/log.txt".into(),
            "",
            ("authorization", &bearer_key),
            200,
        ),
        (
            "GET",
            format!("/org/acme/log.txt?{query}"),
            "",
            ("authorization", &bearer_key),
            302,
        ),
        (
            "GET",
            format!("/org/acme/log.txt?{forged}"),
            "",
            ("authorization", &bearer_key),
            403,
        ),
        (
            "GET",
            format!("/org/acme/log.txt?{query}&X-Amz-Security-Token={sts_token}"),
            "",
            ("x-none", ""),
            4,
        ),
        (
            "GET",
            format!(
                "/cf/acme/x.txt?Policy={cf_policy}&Signature={cf_sig}&Key-Pair-Id=K2JCJMDEHXQW5F"
            ),
            "",
            ("authorization", &bearer_key),
            403,
        ),
        ("GET", proxy_file, "", ("authorization", &bearer_key), 200),
        (
            "GET",
            "/_origin/demo/ok.txt?expires=1&key_id=k1&signature=native-signature-value".into(),
            "",
            ("x-none", ""),
            4,
        ),
        ("GET", "/lr/ok.txt".into(), "", ("x-none", ""), 302),
        (
            "POST",
            "/orgs/acme/content/sign".into(),
            r#"{"url": "acme/log.txt"}"#,
            ("authorization", &sk_acme_bearer),
            200,
        ),
        (
            "POST",
            "/v1/files/f_log1/signed-url".into(),
            "{}",
            ("cookie", &cookie),
            200,
        ),
        (
            "POST",
            "/generate-presigned-url".into(),
            r#"{"key": "acme/log.txt"}"#,
            ("authorization", &bearer_jwt),
            200,
        ),
        (
            "POST",
            "/v1/sign".into(),
            r#"{"origin": "docs", "key": "acme/log.txt"}"#,
            ("x-api-key", SK_ACME),
            200,
        ),
        (
            "GET",
            "/org/acme/log.txt".into(),
            "",
            ("authorization", "Bearer sk_wrong_key_0123456789"),
            401,
        ),
        (
            "GET",
            "/org/globex/x.txt".into(),
            "",
            ("x-api-key", SK_ACME),
            403,
        ),
        ("GET", "/nowhere".into(), "", ("x-none", ""), 404),
        ("GET", "/healthz".into(), "", ("x-none", ""), 200),
        // Through a trusted balancer: the line names the client it forwarded for.
        (
            "GET",
            "/readyz".into(),
            "",
            ("x-forwarded-for", "203.0.113.7"),
            200,
        ),
        ("GET", "/metrics".into(), "", ("x-none", ""), 200),
    ];
    let mut kinds = 0;
    for (method, path, body, header, want) in &cases {
        let url = format!("{base}{path}");
        let got = match *method {
            "POST" => post(&url, body, &[*header]).await,
            _ => get(&url, &[*header]).await,
        };
        let status = got.status.as_u16();
        let ok = if *want < 10 {
            status / 100 == *want
        } else {
            status == *want
        };
        assert!(ok, "{method} {path}: {status} {}", got.text());
        kinds += 1;
    }
    let mut limited = false;
    for _ in 0..40 {
        let got = get(&format!("{base}/lr/ok.txt"), &[]).await;
        kinds += 1;
        if got.status == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the rate limit never answered 429");

    // Lines are written when a response ends; wait for all of them.
    let deadline = edgesign::clock::instant() + Duration::from_secs(5);
    let access = loop {
        let text = edge.log();
        let access: Vec<serde_json::Value> = text
            .lines()
            .filter(|l| l.contains("edgesign::access"))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
            .collect();
        if access.len() >= kinds || edgesign::clock::instant() > deadline {
            break access;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(access.len(), kinds, "one line per request:\n{}", edge.log());
    let mut ids = std::collections::HashSet::new();
    for line in &access {
        let f = &line["fields"];
        for field in [
            "request_id",
            "route",
            "status",
            "bytes",
            "duration_us",
            "cache",
            "path",
            "method",
        ] {
            assert!(!f[field].is_null(), "{field} missing: {line}");
        }
        assert!(
            ids.insert(f["request_id"].as_str().unwrap().to_owned()),
            "ids are unique"
        );
    }
    let find = |path: &str, status: u64| {
        access
            .iter()
            .find(|l| l["fields"]["path"] == path && l["fields"]["status"] == status)
            .unwrap_or_else(|| panic!("no line for {path} {status}"))
    };
    let first = &find("/org/acme/log.txt", 302)["fields"];
    assert_eq!(
        (first["route"].as_str(), first["cache"].as_str()),
        (Some("redirect"), Some("miss"))
    );
    let stream = &find("/s/acme/log.txt", 200)["fields"];
    assert_eq!(
        (stream["route"].as_str(), stream["bytes"].as_u64()),
        (Some("stream"), Some(6))
    );
    // Every byte went out over HTTP/1.1 (which stops polling at Content-Length): complete.
    assert_eq!(stream["complete"], true, "{stream}");
    assert_eq!(find("/proxy/file", 200)["fields"]["complete"], true);
    let forwarded = &find("/readyz", 200)["fields"];
    assert_eq!(
        (forwarded["client"].as_str(), forwarded["peer"].as_str()),
        (Some("203.0.113.7"), Some("127.0.0.1")),
        "the client is the one the trusted balancer names: {forwarded}"
    );
    assert_eq!(find("/proxy/file", 200)["fields"]["route"], "proxy_file");
    assert_eq!(find("/v1/sign", 200)["fields"]["route"], "api_native_sign");
    assert_eq!(find("/metrics", 200)["fields"]["route"], "metrics");
    let hits = access
        .iter()
        .filter(|l| l["fields"]["cache"] == "hit")
        .count();
    assert!(hits >= 1, "a cache hit is logged as such");

    let text = edge.log();
    for secret in [
        sig.as_str(),
        &forged[forged.len() - 20..],
        SK_ADMIN,
        SK_ACME,
        "sk_wrong_key_0123456789",
        &jwt,
        jwt.rsplit('.').next().unwrap(),
        sts_token,
        cf_sig,
        cf_policy,
        "native-signature-value",
        "X-Amz-Signature",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "Key-Pair-Id",
        "presigned_url",
        hs_secret,
        SK,
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} leaked into the log:\n{text}"
        );
    }
}
