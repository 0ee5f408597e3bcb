//! Access control probed as an attacker would: raw paths sent as written (`--path-as-is`),
//! hostile tokens, wildcard policies, active content types, cacheable private answers,
//! clients that stop reading (raw HTTP/1.1 and HTTP/2 frames), IPv6 address hopping, and
//! config and log spellings. Each test fails on the code before these defences existed.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HS_SECRET: &str = "an-hs256-secret-for-the-security-tests-0123456789";

/// An S3 origin whose `public/` objects anyone may read, behind an org stream route
/// (`/os/`), an org redirect route (`/o/`), a public stream route (`/p/`), a public
/// redirect route (`/pr/`) and a stream route for any authenticated caller (`/as/`).
fn s3_config(origin: &S3Origin) -> String {
    format!(
        "[[origins]]\nname = \"docs\"\nkind = \"s3\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"{BUCKET}\"\npath_style = true\nttl = \"1h\"\npublic_prefixes = [\"public/\"]\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n\n[[routes]]\nprefix = \"/os/\"\norigin = \"docs\"\nmode = \"stream\"\naccess = \"org\"\n[[routes]]\nprefix = \"/o/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"org\"\n[[routes]]\nprefix = \"/p/\"\norigin = \"docs\"\nmode = \"stream\"\naccess = \"public\"\n[[routes]]\nprefix = \"/pr/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"public\"\n[[routes]]\nprefix = \"/as/\"\norigin = \"docs\"\nmode = \"stream\"\naccess = \"authenticated\"\n\n[auth]\njwt_hs256_secret = \"{HS_SECRET}\"\n{}",
        origin.endpoint(),
        api_keys_toml()
    )
}

/// The objects of [`s3_config`]'s origin, and a second bucket next to it.
async fn s3_with_objects() -> S3Origin {
    let origin = s3_origin().await;
    origin.put("public/ok.txt", b"public ok");
    origin.put("private/secret.txt", b"TOP SECRET");
    origin.put("acme/doc.txt", b"acme doc");
    origin.put("acme/x/y/w.txt", b"w");
    std::fs::create_dir_all(origin.root.join(BUCKET).join("acme/x/y/z")).unwrap();
    std::fs::create_dir_all(origin.root.join("other-bucket")).unwrap();
    std::fs::write(origin.root.join("other-bucket/secret.txt"), "OTHER BUCKET").unwrap();
    origin
}

fn bearer(key: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {key}"))
}

async fn get_as(url: &str, key: Option<&str>) -> Got {
    match key {
        Some(k) => {
            let (name, value) = bearer(k);
            get(url, &[(name, &value)]).await
        }
        None => get(url, &[]).await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_segments_never_turn_a_public_prefix_or_an_org_scope_into_another_object() {
    let origin = s3_with_objects().await;
    let proxy = proxy(&s3_config(&origin), false).await;
    let b = &proxy.base;
    let leaked = |g: &Got| g.text().contains("SECRET");

    // Anonymous, through the public prefix: the key resolves to private/secret.txt.
    for path in [
        "/os/public/../private/secret.txt",
        "/os/public/%2e%2e/private/secret.txt",
        "/os/public/%2E%2E%2Fprivate/secret.txt",
        "/o/public/../private/secret.txt",
        "/os/public//../private/secret.txt",
        "/os/public\\..\\private/secret.txt"
            .replace('\\', "%5C")
            .as_str(),
    ] {
        let got = get(&format!("{b}{path}"), &[]).await;
        assert_eq!(got.status, 401, "{path}: {}", got.text());
        assert!(!leaked(&got), "{path}");
    }
    // Climbing out of the bucket, on every kind of route and through /proxy/file.
    for path in [
        "/os/public/../../other-bucket/secret.txt".to_owned(),
        "/p/../other-bucket/secret.txt".to_owned(),
        "/p/%2e%2e/other-bucket/secret.txt".to_owned(),
        "/pr/public/../../other-bucket/secret.txt".to_owned(),
        format!(
            "/proxy/file?presigned_url={}",
            encode(&format!(
                "{}/{BUCKET}/public/../../other-bucket/secret.txt",
                origin.endpoint()
            ))
        ),
    ] {
        let got = get_as(&format!("{b}{path}"), Some(SK_ADMIN)).await;
        assert_eq!(got.status, 400, "{path}: {}", got.text());
        assert_eq!(got.json()["code"], "bad_request", "{path}");
        assert!(!leaked(&got), "{path}");
    }
    // An org caller cannot leave its org by climbing either.
    let got = get_as(&format!("{b}/os/acme/../private/secret.txt"), Some(SK_ACME)).await;
    assert_eq!(got.status, 403, "{}", got.text());
    assert!(!leaked(&got));
    // What stays legal: the public prefix itself, and harmless dot segments inside the
    // caller's scope (a real S3 key), streamed from the origin.
    assert_eq!(
        get(&format!("{b}/p/public/ok.txt"), &[]).await.text(),
        "public ok"
    );
    assert_eq!(
        get(&format!("{b}/os/public/ok.txt"), &[]).await.text(),
        "public ok"
    );
    let harmless = get_as(&format!("{b}/os/acme/x//y/./z/../w.txt"), Some(SK_ACME)).await;
    assert_eq!(harmless.status, 200, "{}", harmless.text());
    assert_eq!(harmless.text(), "w");
    // Keys longer than S3 allows are refused before anything is signed or cached.
    let long = format!("{b}/p/public/{}", "a".repeat(1100));
    assert_eq!(get(&long, &[]).await.status, 400);
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_whose_org_claim_is_not_one_name_or_that_carry_crit_are_refused() {
    let origin = s3_with_objects().await;
    let proxy = proxy(&s3_config(&origin), false).await;
    let exp = edgesign::clock::unix_secs(edgesign::clock::now()) + 600;
    let token = |header: serde_json::Value, claims: serde_json::Value| {
        jwt_hs256(HS_SECRET.as_bytes(), header, claims)
    };
    let hs = serde_json::json!({"alg": "HS256", "typ": "JWT"});
    // On a route for any authenticated caller, an org-scoped one reads only its org.
    let secret = format!("{}/as/private/secret.txt", proxy.base);
    for org in [
        serde_json::json!(["acme"]),
        serde_json::json!(["private"]),
        serde_json::json!(7),
        serde_json::json!({"id": "acme"}),
        serde_json::json!(true),
        serde_json::json!(""),
        serde_json::json!(null),
        serde_json::json!("a/b"),
    ] {
        let t = token(
            hs.clone(),
            serde_json::json!({"sub": "u1", "exp": exp, "org": org}),
        );
        let got = get_as(&secret, Some(&t)).await;
        assert_eq!(got.status, 401, "org {org}: {}", got.text());
        assert!(!got.text().contains("SECRET"), "org {org}");
    }
    // An empty org used to read other orgs through `//`.
    let empty = token(hs.clone(), serde_json::json!({"exp": exp, "org": ""}));
    let got = get_as(
        &format!("{}/as/%2Fprivate/secret.txt", proxy.base),
        Some(&empty),
    )
    .await;
    assert_eq!(got.status, 401);
    // A sub that is not a string is not silently dropped.
    let t = token(
        hs.clone(),
        serde_json::json!({"sub": 42, "exp": exp, "org": "acme"}),
    );
    assert_eq!(
        get_as(&format!("{}/os/acme/doc.txt", proxy.base), Some(&t))
            .await
            .status,
        401
    );
    // RFC 7515 §4.1.11: a crit extension edgesign does not implement.
    let crit = token(
        serde_json::json!({"alg": "HS256", "crit": ["exp-override"], "exp-override": true}),
        serde_json::json!({"sub": "u1", "exp": exp, "org": "acme"}),
    );
    assert_eq!(
        get_as(&format!("{}/os/acme/doc.txt", proxy.base), Some(&crit))
            .await
            .status,
        401
    );
    // The same token without crit, and a well-formed org, read the org's own object.
    let good = token(
        hs,
        serde_json::json!({"sub": "u1", "exp": exp, "org": "acme"}),
    );
    let got = get_as(&format!("{}/os/acme/doc.txt", proxy.base), Some(&good)).await;
    assert_eq!(got.text(), "acme doc");
}

fn cloudfront_config(routes: &str) -> String {
    let pem = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/cloudfront_test_ec_key.pem");
    format!(
        "[[origins]]\nname = \"cdn\"\nkind = \"cloudfront\"\ndomain = \"d111111abcdef8.cloudfront.net\"\nttl = \"1h\"\npublic_prefixes = [\"public/\"]\n[[origins.keys]]\nkey_pair_id = \"K2JCJMDEHXQW5F\"\nprivate_key_file = \"{}\"\n{routes}\n[auth]\n{}",
        pem.display(),
        api_keys_toml()
    )
}

/// A CloudFront URL of the origin `cdn` for `key` under a custom policy over `resource`,
/// expired long ago and signed with the origin's own key (genuine), as a path.
fn stale_cloudfront(app: &edgesign::app::App, resource: &str, key: &str) -> String {
    let edgesign::sign::signer::Kind::CloudFront(cf) =
        &app.config.origin("cdn").unwrap().signer.kind
    else {
        unreachable!()
    };
    let policy = edgesign::sign::cloudfront::custom_policy(resource, 1_600_000_000, None, None);
    let url = edgesign::sign::cloudfront::sign(
        &format!("https://d111111abcdef8.cloudfront.net/{key}"),
        &edgesign::sign::cloudfront::PolicyKind::Custom(policy),
        &cf.keys[0].private,
        "K2JCJMDEHXQW5F",
        cf.hash,
    )
    .unwrap();
    format!("/{}", url.split_once(".net/").unwrap().1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_wildcard_policies_are_renewed_only_inside_the_origin_and_the_callers_scope() {
    let routes = "[[routes]]\nprefix = \"/cfp/\"\norigin = \"cdn\"\nmode = \"redirect\"\naccess = \"public\"\n[[routes]]\nprefix = \"/cfg/\"\norigin = \"cdn\"\nmode = \"redirect\"\naccess = \"org\"\nstale_grace = \"36500d\"\n";
    let proxy = proxy(&cloudfront_config(routes), false).await;
    let app = proxy.app();
    let stale = |resource: &str, key: &str| stale_cloudfront(&app, resource, key);
    let at = |route: &str, path: &str| format!("{}/{route}{path}", proxy.base);

    // A policy for every distribution that trusts the key is never renewed: not on a public
    // route, not in stale_grace, not for an administrator.
    for resource in [
        "*",
        "https://*",
        "http*://*/*",
        "https://d111111abcdef8.cloudfront.net*",
    ] {
        let path = stale(resource, "public/a.mp4");
        for (route, key) in [("cfp", None), ("cfg", None), ("cfg", Some(SK_ADMIN))] {
            let got = get_as(&at(route, &path), key).await;
            assert_eq!(got.status, 403, "{resource} on {route}: {}", got.text());
            assert!(got.header("location").is_empty());
        }
    }
    // Inside the distribution, on an org route in stale_grace: only a caller who may read
    // everything the wildcard covers.
    let acme = stale("https://d111111abcdef8.cloudfront.net/acme/*", "acme/a.mp4");
    assert_eq!(get_as(&at("cfg", &acme), None).await.status, 401);
    let other = stale("https://d111111abcdef8.cloudfront.net/*", "acme/a.mp4");
    assert_eq!(get_as(&at("cfg", &other), Some(SK_ACME)).await.status, 403);
    // A wildcard that continues a dot segment or an escape covers acme/../other/… though
    // its fixed part looks like acme's (or public).
    for (resource, key) in [
        (
            "https://d111111abcdef8.cloudfront.net/acme/.*",
            "acme/.x.mp4",
        ),
        (
            "https://d111111abcdef8.cloudfront.net/acme/%2*",
            "acme/%2Dx.mp4",
        ),
        (
            "https://d111111abcdef8.cloudfront.net/public/.*",
            "public/.x.mp4",
        ),
    ] {
        let got = get_as(&at("cfg", &stale(resource, key)), Some(SK_ACME)).await;
        assert_eq!(got.status, 403, "{resource}: {}", got.text());
        assert_eq!(got.json()["code"], "forbidden", "{resource}");
    }
    let renewed = get_as(&at("cfg", &acme), Some(SK_ACME)).await;
    assert_eq!(renewed.status, 302, "{}", renewed.text());
    assert!(
        renewed
            .header("location")
            .starts_with("https://d111111abcdef8.cloudfront.net/acme/a.mp4?Policy=")
    );
    // Under a public prefix, or on a public route inside the distribution, anyone renews.
    let public = stale(
        "https://d111111abcdef8.cloudfront.net/public/*",
        "public/a.mp4",
    );
    assert_eq!(get_as(&at("cfg", &public), None).await.status, 302);
    assert_eq!(get_as(&at("cfp", &acme), None).await.status, 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overrides_need_credentials_and_a_passive_type_and_streams_are_sandboxed() {
    let origin = s3_with_objects().await;
    let proxy = proxy(&s3_config(&origin), false).await;
    let b = &proxy.base;
    // Anonymous callers set no overrides, on stream and redirect routes alike.
    for path in [
        "/p/public/ok.txt?response-content-type=text/html",
        "/p/public/ok.txt?response-content-disposition=inline",
        "/pr/public/ok.txt?response-content-type=text/plain",
    ] {
        let got = get(&format!("{b}{path}"), &[]).await;
        assert_eq!(got.status, 400, "{path}: {}", got.text());
        assert!(got.header("location").is_empty(), "{path}");
    }
    // Authenticated callers may not name an active type, in any spelling, nor repeat one.
    for q in [
        "response-content-type=text/html",
        "response-content-type=TEXT%2FHTML%3B%20charset%3Dutf-8",
        "response-content-type=image/svg%2Bxml",
        "response-content-type=image/svg+xml",
        "response-content-type=application/xhtml+xml",
        "response-content-type=text/javascript",
        "response-content-type=text/plain%3Bx%3D%2Ctext/html",
        "response-content-type=image/png&response-content-type=text/html",
        "response-content-disposition=inline&response-content-disposition=attachment",
    ] {
        let got = get_as(&format!("{b}/os/acme/doc.txt?{q}"), Some(SK_ACME)).await;
        assert_eq!(got.status, 400, "{q}: {}", got.text());
        let got = get_as(&format!("{b}/o/acme/doc.txt?{q}"), Some(SK_ACME)).await;
        assert_eq!(got.status, 400, "{q} (redirect)");
    }
    // A passive type is signed in and honoured; the stream is sandboxed either way.
    let pdf = get_as(
        &format!("{b}/os/acme/doc.txt?response-content-type=application/pdf"),
        Some(SK_ACME),
    )
    .await;
    assert_eq!(pdf.status, 200, "{}", pdf.text());
    assert_eq!(pdf.header("content-type"), "application/pdf");
    for got in [&pdf, &get(&format!("{b}/p/public/ok.txt"), &[]).await] {
        assert_eq!(got.header("x-content-type-options"), "nosniff");
        assert_eq!(got.header("content-security-policy"), "sandbox");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_needed_credentials_are_never_publicly_cacheable() {
    // The origin says its objects are public for a day (as many buckets do).
    let addr = serve_fn(|_req| {
        let mut r = http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
            b"object",
        )));
        r.headers_mut().insert(
            "cache-control",
            http::HeaderValue::from_static("public, max-age=86400, s-maxage=604800"),
        );
        r
    })
    .await;
    let origin = S3Origin {
        addr,
        root: tempdir("unused"),
        seen: Default::default(),
    };
    let proxy = proxy(&s3_config(&origin), false).await;
    let b = &proxy.base;
    let private = get_as(&format!("{b}/os/acme/doc.txt"), Some(SK_ACME)).await;
    assert_eq!(private.status, 200);
    assert_eq!(private.header("cache-control"), "private, max-age=86400");
    assert_eq!(private.header("vary"), "Authorization, Cookie");
    // Nor can the caller ask for a publicly cacheable answer.
    for cc in ["public,max-age=31536000", "max-age=60,s-maxage=31536000"] {
        let got = get_as(
            &format!("{b}/os/acme/doc.txt?response-cache-control={cc}"),
            Some(SK_ACME),
        )
        .await;
        assert_eq!(got.status, 400, "{cc}");
    }
    // Public objects keep what the origin said.
    let public = get(&format!("{b}/p/public/ok.txt"), &[]).await;
    assert_eq!(
        public.header("cache-control"),
        "public, max-age=86400, s-maxage=604800"
    );
    assert!(public.header("vary").is_empty());
}

/// A local origin with `big.bin` (`size` bytes) and `ok.txt` behind a public stream route.
fn local_with_big_file(size: usize) -> String {
    let root = tempdir("security-local");
    std::fs::write(root.join("ok.txt"), "fine").unwrap();
    std::fs::write(root.join("big.bin"), vec![7u8; size]).unwrap();
    format!(
        "[[origins]]\nname = \"demo\"\nkind = \"local\"\nroot = \"{}\"\nttl = \"1h\"\n[[origins.keys]]\nkey_id = \"k1\"\nsecret = \"0123456789abcdef0123456789\"\n[[routes]]\nprefix = \"/d/\"\norigin = \"demo\"\nmode = \"stream\"\naccess = \"public\"\n",
        root.display()
    )
}

fn open_connections(proxy: &Proxy) -> f64 {
    parse_metrics(&proxy.app().metrics.render(0))
        .get(r#"edgesign_open_connections{listener="http"}"#)
        .copied()
        .unwrap_or(0.0)
}

async fn until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = edgesign::clock::instant() + within;
    while !ok() {
        assert!(edgesign::clock::instant() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_stop_reading_are_cut_and_health_checks_still_answer() {
    let proxy = proxy_with(
        &local_with_big_file(48 << 20),
        false,
        "max_connections = 2\nsend_timeout = \"5s\"\nheader_read_timeout = \"1s\"\nidle_timeout = \"2s\"",
    )
    .await;
    let addr = proxy.base.trim_start_matches("http://").to_owned();
    let started = edgesign::clock::instant();
    // Two clients ask for 48 MiB and never read: every slot is held.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(b"GET /d/big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        stalled.push(s);
    }
    until("slots never taken", Duration::from_secs(5), || {
        open_connections(&proxy) >= 2.0
    })
    .await;
    // Health checks answer at once even so.
    let health = tokio::time::timeout(
        Duration::from_millis(800),
        get(&format!("{}/healthz", proxy.base), &[]),
    )
    .await
    .expect("/healthz waited for a slot held by clients that do not read");
    assert_eq!(health.status, 200);
    assert!(
        open_connections(&proxy) >= 2.0 && started.elapsed() < Duration::from_secs(4),
        "the slots were no longer held: the ops slots were not what answered"
    );
    // Another request on an extra connection waits for a slot as long as an idle connection
    // is kept (idle_timeout), then hears 503 instead of holding the extra slot for ever.
    let queued = tokio::time::timeout(
        Duration::from_secs(4),
        get(&format!("{}/d/ok.txt", proxy.base), &[]),
    )
    .await
    .expect("a request on an extra connection waited without end");
    assert_eq!(queued.status, 503, "{}", queued.text());
    assert_eq!(queued.json()["code"], "unavailable");
    assert_eq!(queued.header("retry-after"), "1");
    // The stalled clients are cut after send_timeout, and the proxy serves again.
    until(
        "clients that never read kept their connections",
        Duration::from_secs(10),
        || open_connections(&proxy) < 1.0,
    )
    .await;
    for mut s in stalled {
        let mut sink = vec![0u8; 1 << 20];
        let mut total = 0usize;
        loop {
            match tokio::time::timeout(Duration::from_secs(5), s.read(&mut sink)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => total += n,
                Err(_) => panic!("a cut connection stayed open"),
            }
        }
        assert!(total < 48 << 20, "the whole object was sent: {total}");
    }
    let ok = get(&format!("{}/d/ok.txt", proxy.base), &[]).await;
    assert_eq!(ok.text(), "fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_keeps_its_window_shut_loses_its_connection() {
    let proxy = proxy_with(
        &local_with_big_file(4 << 20),
        false,
        "send_timeout = \"1s\"\nheader_read_timeout = \"1s\"",
    )
    .await;
    let addr = proxy.base.trim_start_matches("http://").to_owned();
    let tcp = TcpStream::connect(&addr).await.unwrap();
    // Raw HTTP/2 (prior knowledge) with every stream's window shut.
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    let conn = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..50 {
        let req = http::Request::get(format!("http://{addr}/d/big.bin"))
            .body(())
            .unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        streams.push(resp);
        client = client.ready().await.unwrap();
    }
    // The proxy ends the connection (GOAWAY, then a cut) instead of pinning 50 streams,
    // 50 files and their buffers for as long as the client likes.
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(
        ended.is_ok(),
        "a connection whose client never opened its window was kept"
    );
    until(
        "the connection slot was kept",
        Duration::from_secs(3),
        || open_connections(&proxy) < 1.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_client_gets_one_rate_limit_bucket_per_64() {
    let body = format!(
        "{}\n[rate_limit]\nper_second = 0.001\nburst = 3\n[auth]\n{}",
        local_with_big_file(16),
        api_keys_toml()
    );
    let proxy = proxy_with(&body, false, "trusted_proxies = [\"127.0.0.1/32\"]").await;
    let url = format!("{}/d/ok.txt", proxy.base);
    let from = |ip: String| {
        let url = url.clone();
        async move { get(&url, &[("x-forwarded-for", ip.as_str())]).await.status }
    };
    // Anonymous callers hopping across one /64.
    let mut statuses = Vec::new();
    for i in 1..=8 {
        statuses.push(from(format!("2001:db8:1:2::{i:x}")).await.as_u16());
    }
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    // Another /64 has a budget of its own.
    assert_eq!(from("2001:db8:1:3::1".into()).await, 200);
    // Guessed API keys from one /64 are limited too.
    let mut guesses = Vec::new();
    for i in 1..=8 {
        let ip = format!("2001:db8:9:9:{i:x}::1");
        let got = get(
            &url,
            &[
                ("x-forwarded-for", ip.as_str()),
                ("authorization", &format!("Bearer sk_guess_{i}")),
            ],
        )
        .await;
        guesses.push(got.status.as_u16());
    }
    assert_eq!(&guesses[..3], &[401, 401, 401], "{guesses:?}");
    assert!(guesses[3..].iter().all(|s| *s == 429), "{guesses:?}");
}

#[test]
fn an_origin_that_is_this_proxy_in_another_spelling_is_a_config_error() {
    let port = 18_080;
    let config = |listen: &str, endpoint: &str| {
        format!(
            "[server]\nlisten = \"{listen}\"\npublic_url = \"https://edge.example.com\"\n[[origins]]\nname = \"docs\"\nkind = \"s3\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\nbucket = \"b\"\npath_style = true\nttl = \"1h\"\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n[[routes]]\nprefix = \"/f/\"\norigin = \"docs\"\nmode = \"redirect\"\n"
        )
    };
    let check = |listen: &str, endpoint: &str| {
        edgesign::config::Config::parse(
            &config(listen, endpoint),
            std::path::Path::new("."),
            &|_| None,
        )
    };
    let loops = |listen: &str, endpoint: &str| match check(listen, endpoint) {
        Ok(_) => false,
        Err(e) => e.to_string().contains("points back at this proxy"),
    };
    let on = format!("127.0.0.1:{port}");
    for endpoint in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        format!("http://LocalHost.:{port}"),
        format!("http://127.1:{port}"),
        format!("http://0x7f.0.0.1:{port}"),
        format!("http://2130706433:{port}"),
        format!("http://[::ffff:127.0.0.1]:{port}"),
    ] {
        assert!(loops(&on, &endpoint), "{endpoint}");
    }
    // A wildcard listen takes every local address.
    let any = format!("0.0.0.0:{port}");
    for endpoint in [
        format!("http://127.0.0.1:{port}"),
        format!("http://127.0.0.2:{port}"),
        format!("http://localhost:{port}"),
        format!("http://0.0.0.0:{port}"),
    ] {
        assert!(loops(&any, &endpoint), "{endpoint} with 0.0.0.0");
    }
    // Elsewhere is fine.
    assert!(check(&on, &format!("http://127.0.0.1:{}", port + 1)).is_ok());
    assert!(check(&on, "http://127.0.0.2:18080").is_ok());
    assert!(check(&on, "https://s3.amazonaws.com").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_access_lines_never_carry_raw_separators_or_bidi_overrides() {
    let proxy = spawn_with(
        "security-log",
        &local_with_big_file(16),
        &[("EDGESIGN_LOG_FORMAT", "json")],
    );
    let mut s = TcpStream::connect(proxy.base.trim_start_matches("http://"))
        .await
        .unwrap();
    // U+2028, U+0085 and U+202E, raw in the request target.
    s.write_all(b"GET /d/a\xe2\x80\xa8b\xc2\x85c\xe2\x80\xaed.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    assert!(
        proxy
            .wait_for_log("%E2%80%A8b%C2%85c%E2%80%AEd.txt", Duration::from_secs(5))
            .await,
        "no escaped access line:\n{}",
        proxy.log()
    );
    let log = proxy.log();
    for raw in ["\u{2028}", "\u{85}", "\u{202e}"] {
        assert!(!log.contains(raw), "raw {raw:?} in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_apis_judge_keys_as_the_routes_do() {
    let origin = s3_with_objects().await;
    let config = format!(
        "{}\n[compat]\ncontent_sign_origin = \"docs\"\nfiles_origin = \"docs\"\nfiles_key_prefix = \"acme/files/\"\npresign_origin = \"docs\"\n",
        s3_config(&origin)
    );
    let proxy = proxy(&config, false).await;
    let b = &proxy.base;
    let acme = format!("Bearer {SK_ACME}");
    let admin = format!("Bearer {SK_ADMIN}");
    let calls: [(&str, String, &str, u16); 7] = [
        // Climbing out of the bucket: refused for everyone, the administrator included.
        (
            "/v1/sign",
            r#"{"origin": "docs", "key": "../other-bucket/secret.txt"}"#.into(),
            &admin,
            400,
        ),
        (
            "/v1/sign",
            format!(
                r#"{{"url": "{}/{BUCKET}/public/../../other-bucket/secret.txt"}}"#,
                origin.endpoint()
            ),
            &admin,
            400,
        ),
        (
            "/generate-presigned-url",
            r#"{"key": "acme/../../other-bucket/secret.txt"}"#.into(),
            &acme,
            400,
        ),
        (
            "/v1/files/..%2F..%2F..%2Fother-bucket%2Fsecret.txt/signed-url",
            "{}".into(),
            &acme,
            400,
        ),
        // Leaving the org through the bucket's own keys.
        (
            "/generate-presigned-url",
            r#"{"key": "acme/../private/secret.txt"}"#.into(),
            &acme,
            403,
        ),
        (
            "/orgs/acme/content/sign",
            r#"{"url": "acme/../private/secret.txt"}"#.into(),
            &acme,
            403,
        ),
        // Public only as written: not public, and not acme's.
        (
            "/orgs/acme/content/sign",
            r#"{"url": "public/../private/secret.txt"}"#.into(),
            &acme,
            403,
        ),
    ];
    for (path, body, auth, status) in calls {
        let got = post(&format!("{b}{path}"), &body, &[("authorization", auth)]).await;
        assert_eq!(got.status.as_u16(), status, "{path} {body}: {}", got.text());
        assert!(!got.text().contains("X-Amz-Signature"), "{path} {body}");
    }
    // Harmless dot segments inside the org are signed exactly, and the origin serves them.
    let got = post(
        &format!("{b}/generate-presigned-url"),
        r#"{"key": "acme/x//y/./z/../w.txt"}"#,
        &[("authorization", &acme)],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let url = got.json()["url"].as_str().unwrap().to_owned();
    assert!(url.contains("/acme/x//y/./z/../w.txt?"), "{url}");
    assert_eq!(get(&url, &[]).await.text(), "w");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_policy_is_not_renewed_over_a_revoked_key() {
    let routes =
        "[[routes]]\nprefix = \"/cfg/\"\norigin = \"cdn\"\nmode = \"redirect\"\naccess = \"org\"\n";
    let proxy = proxy(&cloudfront_config(routes), false).await;
    let app = proxy.app();
    let stale = |resource: &str, key: &str| {
        format!(
            "{}/cfg{}",
            proxy.base,
            stale_cloudfront(&app, resource, key)
        )
    };
    let wide = stale(
        "https://d111111abcdef8.cloudfront.net/acme/*",
        "acme/ok.mp4",
    );
    let narrow = stale(
        "https://d111111abcdef8.cloudfront.net/acme/ok/*",
        "acme/ok/a.mp4",
    );
    assert_eq!(get_as(&wide, Some(SK_ACME)).await.status, 302);
    let revoked = post(
        &format!("{}/v1/revocations", proxy.base),
        r#"{"origin": "cdn", "key": "acme/leaked.mp4"}"#,
        &[("x-api-key", SK_ACME)],
    )
    .await;
    assert_eq!(revoked.status, 201, "{}", revoked.text());
    // Renewed, `acme/*` would open the revoked object at CloudFront: refused, and the caller
    // sees why. A wildcard that does not reach it is renewed as before.
    let got = get_as(&wide, Some(SK_ACME)).await;
    assert_eq!(got.status, 403, "{}", got.text());
    assert_eq!(got.json()["code"], "revoked");
    assert!(got.header("location").is_empty());
    assert_eq!(get_as(&narrow, Some(SK_ACME)).await.status, 302);
}
