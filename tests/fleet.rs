//! A fleet: two replicas of the built binary behind HAProxy (health-checked on `/readyz`, as
//! in docs/deploy.md), a real s3s-fs origin, and a rolling restart under load.
//! Needs `haproxy` on PATH (`.ci/run` installs it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;

/// A port nothing listens on (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The load balancer of docs/deploy.md: round robin, `/readyz` checks every 200 ms, a
/// replica out after 2 failed checks and back after 2 good ones.
fn haproxy_cfg(lb: u16, replicas: &[(&str, u16)]) -> String {
    let servers: String = replicas
        .iter()
        .map(|(name, port)| format!("    server {name} 127.0.0.1:{port} check\n"))
        .collect();
    format!(
        "global\n    maxconn 2000\n\ndefaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n    timeout http-keep-alive 10s\n    option http-keep-alive\n\nfrontend fe_edge\n    bind 127.0.0.1:{lb}\n    default_backend be_edge\n\nbackend be_edge\n    balance roundrobin\n    option httpchk\n    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost\n    http-check expect status 200\n    default-server inter 200ms fall 2 rise 2\n    http-reuse safe\n    http-response set-header X-Served-By %[srv_name]\n{servers}"
    )
}

/// HAProxy in the foreground; killed on drop.
struct Haproxy(std::process::Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_haproxy(cfg: &Path) -> Haproxy {
    let check = std::process::Command::new("haproxy")
        .args(["-c", "-q", "-f"])
        .arg(cfg)
        .status()
        .expect("haproxy is not installed (.ci/run installs it: apt-get install -y haproxy)");
    assert!(check.success(), "haproxy rejected the config");
    Haproxy(
        std::process::Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(cfg)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// What the load saw.
#[derive(Default)]
struct Seen {
    ok: AtomicU64,
    failures: Mutex<Vec<String>>,
    locations: Mutex<BTreeSet<String>>,
    /// Requests answered per replica.
    by_replica: Mutex<BTreeMap<String, u64>>,
}

impl Seen {
    fn served_by(&self, name: &str) -> u64 {
        self.by_replica
            .lock()
            .unwrap()
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until `name` has answered `more` requests beyond `from`.
    async fn wait_served(&self, name: &str, from: u64, more: u64) {
        let deadline = edgesign::clock::instant() + Duration::from_secs(20);
        while self.served_by(name) < from + more {
            assert!(
                edgesign::clock::instant() < deadline,
                "{name} never came back into rotation"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_behind_haproxy_agree_and_roll_without_a_failed_request() {
    // A bucket must not roll mid-test: the Location is only the same within one bucket.
    let now = edgesign::clock::unix_secs(edgesign::clock::now());
    if now % 3600 > 3540 {
        tokio::time::sleep(Duration::from_secs(3600 - now % 3600 + 1)).await;
    }
    let origin = s3_origin().await;
    origin.put("fleet/report.txt", b"fleet");
    let dir = tempdir("fleet");
    let ports = [("a", free_port()), ("b", free_port())];
    let configs: Vec<_> = ports
        .iter()
        .map(|(name, port)| {
            let path = dir.join(format!("{name}.toml"));
            std::fs::write(
                &path,
                format!(
                    "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"https://files.example\"\ndrain_delay = \"2s\"\nshutdown_grace = \"10s\"\n[cache]\nbucket = \"1h\"\n[rate_limit]\nper_second = 100000\nburst = 100000\n{}[[routes]]\nprefix = \"/files/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"public\"\n",
                    s3_origin_toml(&origin, "2h")
                ),
            )
            .unwrap();
            path
        })
        .collect();
    let mut replicas: Vec<Spawned> = configs
        .iter()
        .map(|c| Spawned::start(c, false, &[]))
        .collect();
    let lb = free_port();
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(&cfg, haproxy_cfg(lb, &ports)).unwrap();
    let _haproxy = start_haproxy(&cfg);

    // Every replica, asked directly, mints the same URL, and the origin accepts it.
    let path = "/files/fleet/report.txt";
    let mut direct = BTreeSet::new();
    for r in &replicas {
        let got = get(&format!("{}{path}", r.base), &[]).await;
        assert_eq!(got.status, 302);
        direct.insert(got.header("location").to_owned());
    }
    assert_eq!(direct.len(), 1, "replicas disagree: {direct:?}");
    let expected = direct.into_iter().next().unwrap();
    assert_eq!(get(&expected, &[]).await.text(), "fleet");

    // HAProxy up, with both replicas healthy.
    let deadline = edgesign::clock::instant() + Duration::from_secs(20);
    let mut up = BTreeSet::new();
    while up.len() < 2 {
        assert!(
            edgesign::clock::instant() < deadline,
            "HAProxy never served both"
        );
        if let Ok(Ok(resp)) = tokio::time::timeout(
            Duration::from_secs(2),
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Empty<bytes::Bytes>>()
                .get(format!("http://127.0.0.1:{lb}{path}").parse().unwrap()),
        )
        .await
        {
            if let Some(by) = resp.headers().get("x-served-by") {
                up.insert(by.to_str().unwrap().to_owned());
            }
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Bounded load through HAProxy: 4 keep-alive clients until the roll is over.
    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let url: http::Uri = format!("http://127.0.0.1:{lb}{path}").parse().unwrap();
    let mut load = Vec::new();
    for _ in 0..4 {
        let (seen, stop, url) = (seen.clone(), stop.clone(), url.clone());
        load.push(tokio::spawn(async move {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Empty<bytes::Bytes>>();
            while !stop.load(Ordering::SeqCst) {
                match client.get(url.clone()).await {
                    Ok(resp) => {
                        let h = |n: &str| {
                            resp.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned()
                        };
                        let (status, location, by) =
                            (resp.status(), h("location"), h("x-served-by"));
                        let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
                        if status == 302 {
                            seen.ok.fetch_add(1, Ordering::SeqCst);
                            seen.locations.lock().unwrap().insert(location);
                            *seen.by_replica.lock().unwrap().entry(by).or_default() += 1;
                        } else {
                            seen.failures
                                .lock()
                                .unwrap()
                                .push(format!("{status} from {by:?}"));
                        }
                    }
                    Err(e) => seen.failures.lock().unwrap().push(format!("{e:?}")),
                }
            }
        }));
    }
    // Both replicas in rotation before the roll starts.
    seen.wait_served("a", 0, 20).await;
    seen.wait_served("b", 0, 20).await;

    // Rolling restart: drain one, start it again, wait until it serves; then the other.
    for (i, (name, _)) in ports.iter().enumerate() {
        replicas[i].signal("TERM");
        let status = replicas[i]
            .wait_exit(Duration::from_secs(20))
            .await
            .expect("a replica did not drain in time");
        assert!(
            status.success(),
            "{name} exited {status:?}\n{}",
            replicas[i].log()
        );
        let during = seen.ok.load(Ordering::SeqCst);
        replicas[i] = Spawned::start(&configs[i], false, &[]);
        seen.wait_served(name, seen.served_by(name), 20).await;
        assert!(
            seen.ok.load(Ordering::SeqCst) > during,
            "the fleet kept answering"
        );
    }
    stop.store(true, Ordering::SeqCst);
    for l in load {
        l.await.unwrap();
    }

    let failures = seen.failures.lock().unwrap().clone();
    let ok = seen.ok.load(Ordering::SeqCst);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during the roll: {:?}",
        failures.len(),
        ok + failures.len() as u64,
        &failures[..failures.len().min(10)]
    );
    assert!(ok >= 200, "too little load to mean anything: {ok}");
    let locations = seen.locations.lock().unwrap().clone();
    assert_eq!(
        locations,
        BTreeSet::from([expected]),
        "every replica, before and after restarting, gave the same Location"
    );
}
