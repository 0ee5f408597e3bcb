//! The floor under edgesign's redirect path: a bare hyper server on the same runtime layout
//! (a work-stealing runtime, one worker per core) answering every
//! request with a fixed `302`. `benches/load/run.py` measures it next to edgesign, so
//! BENCHMARKS.md can say how much of a request is edgesign and how much is hyper + the kernel.
//!
//! `cargo run --release --example hyper_floor -- 127.0.0.1:PORT [auto|http1] [timer|none]`
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
    // The same layout as edgesign: a work-stealing runtime with one worker per core.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
        println!("listening on {}", listener.local_addr().unwrap());
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            sock.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let io = TokioIo::new(sock);
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(
                        http::Response::builder()
                            .status(302)
                            .header("location", "http://127.0.0.1:1/bench/small.txt")
                            .body(Empty::<Bytes>::new())
                            .unwrap(),
                    )
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
    });
}
