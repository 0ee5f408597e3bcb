//! CloudFront signed cookies, configured as docs/config.md tells a user to and driven the
//! ways players and pages use them:
//!
//! - a cookie route on the proxy's own name (TLS), followed by `curl` with a cookie jar, as
//!   a browser would: the cookies for the playlist's directory are set for the cookie domain,
//!   and every segment of an HLS playlist is then fetched from the distribution with them;
//! - `POST /v1/cookies` for each key type (RSA SHA-1, RSA SHA-256, ECDSA P-256);
//! - stale cookies (minted by botocore) rescued on a host route that takes over the
//!   distribution's name, forged ones refused before anything is fetched.
//!
//! The distribution is `support/cloudfront_origin.py`, a stand-in written from CloudFront's
//! guide that checks the policy, the signature with the *public* key (`cryptography`), and
//! that the `Resource` covers the URL.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

const DOMAIN: &str = "cdn.example.com";
const PROXY_NAME: &str = "media.example.com";
const RSA_KID: &str = "K2JCJMDEHXQW5F";
const EC_KID: &str = "KECDSAP256TEST";

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn now() -> u64 {
    edgesign::clock::unix_secs(edgesign::clock::now())
}

/// A certificate for the proxy's and the distribution's names (`openssl`), in `dir`.
fn certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("names.crt"), dir.join("names.key"));
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=edgesign cookie tests"])
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{PROXY_NAME},DNS:{DOMAIN}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success(), "openssl req failed");
    (cert, key)
}

/// The stand-in distribution, stopped by PID.
struct Distribution {
    child: std::process::Child,
    tls_port: u16,
    plain_port: u16,
    root: PathBuf,
    seen: PathBuf,
}

impl Distribution {
    fn start(dir: &Path, cert: &Path, key: &Path) -> Distribution {
        let root = dir.join("distribution");
        let seen = dir.join("seen.log");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(&seen, "").unwrap();
        let mut child = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/cloudfront_origin.py"))
            .args([&root, cert, key, &seen])
            .arg(format!(
                "{RSA_KID}={}",
                vectors().join("cloudfront_test_key.pub.pem").display()
            ))
            .arg(format!(
                "{EC_KID}={}",
                vectors().join("cloudfront_test_ec_key.pub.pem").display()
            ))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 with cryptography (tests/requirements.txt)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ports: Vec<u16> = line
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        assert_eq!(
            ports.len(),
            2,
            "cloudfront_origin.py did not start: {line:?}"
        );
        Distribution {
            child,
            tls_port: ports[0],
            plain_port: ports[1],
            root,
            seen,
        }
    }

    fn put(&self, key: &str, body: &str) {
        let path = self.root.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }

    /// Every request: `(path and query, cookie names sent)`.
    fn seen(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.seen)
            .unwrap()
            .lines()
            .map(|l| {
                let (p, c) = l.split_once(' ').unwrap_or((l, ""));
                (p.to_owned(), c.to_owned())
            })
            .collect()
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HLS playlist and its segments under `acme/videos/ep1/`, and one other episode.
fn library(d: &Distribution) -> Vec<String> {
    let segments: Vec<String> = (1..=4).map(|i| format!("seg-{i:03}.ts")).collect();
    let mut playlist = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n".to_owned();
    for s in &segments {
        playlist.push_str(&format!("#EXTINF:4.0,\n{s}\n"));
        d.put(&format!("acme/videos/ep1/{s}"), &format!("segment {s}"));
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    d.put("acme/videos/ep1/master.m3u8", &playlist);
    d.put("acme/videos/ep2/seg-001.ts", "another episode");
    segments
}

fn origins_toml(endpoint: Option<&str>) -> String {
    let endpoint = endpoint
        .map(|e| format!("endpoint = \"{e}\"\n"))
        .unwrap_or_default();
    let rsa = vectors().join("cloudfront_test_key.pem");
    let ec = vectors().join("cloudfront_test_ec_key.pem");
    let origin = |name: &str, hash: &str, kid: &str, pem: &Path| {
        format!(
            "[[origins]]\nname = \"{name}\"\nkind = \"cloudfront\"\ndomain = \"{DOMAIN}\"\n{endpoint}cookie_domain = \".example.com\"\nhash_algorithm = \"{hash}\"\nttl = \"1h\"\n[[origins.keys]]\nkey_pair_id = \"{kid}\"\nprivate_key_file = \"{}\"\n\n",
            pem.display()
        )
    };
    format!(
        "{}{}{}",
        origin("cdn", "SHA1", RSA_KID, &rsa),
        origin("cdn256", "SHA256", RSA_KID, &rsa),
        origin("cdnec", "SHA256", EC_KID, &ec),
    )
}

/// `curl` (a real client with a real cookie engine) against the proxy and the distribution
/// by their names, resolved to 127.0.0.1.
struct Curl {
    cacert: PathBuf,
    jar: PathBuf,
    proxy_port: u16,
    cdn_port: u16,
}

impl Curl {
    /// Runs curl with the jar (read and written); returns (status line info, body).
    fn run(&self, args: &[&str]) -> (String, String) {
        let out = Command::new("curl")
            .args(["-sS", "--max-redirs", "3", "--cacert"])
            .arg(&self.cacert)
            .args([
                "--resolve",
                &format!("{PROXY_NAME}:{}:127.0.0.1", self.proxy_port),
            ])
            .args([
                "--connect-to",
                &format!("{DOMAIN}:443:127.0.0.1:{}", self.cdn_port),
            ])
            .arg("-b")
            .arg(&self.jar)
            .arg("-c")
            .arg(&self.jar)
            .args(["-w", "\n%{http_code} %{num_redirects} %{url_effective}"])
            .args(args)
            .output()
            .expect("curl");
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, info) = text.rsplit_once('\n').unwrap();
        (info.to_owned(), body.to_owned())
    }

    /// The cookies in the jar: `(domain, name, value)`.
    fn jar(&self) -> Vec<(String, String, String)> {
        std::fs::read_to_string(&self.jar)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let l = l.strip_prefix("#HttpOnly_").unwrap_or(l);
                if l.starts_with('#') || l.is_empty() {
                    return None;
                }
                let f: Vec<&str> = l.split('\t').collect();
                Some((f[0].to_owned(), f[5].to_owned(), f[6].to_owned()))
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hls_player_gets_cookies_from_a_cookie_route_and_fetches_every_segment() {
    let dir = tempdir("cookies-hls");
    let (cert, key) = certificate(&dir);
    let cdn = Distribution::start(&dir, &cert, &key);
    let segments = library(&cdn);
    let tls = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tls_port = tls.local_addr().unwrap().port();
    drop(tls);
    let config = dir.join("config.toml");
    let plain = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:{plain}\"\ntls_listen = \"127.0.0.1:{tls_port}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\npublic_url = \"https://{PROXY_NAME}:{tls_port}\"\n\n{}[[routes]]\nprefix = \"/videos/\"\norigin = \"cdn\"\nmode = \"cookie\"\naccess = \"org\"\n\n[auth]\n{}",
            cert.display(),
            key.display(),
            origins_toml(None),
            api_keys_toml()
        ),
    )
    .unwrap();
    let edge = Spawned::start(&config, true, &[("RUST_LOG", "debug")]);
    let curl = Curl {
        cacert: cert.clone(),
        jar: dir.join("jar.txt"),
        proxy_port: tls_port,
        cdn_port: cdn.tls_port,
    };
    let page = format!("https://{PROXY_NAME}:{tls_port}/videos/acme/videos/ep1/master.m3u8");

    // No credentials: 401, and no cookies.
    let (info, _) = curl.run(&["-L", &page]);
    assert!(info.starts_with("401 0"), "{info}");
    assert!(curl.jar().is_empty(), "{:?}", curl.jar());

    // Another org's directory: 403, and no cookies.
    let (info, _) = curl.run(&[
        "-L",
        "-H",
        &format!("Authorization: Bearer {SK_ACME}"),
        &format!("https://{PROXY_NAME}:{tls_port}/videos/other/videos/ep1/master.m3u8"),
    ]);
    assert!(info.starts_with("403 0"), "{info}");
    assert!(curl.jar().is_empty());

    // The player's page asks for the playlist: 302 to the distribution, cookies set for
    // .example.com, and the playlist comes from the distribution with them.
    let (info, playlist) = curl.run(&[
        "-L",
        "-H",
        &format!("Authorization: Bearer {SK_ACME}"),
        &page,
    ]);
    assert_eq!(
        info,
        format!("200 1 https://{DOMAIN}/acme/videos/ep1/master.m3u8"),
        "{playlist}"
    );
    assert!(playlist.starts_with("#EXTM3U"), "{playlist}");
    let mut jar = curl.jar();
    jar.sort_by(|a, b| b.1.cmp(&a.1));
    let names: Vec<&str> = jar.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "CloudFront-Signature",
            "CloudFront-Policy",
            "CloudFront-Key-Pair-Id"
        ],
        "{jar:?}"
    );
    assert!(jar.iter().all(|(d, _, _)| d == ".example.com"), "{jar:?}");
    let policy = edgesign::sign::encoding::cloudfront_b64_decode(&jar[1].2).unwrap();
    let policy: serde_json::Value = serde_json::from_slice(&policy).unwrap();
    assert_eq!(
        policy["Statement"][0]["Resource"],
        format!("https://{DOMAIN}/acme/videos/ep1/*")
    );

    // Every segment the playlist names, fetched from the distribution with the jar alone.
    let listed: Vec<&str> = playlist
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    assert_eq!(listed, segments);
    for s in &listed {
        let (info, body) = curl.run(&[&format!("https://{DOMAIN}/acme/videos/ep1/{s}")]);
        assert!(info.starts_with("200"), "{s}: {info} {body}");
        assert_eq!(body, format!("segment {s}"));
    }
    // Not another episode: the Resource covers ep1/ only.
    let (info, _) = curl.run(&[&format!("https://{DOMAIN}/acme/videos/ep2/seg-001.ts")]);
    assert!(info.starts_with("403"), "{info}");

    // The answer that set them is private and never stored.
    let (info, headers) = curl.run(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-H",
        &format!("Authorization: Bearer {SK_ACME}"),
        &page,
    ]);
    assert!(info.starts_with("302"), "{info}");
    let headers = headers.to_ascii_lowercase();
    assert!(
        headers.contains("cache-control: private, no-store"),
        "{headers}"
    );
    assert_eq!(
        headers.matches("set-cookie: cloudfront-").count(),
        3,
        "{headers}"
    );
    assert!(
        headers.contains("; domain=.example.com; path=/; secure; httponly; samesite=lax; max-age="),
        "{headers}"
    );

    // Neither the cookies nor the policy reach the log, even at debug level.
    let log = edge.log();
    for (_, name, value) in &jar {
        assert!(!log.contains(value.as_str()), "{name} logged:\n{log}");
    }
    assert!(!log.contains("CloudFront-Signature="), "{log}");
}

/// The stand-in answers `path` (on the distribution) for these cookies.
async fn at_distribution(cdn: &Distribution, path: &str, cookie: &str) -> Got {
    get(
        &format!("http://127.0.0.1:{}{path}", cdn.plain_port),
        &[("host", DOMAIN), ("cookie", cookie)],
    )
    .await
}

/// The `Cookie` header a browser would send back for these `Set-Cookie` lines.
fn cookie_of(got: &Got) -> String {
    got.headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

fn policy_of(cookie: &str) -> serde_json::Value {
    let p = cookie
        .split("; ")
        .find_map(|c| c.strip_prefix("CloudFront-Policy="))
        .unwrap();
    serde_json::from_slice(&edgesign::sign::encoding::cloudfront_b64_decode(p).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_cookies_signs_with_every_key_type_and_checks_the_whole_prefix() {
    let dir = tempdir("cookies-api");
    let (cert, key) = certificate(&dir);
    let cdn = Distribution::start(&dir, &cert, &key);
    library(&cdn);
    let s3 = s3_origin().await;
    let proxy = proxy(
        &format!(
            "{}{}\n[auth]\n{}",
            origins_toml(None),
            s3_origin_toml(&s3, "1h"),
            api_keys_toml()
        ),
        false,
    )
    .await;
    let api = |body: serde_json::Value, key: Option<&'static str>| {
        let base = proxy.base.clone();
        async move {
            let auth = key.map(|k| format!("Bearer {k}"));
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("authorization", a.as_str())).collect();
            post(&format!("{base}/v1/cookies"), &body.to_string(), &headers).await
        }
    };
    for origin in ["cdn", "cdn256", "cdnec"] {
        let got = api(
            serde_json::json!({"origin": origin, "prefix": "acme/videos/ep1/"}),
            Some(SK_ACME),
        )
        .await;
        assert_eq!(got.status, 200, "{origin}: {}", got.text());
        assert_eq!(got.header("cache-control"), "private, no-store");
        let json = got.json();
        assert_eq!(
            json["resource"],
            format!("https://{DOMAIN}/acme/videos/ep1/*"),
            "{origin}"
        );
        let cookie = cookie_of(&got);
        // The JSON and the Set-Cookie headers carry the same values.
        for (name, value) in json["cookies"].as_object().unwrap() {
            assert!(
                cookie.contains(&format!("{name}={}", value.as_str().unwrap())),
                "{origin}: {name}"
            );
        }
        let hashed = json["cookies"].get("CloudFront-Hash-Algorithm");
        assert_eq!(hashed.is_some(), origin != "cdn", "{origin}: {json}");
        // The distribution verifies them with the public key (cryptography), for every
        // segment under the prefix and nothing beside it.
        let ok = at_distribution(&cdn, "/acme/videos/ep1/seg-002.ts", &cookie).await;
        assert_eq!(ok.status, 200, "{origin}: {}", ok.text());
        assert_eq!(ok.text(), "segment seg-002.ts");
        let no = at_distribution(&cdn, "/acme/videos/ep2/seg-001.ts", &cookie).await;
        assert_eq!(no.status, 403, "{origin}");
        let sig = json["cookies"]["CloudFront-Signature"].as_str().unwrap();
        let forged = cookie.replace(
            sig,
            &format!(
                "{}{}",
                if sig.starts_with('A') { 'B' } else { 'A' },
                &sig[1..]
            ),
        );
        let no = at_distribution(&cdn, "/acme/videos/ep1/seg-002.ts", &forged).await;
        assert_eq!(no.status, 403, "{origin}: the stand-in verifies signatures");
        // Bucketed: asked again, the same cookies.
        let again = api(
            serde_json::json!({"origin": origin, "prefix": "acme/videos/ep1/"}),
            Some(SK_ACME),
        )
        .await;
        assert_eq!(cookie_of(&again), cookie, "{origin}");
    }

    // An exact lifetime, from now.
    let got = api(
        serde_json::json!({"origin": "cdn", "prefix": "acme/videos/", "expires_in": 120}),
        Some(SK_ACME),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let dlt =
        policy_of(&cookie_of(&got))["Statement"][0]["Condition"]["DateLessThan"]["AWS:EpochTime"]
            .as_u64()
            .unwrap();
    assert!((now() + 118..=now() + 121).contains(&dlt), "{dlt}");
    assert!(
        got.header("set-cookie").contains("Max-Age=12"),
        "{}",
        got.header("set-cookie")
    );

    // Refusals: another org's prefix, a prefix that leaves the org, a public key, no
    // credentials, an S3 origin, an unknown origin.
    let cases = [
        (
            serde_json::json!({"origin": "cdn", "prefix": "other/"}),
            Some(SK_ACME),
            403,
            "forbidden",
        ),
        (
            serde_json::json!({"origin": "cdn", "prefix": "acme"}),
            Some(SK_ACME),
            403,
            "forbidden",
        ),
        (
            serde_json::json!({"origin": "cdn", "prefix": "acme/../other/"}),
            Some(SK_ACME),
            403,
            "forbidden",
        ),
        (
            serde_json::json!({"origin": "cdn", "prefix": "../acme/"}),
            Some(SK_ADMIN),
            400,
            "bad_request",
        ),
        (
            serde_json::json!({"origin": "cdn", "prefix": "acme/"}),
            None,
            401,
            "unauthorized",
        ),
        (
            serde_json::json!({"origin": "docs", "prefix": "acme/"}),
            Some(SK_ACME),
            400,
            "bad_request",
        ),
        (
            serde_json::json!({"origin": "nope", "prefix": "acme/"}),
            Some(SK_ACME),
            404,
            "not_found",
        ),
        (
            serde_json::json!({"origin": "cdn"}),
            Some(SK_ACME),
            400,
            "bad_request",
        ),
    ];
    for (body, key, status, code) in cases {
        let got = api(body.clone(), key).await;
        assert_eq!(got.status, status, "{body}: {}", got.text());
        assert_eq!(got.json()["code"], code, "{body}");
        assert!(got.headers.get("set-cookie").is_none(), "{body}");
    }
    // An admin may grant a whole other org's prefix.
    let got = api(
        serde_json::json!({"origin": "cdn", "prefix": "other/"}),
        Some(SK_ADMIN),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());

    // `inspect --cookie` reads them back: genuine, the key named, the Resource shown.
    let cookie = cookie_of(
        &api(
            serde_json::json!({"origin": "cdnec", "prefix": "acme/videos/ep1/"}),
            Some(SK_ACME),
        )
        .await,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_edgesign"))
        .arg("--config")
        .arg(proxy.dir.join("config.toml"))
        .args(["inspect", "--cookie", &cookie])
        .arg(format!("https://{DOMAIN}/acme/videos/ep1/seg-001.ts"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["scheme"], "cloudfront_cookies", "{report}");
    assert_eq!(report["genuine"], true, "{report}");
    assert_eq!(report["key_id"], EC_KID, "{report}");
    assert_eq!(
        report["resource"],
        format!("https://{DOMAIN}/acme/videos/ep1/*")
    );
    assert_eq!(report["key"], "acme/videos/ep1/seg-001.ts");
    let out = Command::new(env!("CARGO_BIN_EXE_edgesign"))
        .arg("--config")
        .arg(proxy.dir.join("config.toml"))
        .args(["inspect", "--cookie", &cookie])
        .arg(format!("https://{DOMAIN}/acme/videos/ep2/seg-001.ts"))
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["genuine"], false, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_cookies_are_renewed_on_a_host_route_and_forged_ones_refused() {
    let dir = tempdir("cookies-rescue");
    let (cert, key) = certificate(&dir);
    let cdn = Distribution::start(&dir, &cert, &key);
    library(&cdn);
    let endpoint = format!("http://127.0.0.1:{}", cdn.plain_port);
    let proxy = proxy(
        &format!(
            "{}[[routes]]\nhost = \"{DOMAIN}\"\nprefix = \"/\"\norigin = \"cdn\"\nmode = \"stream\"\naccess = \"org\"\n\n[auth]\n{}",
            origins_toml(Some(&endpoint)),
            api_keys_toml()
        ),
        false,
    )
    .await;
    let to_edge = |path: &str, cookie: &str, auth: Option<&str>| {
        let url = format!("{}{path}", proxy.base);
        let cookie = format!("session=not-for-the-cdn; {cookie}");
        let auth = auth.map(|k| format!("Bearer {k}"));
        async move {
            let mut headers = vec![("host", DOMAIN), ("cookie", cookie.as_str())];
            if let Some(a) = &auth {
                headers.push(("authorization", a.as_str()));
            }
            get(&url, &headers).await
        }
    };
    // A player's stale cookies, minted by botocore a day ago for an hour, with a start
    // date and an address condition.
    let t = now();
    let resource = format!("https://{DOMAIN}/acme/videos/ep1/*");
    let stale = python(
        "botocore_cookies.py",
        &[
            vectors()
                .join("cloudfront_test_key.pem")
                .display()
                .to_string(),
            RSA_KID.to_owned(),
            resource.clone(),
            (t - 86_400 + 3600).to_string(),
            (t - 86_400).to_string(),
            "127.0.0.0/8".to_owned(),
        ],
    );
    let seg = "/acme/videos/ep1/seg-003.ts";
    assert_eq!(
        at_distribution(&cdn, seg, &stale).await.status,
        403,
        "the distribution refuses them"
    );

    // Without credentials: 401, and nothing reaches the distribution.
    let before = cdn.seen().len();
    let anon = to_edge(seg, &stale, None).await;
    assert_eq!(anon.status, 401, "{}", anon.text());
    assert_eq!(anon.json()["code"], "unauthorized");
    assert!(anon.headers.get("set-cookie").is_none());
    assert_eq!(cdn.seen().len(), before);

    // With credentials: renewed (same Resource, start date and address; new expiry), set on
    // the answer, and the segment streamed with the new cookies.
    let got = to_edge(seg, &stale, Some(SK_ACME)).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.text(), "segment seg-003.ts");
    let fresh = cookie_of(&got);
    let (old, new) = (policy_of(&stale), policy_of(&fresh));
    let cond = |p: &serde_json::Value, k: &str| p["Statement"][0]["Condition"][k].clone();
    assert_eq!(new["Statement"][0]["Resource"], resource);
    assert_eq!(cond(&new, "DateGreaterThan"), cond(&old, "DateGreaterThan"));
    assert_eq!(cond(&new, "IpAddress"), cond(&old, "IpAddress"));
    let dlt = cond(&new, "DateLessThan")["AWS:EpochTime"]
        .as_u64()
        .unwrap();
    assert!(dlt > t + 1800, "{dlt}");
    let max_age: u64 = got
        .header("set-cookie")
        .split_once("; Domain=.example.com; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=")
        .unwrap_or_else(|| panic!("{}", got.header("set-cookie")))
        .1
        .parse()
        .unwrap();
    assert!(dlt - now() <= max_age && max_age <= dlt - t, "{max_age}");
    assert_eq!(
        got.header("cache-control").split(',').next(),
        Some("private")
    );
    let (path, sent) = cdn.seen().last().unwrap().clone();
    assert_eq!(path, seg);
    assert_eq!(
        sent, "CloudFront-Key-Pair-Id,CloudFront-Policy,CloudFront-Signature",
        "only the CloudFront cookies reach the distribution"
    );

    // The renewed cookies, without credentials: served as they are, nothing set.
    let got = to_edge("/acme/videos/ep1/seg-004.ts", &fresh, None).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.text(), "segment seg-004.ts");
    assert!(got.headers.get("set-cookie").is_none());

    // Forged (a signature byte, the policy), or a Resource that does not cover the URL:
    // 403 invalid_signature, credentials or not, and nothing reaches the distribution.
    let before = cdn.seen().len();
    let sig = fresh
        .split("; ")
        .find_map(|c| c.strip_prefix("CloudFront-Signature="))
        .unwrap();
    let flipped = format!(
        "{}{}",
        if sig.starts_with('A') { 'B' } else { 'A' },
        &sig[1..]
    );
    let wider = edgesign::sign::encoding::cloudfront_b64_encode(
        new.to_string()
            .replace("acme/videos/ep1/*", "acme/*")
            .as_bytes(),
    );
    let p = fresh
        .split("; ")
        .find_map(|c| c.strip_prefix("CloudFront-Policy="))
        .unwrap();
    for (what, cookie, path) in [
        ("signature", fresh.replace(sig, &flipped), seg),
        (
            "policy",
            fresh.replace(p, &wider),
            "/acme/videos/ep2/seg-001.ts",
        ),
        ("resource", fresh.clone(), "/acme/videos/ep2/seg-001.ts"),
        (
            "repeated",
            format!("{fresh}; CloudFront-Signature={sig}"),
            seg,
        ),
    ] {
        let got = to_edge(path, &cookie, Some(SK_ACME)).await;
        assert_eq!(got.status, 403, "{what}: {}", got.text());
        assert_eq!(got.json()["code"], "invalid_signature", "{what}");
    }
    assert_eq!(
        cdn.seen().len(),
        before,
        "a refused cookie reached the distribution"
    );
}
