//! Resident memory of the proxy while it streams a 1 GiB object:
//! `cargo bench --bench stream_memory`.
//!
//! Starts the release `edgesign` binary as a child (so only the proxy's own memory is
//! measured), a real s3s-fs origin in this process, and pulls a 1 GiB object through the
//! proxy's stream mode twice — once from the S3 origin (the origin client path), once from a
//! `local` origin (the file path). Prints the child's VmRSS before and its peak (VmHWM) after.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

use std::io::BufRead;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const AK: &str = "AKIAIOSFODNN7EXAMPLE";
const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const GIB: u64 = 1 << 30;

fn status_kib(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return; // `cargo test --benches` asks for a listing: nothing to run quickly here.
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("edgesign-mem-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("s3/bench")).unwrap();
    std::fs::create_dir_all(dir.join("root")).unwrap();
    for f in [dir.join("s3/bench/gib.bin"), dir.join("root/gib.bin")] {
        std::fs::File::create(&f).unwrap().set_len(GIB).unwrap();
    }
    let s3 = rt.block_on(async {
        let mut b =
            s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(dir.join("s3")).unwrap());
        b.set_auth(s3s::auth::SimpleAuth::from_single(AK, SK));
        let svc = b.build();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
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
        addr
    });
    let config = dir.join("edgesign.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://127.0.0.1:1\"\n\
             [[origins]]\nname = \"demo\"\nkind = \"local\"\nroot = \"root\"\n[[origins.keys]]\nkey_id = \"k1\"\nsecret = \"0123456789abcdef0123\"\n\
             [[origins]]\nname = \"docs\"\nkind = \"s3\"\nendpoint = \"http://{s3}\"\nregion = \"us-east-1\"\nbucket = \"bench\"\npath_style = true\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n\
             [[routes]]\nprefix = \"/d/\"\norigin = \"demo\"\nmode = \"stream\"\naccess = \"public\"\n\
             [[routes]]\nprefix = \"/s/\"\norigin = \"docs\"\nmode = \"stream\"\naccess = \"public\"\n"
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_edgesign"))
        .arg("--config")
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("edgesign listening on ")
        .unwrap()
        .to_owned();
    let pid = child.id();
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let pull = |path: &str| {
        let uri: http::Uri = format!("{base}{path}").parse().unwrap();
        let client = client.clone();
        rt.block_on(async move {
            let mut body = client.get(uri).await.unwrap().into_body();
            let mut n = 0u64;
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.unwrap().into_data() {
                    n += data.len() as u64;
                }
            }
            n
        })
    };
    std::fs::write(dir.join("root/small.txt"), "warm").unwrap();
    pull("/d/small.txt");
    println!(
        "edgesign streaming 1 GiB (pid {pid}); machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for (what, path) in [
        ("local origin", "/d/gib.bin"),
        ("s3s-fs origin", "/s/gib.bin"),
    ] {
        let before = status_kib(pid, "VmRSS:");
        let start = edgesign::clock::instant();
        let n = pull(path);
        let secs = start.elapsed().as_secs_f64();
        let peak = status_kib(pid, "VmHWM:");
        assert_eq!(n, GIB, "{what}: short body");
        println!(
            "{what:>14}: {n} bytes in {secs:.1} s ({:.0} MiB/s); RSS before {} KiB, peak {} KiB, growth {:.1} MiB",
            n as f64 / secs / 1048576.0,
            before,
            peak,
            peak.saturating_sub(before) as f64 / 1024.0
        );
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
