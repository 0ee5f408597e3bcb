//! What the service itself costs per request, with no socket and no hyper: `App::handle` on a
//! cache-hit redirect, in a loop on one thread. Compare with the CPU per request the load
//! harness measures to see how much of a request is edgesign and how much is the server.
//!
//! `cargo run --release --example handle_cost`
#![allow(clippy::unwrap_used, reason = "a benchmark fixture")]

fn main() {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://edge.example\"\n{}",
        include_str!("redirect.toml")
    );
    let config =
        edgesign::config::Config::parse(&text, std::path::Path::new("."), &|_| None).unwrap();
    let app = edgesign::app::App::new(config).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let peer: std::net::SocketAddr = "127.0.0.1:5555".parse().unwrap();
    rt.block_on(async {
        let mk = || {
            http::Request::get("/r/small.txt")
                .header("host", "127.0.0.1")
                .header("user-agent", "wrk")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap()
        };
        let probe = app.handle(mk(), peer);
        println!(
            "App::handle future: {} bytes",
            std::mem::size_of_val(&probe)
        );
        probe.await;
        for _ in 0..3 {
            let n = 200_000;
            let t = edgesign::clock::instant();
            for _ in 0..n {
                let r = app.handle(mk(), peer).await;
                std::hint::black_box(r);
            }
            println!(
                "handle: {:.2} us/req",
                t.elapsed().as_secs_f64() * 1e6 / n as f64
            );
            let t = edgesign::clock::instant();
            for _ in 0..n {
                std::hint::black_box(mk());
            }
            println!(
                "request build only: {:.2} us/req",
                t.elapsed().as_secs_f64() * 1e6 / n as f64
            );
        }
    });
}
