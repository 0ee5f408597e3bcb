//! The floor under edgesign's redirect path: a bare hyper server answering every request with
//! a fixed `302`, in one of two runtime layouts:
//!
//! - `multi`: edgesign's own layout, a work-stealing runtime with one worker per core;
//! - `current`: the fastest layout for this workload, one current-thread runtime per core,
//!   each with its own `SO_REUSEPORT` listener on the same port (the kernel spreads
//!   connections), no task ever crossing threads.
//!
//! `benches/load/run.py` measures both next to edgesign, so BENCHMARKS.md can say how much of
//! a request is edgesign, how much the runtime layout, and how much hyper + the kernel.
//!
//! `cargo run --release --example hyper_floor -- 127.0.0.1:PORT [auto|http1] [timer|none] [multi|current]`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a benchmark fixture"
)]

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let addr = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:8099".into());
    let auto = args.get(2).is_none_or(|a| a == "auto");
    let timer = args.get(3).is_none_or(|a| a == "timer");
    let cores = std::env::var("FLOOR_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let current = args.get(4).is_some_and(|a| a == "current");
    if current {
        // One current-thread runtime per core, each accepting on its own SO_REUSEPORT socket.
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        let first = reuseport_listener(addr);
        let addr = first.local_addr().unwrap();
        println!("listening on {addr}");
        let mut listeners = vec![first];
        listeners.extend((1..cores).map(|_| reuseport_listener(addr)));
        let threads: Vec<_> = listeners
            .into_iter()
            .map(|std_listener| {
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    rt.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                        serve(listener, auto, timer).await;
                    });
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        return;
    }
    // The same layout as edgesign: a work-stealing runtime with one worker per core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        println!("listening on {}", listener.local_addr().unwrap());
        serve(listener, auto, timer).await;
    });
}

/// A non-blocking std listener on `addr` with `SO_REUSEPORT`, so that several share a port.
fn reuseport_listener(addr: std::net::SocketAddr) -> std::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.set_reuseport(true).unwrap();
    socket.bind(addr).unwrap();
    // `listen` needs a runtime only to register the socket; build one briefly and hand the
    // std listener to the thread that serves it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listener = rt.block_on(async { socket.listen(1024).unwrap() });
    let std_listener = listener.into_std().unwrap();
    std_listener.set_nonblocking(true).unwrap();
    std_listener
}

/// The `Location` every answer carries: `FLOOR_LOCATION` (the harness passes edgesign's own,
/// so both write the same bytes), else a short one.
fn location() -> http::HeaderValue {
    let text = std::env::var("FLOOR_LOCATION")
        .unwrap_or_else(|_| "http://127.0.0.1:1/bench/small.txt".to_owned());
    http::HeaderValue::from_maybe_shared(Bytes::from(text)).unwrap()
}

async fn serve(listener: tokio::net::TcpListener, auto: bool, timer: bool) {
    let location = location();
    loop {
        let (sock, _) = listener.accept().await.unwrap();
        sock.set_nodelay(true).unwrap();
        let location = location.clone();
        tokio::spawn(async move {
            let io = TokioIo::new(sock);
            let svc = service_fn(move |_req| {
                let location = location.clone();
                async move {
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .status(302)
                            .header("location", location)
                            .body(Empty::<Bytes>::new())
                            .unwrap(),
                    )
                }
            });
            if auto {
                let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                if timer {
                    b.http1()
                        .timer(TokioTimer::new())
                        .header_read_timeout(std::time::Duration::from_secs(10));
                }
                let _ = b.serve_connection(io, svc).await;
            } else {
                let mut b = hyper::server::conn::http1::Builder::new();
                if timer {
                    b.timer(TokioTimer::new())
                        .header_read_timeout(std::time::Duration::from_secs(10));
                }
                let _ = b.serve_connection(io, svc).await;
            }
        });
    }
}
