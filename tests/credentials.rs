//! Credentials from the AWS SDK's own resolver (`[[origins.keys]] source`), through real SDK
//! code paths against local stand-ins on 127.0.0.1:
//! - the ECS container credential endpoint (`AWS_CONTAINER_CREDENTIALS_FULL_URI`): a tiny
//!   server that hands out keys with short expiries and rotates them, and fails on demand;
//! - web identity (EKS / IRSA) and `assume_role` against `moto`'s server as STS.
//!
//! The object store is s3s-fs, which verifies every presigned URL; it knows the keys the
//! stand-ins handed out (and, for moto, reads them from moto's own state).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use support::*;

/// Keys the origin accepts: access key → (secret, expiry as Unix seconds).
#[derive(Clone, Default)]
struct Issued(Arc<Mutex<HashMap<String, (String, u64)>>>);

#[async_trait::async_trait]
impl s3s::auth::S3Auth for Issued {
    async fn get_secret_key(&self, access_key: &str) -> s3s::S3Result<s3s::auth::SecretKey> {
        let known = self.0.lock().unwrap().get(access_key).cloned();
        match known {
            Some((secret, _)) => Ok(secret.into()),
            None => Err(s3s::s3_error!(InvalidAccessKeyId)),
        }
    }
}

/// The keys moto's STS handed out, read from moto's own state (`/moto-api/data.json`).
#[derive(Clone)]
struct MotoKeys(String);

impl MotoKeys {
    async fn roles(&self) -> Vec<serde_json::Value> {
        let got = get(&format!("{}/moto-api/data.json", self.0), &[]).await;
        got.json()["sts"]["AssumedRole"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl s3s::auth::S3Auth for MotoKeys {
    async fn get_secret_key(&self, access_key: &str) -> s3s::S3Result<s3s::auth::SecretKey> {
        self.roles()
            .await
            .iter()
            .find(|r| r["access_key_id"] == access_key)
            .and_then(|r| r["secret_access_key"].as_str().map(str::to_owned))
            .map(Into::into)
            .ok_or_else(|| s3s::s3_error!(InvalidAccessKeyId))
    }
}

fn now() -> u64 {
    edgesign::clock::unix_secs(edgesign::clock::now())
}

/// `X-Amz-Date` + `X-Amz-Expires` of a presigned URL, in Unix seconds.
fn url_expiry(url: &str) -> u64 {
    let date = query_param(url, "X-Amz-Date").unwrap();
    let t = humantime::parse_rfc3339(&format!(
        "{}-{}-{}T{}:{}:{}Z",
        &date[0..4],
        &date[4..6],
        &date[6..8],
        &date[9..11],
        &date[11..13],
        &date[13..15]
    ))
    .unwrap();
    edgesign::clock::unix_secs(t)
        + query_param(url, "X-Amz-Expires")
            .unwrap()
            .parse::<u64>()
            .unwrap()
}

fn access_key(url: &str) -> String {
    let credential = query_param(url, "X-Amz-Credential").unwrap();
    credential.split("%2F").next().unwrap().to_owned()
}

/// Polls `check` every 50 ms until it holds or `within` passes.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = edgesign::clock::instant() + within;
    while edgesign::clock::instant() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Environment that leaves the SDK no credentials but the stand-in's: no profile files, no
/// instance metadata.
fn sdk_env(dir: &std::path::Path) -> Vec<(String, String)> {
    let none = dir.join("no-such-file");
    vec![
        ("AWS_CONFIG_FILE".into(), none.display().to_string()),
        (
            "AWS_SHARED_CREDENTIALS_FILE".into(),
            none.display().to_string(),
        ),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("HOME".into(), dir.display().to_string()),
    ]
}

/// The ECS container endpoint: keys `ASIAEDGE<n>` living `lifetime` seconds; a new one is
/// handed out once the current one has less than half its life left. Answers 500 while
/// `failing`.
struct Ecs {
    failing: bool,
    generation: u32,
    expires_at: u64,
    asked: u32,
}

const LIFETIME: u64 = 12;

fn ecs_answer(
    state: &Arc<Mutex<Ecs>>,
    issued: &Issued,
    parts: &http::request::Parts,
) -> http::Response<http_body_util::Full<Bytes>> {
    let mut s = state.lock().unwrap();
    s.asked += 1;
    if s.failing || parts.uri.path() != "/creds" {
        return http::Response::builder()
            .status(500)
            .body(http_body_util::Full::new(Bytes::from_static(b"{}")))
            .unwrap();
    }
    let now = now();
    if s.generation == 0 || s.expires_at.saturating_sub(now) <= LIFETIME / 2 {
        s.generation += 1;
        s.expires_at = now + LIFETIME;
        issued.0.lock().unwrap().insert(
            format!("ASIAEDGE{}", s.generation),
            (
                format!("ecs-secret-{}-0123456789abcdef", s.generation),
                s.expires_at,
            ),
        );
    }
    let expiration = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_secs(s.expires_at),
    );
    let body = json!({
        "AccessKeyId": format!("ASIAEDGE{}", s.generation),
        "SecretAccessKey": format!("ecs-secret-{}-0123456789abcdef", s.generation),
        "Token": format!("ecs-token-{}", s.generation),
        "Expiration": expiration.to_string(),
    });
    http::Response::builder()
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecs_credentials_rotate_and_no_url_outlives_them() {
    let issued = Issued::default();
    let origin = s3_origin_with_auth(issued.clone()).await;
    origin.put("acme/report.txt", b"rotating");
    let state = Arc::new(Mutex::new(Ecs {
        failing: true,
        generation: 0,
        expires_at: 0,
        asked: 0,
    }));
    let ecs = {
        let (state, issued) = (state.clone(), issued.clone());
        serve_fn(move |parts| ecs_answer(&state, &issued, parts)).await
    };
    let dir = tempdir("creds-ecs");
    let mut env = sdk_env(&dir);
    env.push((
        "AWS_CONTAINER_CREDENTIALS_FULL_URI".into(),
        format!("http://{ecs}/creds"),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let edge = spawn_with(
        "creds-ecs",
        &format!(
            "[cache]\nbucket = \"1m\"\n[[origins]]\nname = \"docs\"\nkind = \"s3\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"{BUCKET}\"\npath_style = true\nttl = \"1h\"\n[[origins.keys]]\nsource = \"default\"\n[[routes]]\nprefix = \"/r/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"public\"\n{}",
            origin.endpoint(),
            api_keys_toml()
        ),
        &env,
    );
    let base = edge.base.clone();

    // The provider fails: not ready, and nothing is signed (503, not a dead URL).
    assert!(
        eventually(Duration::from_secs(5), || async {
            state.lock().unwrap().asked >= 1
        })
        .await,
        "the SDK never asked the container endpoint; log:\n{}",
        edge.log()
    );
    let ready = get(&format!("{base}/readyz"), &[]).await;
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert_eq!(ready.json()["origins"], json!(["docs"]));
    let refused = get(&format!("{base}/r/acme/report.txt"), &[]).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    // The alerts see it too: not ready, and credentials that "expire" now.
    assert_eq!(metric(&base, "edgesign_ready").await, 0.0);
    let text = get(&format!("{base}/metrics"), &[]).await.text();
    assert!(
        text.contains("edgesign_credentials_expiry_seconds{origin=\"docs\"} 0"),
        "{text}"
    );
    assert!(
        edge.wait_for_log("cannot obtain signing credentials", Duration::from_secs(10))
            .await,
        "the failure is not logged:\n{}",
        edge.log()
    );

    // The endpoint recovers: ready once the retry (1 s, 2 s, …) gets keys.
    state.lock().unwrap().failing = false;
    assert!(
        eventually(Duration::from_secs(15), || async {
            get(&format!("{base}/readyz"), &[]).await.status == 200
        })
        .await,
        "never ready; log:\n{}",
        edge.log()
    );

    assert_eq!(metric(&base, "edgesign_ready").await, 1.0);
    let first = get(&format!("{base}/r/acme/report.txt"), &[]).await;
    assert_eq!(first.status, 302, "{}", first.text());
    let url = first.header("location").to_owned();
    assert_eq!(access_key(&url), "ASIAEDGE1", "{url}");
    assert_eq!(
        query_param(&url, "X-Amz-Security-Token"),
        Some("ecs-token-1")
    );
    let expiry_1 = issued.0.lock().unwrap()["ASIAEDGE1"].1;
    assert!(
        url_expiry(&url) <= expiry_1,
        "the URL outlives its credentials: {} > {expiry_1}",
        url_expiry(&url)
    );
    let fetched = get(&url, &[]).await;
    assert_eq!(
        (fetched.status.as_u16(), fetched.text()),
        (200, "rotating".into())
    );
    let left = metric(
        &base,
        "edgesign_credentials_expiry_seconds{origin=\"docs\"}",
    )
    .await;
    assert!(left > 0.0 && left <= LIFETIME as f64, "expiry gauge {left}");

    // An API call that asks for an hour gets no more than the credentials have.
    let bearer = format!("Bearer {SK_ADMIN}");
    let api = post(
        &format!("{base}/v1/sign"),
        r#"{"origin": "docs", "key": "acme/report.txt", "expires_in": 3600}"#,
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(api.status, 200, "{}", api.text());
    let api_url = api.json()["url"].as_str().unwrap().to_owned();
    let held = issued.0.lock().unwrap()[&access_key(&api_url)].1;
    assert!(url_expiry(&api_url) <= held, "{api_url}");

    // Half-way through their life the SDK asks again and gets new keys: the next URL is
    // signed with them at once (not served from the cache), and s3s-fs accepts it.
    let deadline = edgesign::clock::instant() + Duration::from_secs(20);
    let rotated = loop {
        let got = get(&format!("{base}/r/acme/report.txt"), &[]).await;
        let url = got.header("location").to_owned();
        if got.status == 302 && access_key(&url) != "ASIAEDGE1" {
            break url;
        }
        assert!(
            edgesign::clock::instant() < deadline,
            "the credentials never rotated; log:\n{}",
            edge.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let key = access_key(&rotated);
    let expiry = issued.0.lock().unwrap()[&key].1;
    assert!(url_expiry(&rotated) <= expiry, "{rotated}");
    let fetched = get(&rotated, &[]).await;
    assert_eq!(
        (fetched.status.as_u16(), fetched.text()),
        (200, "rotating".into())
    );
    // The old URL keeps working while its own credentials live.
    if now() < expiry_1 {
        assert_eq!(get(&url, &[]).await.status, 200);
    }
    let log = edge.log();
    assert!(
        !log.contains("ecs-secret-") && !log.contains("ecs-token-"),
        "a secret reached the log:\n{log}"
    );
}

/// `python3 -m moto.server` on a free port, stopped by PID.
struct Moto {
    child: std::process::Child,
    base: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn moto() -> Moto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = tempdir("moto").join("moto.log");
    let child = std::process::Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("python3 -m moto.server (pip install 'moto[server]==5.2.5')");
    let moto = Moto {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let up = eventually(Duration::from_secs(30), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    assert!(
        up,
        "moto did not start: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    moto
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_identity_and_assume_role_against_moto_sts() {
    let sts = moto().await;
    let keys = MotoKeys(sts.base.clone());
    let origin = s3_origin_with_auth(keys.clone()).await;
    origin.put("acme/irsa.txt", b"web identity");
    let dir = tempdir("creds-sts");
    let token = dir.join("token");
    std::fs::write(
        &token,
        "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJl",
    )
    .unwrap();
    let mut env = sdk_env(&dir);
    env.extend([
        (
            "AWS_WEB_IDENTITY_TOKEN_FILE".into(),
            token.display().to_string(),
        ),
        (
            "AWS_ROLE_ARN".into(),
            "arn:aws:iam::123456789012:role/edgesign-pod".into(),
        ),
        ("AWS_ROLE_SESSION_NAME".into(), "edgesign-test".into()),
        ("AWS_ENDPOINT_URL_STS".into(), sts.base.clone()),
    ]);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let origin_block = |name: &str, role: &str| {
        format!(
            "[[origins]]\nname = \"{name}\"\nkind = \"s3\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"{BUCKET}\"\npath_style = true\nttl = \"1h\"\n[[origins.keys]]\nsource = \"default\"\n{role}[[routes]]\nprefix = \"/{name}/\"\norigin = \"{name}\"\nmode = \"redirect\"\naccess = \"public\"\n",
            origin.endpoint()
        )
    };
    let edge = spawn_with(
        "creds-sts",
        &format!(
            "{}{}",
            origin_block("irsa", ""),
            origin_block(
                "signer",
                "assume_role = \"arn:aws:iam::123456789012:role/edgesign-signer\"\n"
            )
        ),
        &env,
    );
    let base = edge.base.clone();
    assert!(
        eventually(Duration::from_secs(30), || async {
            get(&format!("{base}/readyz"), &[]).await.status == 200
        })
        .await,
        "never ready; log:\n{}",
        edge.log()
    );
    let start = now();
    for (route, role) in [
        ("irsa", "arn:aws:iam::123456789012:role/edgesign-pod"),
        ("signer", "arn:aws:iam::123456789012:role/edgesign-signer"),
    ] {
        let got = get(&format!("{base}/{route}/acme/irsa.txt"), &[]).await;
        assert_eq!(got.status, 302, "{route}: {}", got.text());
        let url = got.header("location").to_owned();
        let key = access_key(&url);
        let roles = keys.roles().await;
        let issued = roles
            .iter()
            .find(|r| r["access_key_id"] == key.as_str())
            .unwrap_or_else(|| panic!("{route}: {key} was not issued by STS: {roles:?}"));
        assert_eq!(issued["role_arn"], role, "{route}");
        assert_eq!(
            query_param(&url, "X-Amz-Security-Token").map(|t| t.len() > 20),
            Some(true),
            "{route}: temporary credentials travel with their session token"
        );
        // STS's default session is an hour: the URL ends no later.
        assert!(url_expiry(&url) <= start + 3600 + 5, "{route}: {url}");
        let fetched = get(&url, &[]).await;
        assert_eq!(
            (fetched.status.as_u16(), fetched.text()),
            (200, "web identity".into()),
            "{route}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_profile_signs_and_a_missing_one_keeps_the_origin_unready() {
    let origin = s3_origin().await;
    origin.put("acme/profile.txt", b"from a profile");
    let dir = tempdir("creds-profile");
    let credentials = dir.join("credentials");
    std::fs::write(
        &credentials,
        format!("[default]\naws_access_key_id = AKIADEFAULTNOTUSED00\naws_secret_access_key = not-this-one\n\n[signer]\naws_access_key_id = {AK}\naws_secret_access_key = {SK}\n"),
    )
    .unwrap();
    let mut env = sdk_env(&dir);
    env.retain(|(k, _)| k != "AWS_SHARED_CREDENTIALS_FILE");
    env.push((
        "AWS_SHARED_CREDENTIALS_FILE".into(),
        credentials.display().to_string(),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let block = |name: &str, profile: &str| {
        format!(
            "[[origins]]\nname = \"{name}\"\nkind = \"s3\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"{BUCKET}\"\npath_style = true\nttl = \"1h\"\n[[origins.keys]]\nsource = \"profile\"\nprofile = \"{profile}\"\n[[routes]]\nprefix = \"/{name}/\"\norigin = \"{name}\"\nmode = \"redirect\"\naccess = \"public\"\n",
            origin.endpoint()
        )
    };
    let edge = spawn_with(
        "creds-profile",
        &format!("{}{}", block("good", "signer"), block("absent", "nobody")),
        &env,
    );
    let base = edge.base.clone();
    // The provider answers within moments of start-up.
    assert!(
        eventually(Duration::from_secs(10), || async {
            get(&format!("{base}/good/acme/profile.txt"), &[])
                .await
                .status
                == 302
        })
        .await,
        "{}",
        edge.log()
    );
    let good = get(&format!("{base}/good/acme/profile.txt"), &[]).await;
    let url = good.header("location").to_owned();
    assert_eq!(access_key(&url), AK, "{url}");
    let fetched = get(&url, &[]).await;
    assert_eq!(
        (fetched.status.as_u16(), fetched.text()),
        (200, "from a profile".into())
    );
    // A profile that does not exist: that origin answers 503 and keeps /readyz at 503,
    // naming it; the other origin serves on.
    assert_eq!(
        get(&format!("{base}/absent/acme/profile.txt"), &[])
            .await
            .status,
        503
    );
    let ready = get(&format!("{base}/readyz"), &[]).await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["origins"], json!(["absent"]));
    assert!(!edge.log().contains(SK), "the secret reached the log");
}
