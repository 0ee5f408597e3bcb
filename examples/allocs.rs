//! Heap allocations per request, counted by a global allocator: edgesign's cache-hit redirect
//! and `/healthz` over a real loopback socket (hyper, the service, the access log line), and
//! a bare hyper `302` with the same `Location` as the floor. The client is in the same
//! process and allocates nothing per request (one buffer, raw HTTP/1.1 keep-alive), so every
//! allocation counted belongs to the server.
//!
//! `cargo run --release --example allocs`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fixture"
)]

use std::io::{Read, Write};

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// Allocations (reallocations counted) and bytes asked for so far.
fn counts() -> (u64, u64) {
    let s = GLOBAL.stats();
    (
        (s.allocations + s.reallocations) as u64,
        s.bytes_allocated as u64 + s.bytes_reallocated.max(0) as u64,
    )
}

/// The routes and origin (examples/redirect.toml); `[server]` is added per run.
const CONFIG: &str = include_str!("redirect.toml");

/// Sends `n` keep-alive GETs for `path` and reads each answer (no body: 302 or a small
/// `/healthz`), with one buffer and no allocation. Returns the last answer's head.
fn drive(port: u16, path: &str, n: u64) -> String {
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.set_nodelay(true).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: allocs\r\n\r\n");
    let mut buf = vec![0u8; 64 * 1024];
    let mut last = 0;
    for _ in 0..n {
        sock.write_all(request.as_bytes()).unwrap();
        let mut got = 0;
        loop {
            got += sock.read(&mut buf[got..]).unwrap();
            if let Some(end) = find(&buf[..got], b"\r\n\r\n") {
                let body = content_length(&buf[..end]);
                while got < end + 4 + body {
                    got += sock.read(&mut buf[got..]).unwrap();
                }
                last = got;
                break;
            }
        }
    }
    String::from_utf8_lossy(&buf[..last]).into_owned()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> usize {
    let text = std::str::from_utf8(head).unwrap_or("");
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// Allocations and bytes per request for `n` requests (after a warm-up).
fn per_request(port: u16, path: &str, n: u64) -> (f64, f64, String) {
    let head = drive(port, path, 1000);
    let (a0, b0) = counts();
    drive(port, path, n);
    let (a1, b1) = counts();
    (
        (a1 - a0) as f64 / n as f64,
        (b1 - b0) as f64 / n as f64,
        head.lines().next().unwrap_or("").to_owned(),
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n{CONFIG}"
    );
    let config =
        edgesign::config::Config::parse(&text, std::path::Path::new("."), &|_| None).unwrap();
    let app = edgesign::app::App::new(config).unwrap();
    let _running = rt
        .block_on(async {
            edgesign::server::serve(
                app,
                edgesign::server::Listeners {
                    http: listener,
                    https: None,
                },
            )
        })
        .unwrap();
    let location = drive(port, "/r/small.txt", 1)
        .lines()
        .find_map(|l| l.strip_prefix("location: ").map(str::to_owned))
        .unwrap();

    // The bare hyper floor, with the same Location, on the same runtime.
    let floor = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let floor_port = floor.local_addr().unwrap().port();
    floor.set_nonblocking(true).unwrap();
    let value = http::HeaderValue::from_str(&location).unwrap();
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(floor).unwrap();
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            sock.set_nodelay(true).unwrap();
            let value = value.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let value = value.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(
                            http::Response::builder()
                                .status(302)
                                .header("location", value)
                                .body(http_body_util::Empty::<bytes::Bytes>::new())
                                .unwrap(),
                        )
                    }
                });
                let mut b = hyper::server::conn::http1::Builder::new();
                b.timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(std::time::Duration::from_secs(10));
                let _ = b
                    .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                    .await;
            });
        }
    });

    let n = 100_000;
    println!("heap allocations per request, {n} keep-alive requests on one connection:");
    for (name, p, path) in [
        ("edgesign redirect (cache hit)", port, "/r/small.txt"),
        ("edgesign /healthz", port, "/healthz"),
        ("bare hyper 302, same Location", floor_port, "/"),
    ] {
        let (allocs, bytes, status) = per_request(p, path, n);
        println!("  {name:34} {allocs:6.2} allocations  {bytes:8.1} bytes   ({status})");
    }
}
