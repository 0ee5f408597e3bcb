//! The proxy's request paths, in process over loopback (criterion):
//! `cargo bench --bench proxy`. One keep-alive client, one request per iteration, so the
//! figure is per-request latency (client + server on the same 2 cores). The side-by-side
//! load harness against nginx lives in BENCHMARKS.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use edgesign::app::App;
use edgesign::config::Config;
use edgesign::server::{self, Listeners};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const AK: &str = "AKIAIOSFODNN7EXAMPLE";
const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("edgesign-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("root")).unwrap();
    std::fs::create_dir_all(dir.join("s3/bench")).unwrap();
    let mib: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("root/ok.txt"), "fine").unwrap();
    std::fs::write(dir.join("root/big.bin"), &mib).unwrap();
    std::fs::write(dir.join("s3/bench/big.bin"), &mib).unwrap();

    let (base, _running) = rt.block_on(async {
        // A real S3-compatible origin for the stream path.
        let mut b = s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(dir.join("s3")).unwrap());
        b.set_auth(s3s::auth::SimpleAuth::from_single(AK, SK));
        let svc = b.build();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s3 = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((sock, _)) = l.accept().await {
                let _ = sock.set_nodelay(true);
                let svc = svc.clone();
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = http.local_addr().unwrap().port();
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
             [rate_limit]\nper_second = 100000000\nburst = 100000000\n\
             [[origins]]\nname = \"demo\"\nkind = \"local\"\nroot = \"root\"\n[[origins.keys]]\nkey_id = \"k1\"\nsecret = \"0123456789abcdef0123\"\n\
             [[origins]]\nname = \"docs\"\nkind = \"s3\"\nendpoint = \"http://{s3}\"\nregion = \"us-east-1\"\nbucket = \"bench\"\npath_style = true\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n\
             [[routes]]\nprefix = \"/r/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"public\"\n\
             [[routes]]\nprefix = \"/d/\"\norigin = \"demo\"\nmode = \"stream\"\naccess = \"public\"\n\
             [[routes]]\nprefix = \"/s/\"\norigin = \"docs\"\nmode = \"stream\"\naccess = \"public\"\n"
        );
        let config = Config::parse(&text, &dir, &|_| None).unwrap();
        let running = server::serve(App::new(config).unwrap(), Listeners { http, https: None }).unwrap();
        (format!("http://127.0.0.1:{port}"), running)
    });
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let fetch = |path: &str| {
        let uri: http::Uri = format!("{base}{path}").parse().unwrap();
        let client = client.clone();
        async move {
            let resp = client.get(uri).await.unwrap();
            let status = resp.status();
            let n = resp.into_body().collect().await.unwrap().to_bytes().len();
            (status, n)
        }
    };
    rt.block_on(fetch("/r/ok.txt"));

    c.bench_function("proxy_redirect_cache_hit", |b| {
        b.iter(|| {
            let (status, _) = rt.block_on(fetch(black_box("/r/ok.txt")));
            assert_eq!(status, 302);
        })
    });
    let mut g = c.benchmark_group("proxy_stream_1mib");
    g.throughput(Throughput::Bytes(mib.len() as u64));
    g.bench_function("local_origin", |b| {
        b.iter(|| assert_eq!(rt.block_on(fetch("/d/big.bin")).1, 1_048_576))
    });
    g.bench_function("s3s_fs_origin", |b| {
        b.iter(|| assert_eq!(rt.block_on(fetch("/s/big.bin")).1, 1_048_576))
    });
    // The same object fetched from s3s-fs directly (a URL the proxy minted): the origin's
    // own cost, to tell it apart from the proxy's.
    let direct = rt.block_on(async {
        let uri: http::Uri = format!("{base}/r/big.bin").parse().unwrap();
        let resp = client.get(uri).await.unwrap();
        resp.headers()["location"].to_str().unwrap().to_owned()
    });
    g.bench_function("s3s_fs_direct_no_proxy", |b| {
        b.iter(|| {
            let uri: http::Uri = direct.parse().unwrap();
            let n = rt.block_on(async {
                client
                    .get(uri)
                    .await
                    .unwrap()
                    .into_body()
                    .collect()
                    .await
                    .unwrap()
                    .to_bytes()
                    .len()
            });
            assert_eq!(n, 1_048_576);
        })
    });
    g.finish();
}

#[allow(missing_docs, reason = "generated by criterion_group!")]
mod group {
    use super::*;
    criterion_group!(benches, bench);
}
use group::benches;
criterion_main!(benches);
