//! Who may do what, and the JSON signing APIs: API keys, JWT (header and cookie) with every
//! rejection, rate limits, and every documented status of the four APIs. Every URL an API
//! returns is fetched from the real s3s-fs origin.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::*;

const PK_ACME: &str = "pk_test_acme_0123456789";
const HS_SECRET: &str = "an-hs256-secret-that-is-long-enough-0123456789";

fn now() -> u64 {
    edgesign::clock::unix_secs(edgesign::clock::now())
}

fn jwt_rs256(claims: Value) -> String {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let pem = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors/cloudfront_test_key.pem"),
    )
    .unwrap();
    let key = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(
        rsa::RsaPrivateKey::from_pkcs1_pem(&pem).unwrap(),
    );
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let sig = key.sign(format!("{h}.{c}").as_bytes());
    format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

fn hs(claims: Value) -> String {
    jwt_hs256(
        HS_SECRET.as_bytes(),
        json!({"alg": "HS256", "typ": "JWT"}),
        claims,
    )
}

fn config(origin: &S3Origin, extra: &str) -> String {
    let pub_pem = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/cloudfront_test_key.pub.pem");
    let h = |k: &str| hex::encode(edgesign::auth::api_key::hash(k));
    format!(
        "{extra}\n[[origins]]\nname = \"docs\"\nkind = \"s3\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"{BUCKET}\"\npath_style = true\nttl = \"1h\"\npublic_prefixes = [\"acme/public/\"]\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n\n[[routes]]\nprefix = \"/org/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"org\"\n\n[auth]\njwt_hs256_secret = \"{HS_SECRET}\"\njwt_rs256_public_key_files = [\"{}\"]\nissuer = \"https://auth.example.com\"\naudience = \"edgesign\"\n{}[[auth.api_keys]]\nsha256 = \"{}\"\nkind = \"public\"\norg = \"acme\"\n\n[compat]\ncontent_sign_origin = \"docs\"\nfiles_origin = \"docs\"\nfiles_key_prefix = \"acme/files/\"\npresign_origin = \"docs\"\n",
        origin.endpoint(),
        pub_pem.display(),
        api_keys_toml(),
        h(PK_ACME)
    )
}

fn claims(extra: Value) -> Value {
    let mut c = json!({"sub": "user-1", "org": "acme", "iss": "https://auth.example.com", "aud": "edgesign", "exp": now() + 600});
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_bearer_and_cookie_scope_the_caller() {
    let origin = s3_origin().await;
    let proxy = proxy(&config(&origin, ""), false).await;
    origin.put("acme/a.txt", b"acme a");
    let url = format!("{}/org/acme/a.txt", proxy.base);
    for token in [hs(claims(json!({}))), jwt_rs256(claims(json!({})))] {
        let got = get(&url, &[("authorization", &bearer(&token))]).await;
        assert_eq!(got.status, 302, "{}", got.text());
        assert_eq!(get(got.header("location"), &[]).await.text(), "acme a");
        let cookie = get(
            &url,
            &[("cookie", &format!("theme=dark; edgesign_session={token}"))],
        )
        .await;
        assert_eq!(cookie.status, 302);
        let other = get(
            &format!("{}/org/globex/a.txt", proxy.base),
            &[("authorization", &bearer(&token))],
        )
        .await;
        assert_eq!(other.status, 403, "the org claim scopes the caller");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_token_is_rejected() {
    let origin = s3_origin().await;
    let proxy = proxy(&config(&origin, ""), false).await;
    let url = format!("{}/org/acme/a.txt", proxy.base);
    let public_pem = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors/cloudfront_test_key.pub.pem"),
    )
    .unwrap();
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
    );
    let cases = [
        ("alg none", none),
        (
            "algorithm confusion: HS256 keyed with the RS256 public key",
            jwt_hs256(&public_pem, json!({"alg": "HS256"}), claims(json!({}))),
        ),
        (
            "wrong HS256 secret",
            jwt_hs256(
                b"another-secret-another-secret-another",
                json!({"alg": "HS256"}),
                claims(json!({})),
            ),
        ),
        ("expired", hs(claims(json!({"exp": now() - 3600})))),
        ("no exp", hs(claims(json!({"exp": null})))),
        ("not yet valid", hs(claims(json!({"nbf": now() + 3600})))),
        (
            "wrong issuer",
            hs(claims(json!({"iss": "https://evil.example.com"}))),
        ),
        ("wrong audience", hs(claims(json!({"aud": "someone-else"})))),
        (
            "unsupported alg",
            jwt_hs256(
                HS_SECRET.as_bytes(),
                json!({"alg": "HS512"}),
                claims(json!({})),
            ),
        ),
        ("tampered claims", {
            let t = hs(claims(json!({})));
            let parts: Vec<&str> = t.split('.').collect();
            let forged = URL_SAFE_NO_PAD.encode(claims(json!({"org": "globex"})).to_string());
            format!("{}.{forged}.{}", parts[0], parts[2])
        }),
        ("garbage", "eyJhbGciOi.not-base64!.x".to_owned()),
    ];
    for (what, token) in &cases {
        let got = get(&url, &[("authorization", &bearer(token))]).await;
        assert_eq!(got.status, 401, "{what}: {}", got.text());
        assert_eq!(got.json()["code"], "unauthorized", "{what}");
    }
    // Small clock skew is tolerated.
    let skewed = hs(claims(json!({"exp": now() - 5, "nbf": now() + 5})));
    assert_eq!(
        get(&url, &[("authorization", &bearer(&skewed))])
            .await
            .status,
        302
    );
    // An audience list that holds ours is accepted.
    let list = hs(claims(json!({"aud": ["other", "edgesign"]})));
    assert_eq!(
        get(&url, &[("authorization", &bearer(&list))]).await.status,
        302
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_per_principal_with_retry_after() {
    let origin = s3_origin().await;
    let proxy = proxy_with(
        &config(&origin, "[rate_limit]\nper_second = 0.5\nburst = 2\n"),
        false,
        "trusted_proxies = [\"127.0.0.1/32\"]",
    )
    .await;
    let url = format!("{}/org/acme/a.txt", proxy.base);
    let admin = bearer(SK_ADMIN);
    assert_eq!(get(&url, &[("authorization", &admin)]).await.status, 302);
    assert_eq!(get(&url, &[("authorization", &admin)]).await.status, 302);
    let limited = get(&url, &[("authorization", &admin)]).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["code"], "rate_limit_exceeded");
    let retry: u64 = limited.header("retry-after").parse().unwrap();
    assert!((1..=3).contains(&retry), "Retry-After {retry}");
    // Another principal has its own bucket.
    assert_eq!(
        get(&url, &[("authorization", &bearer(SK_ACME))])
            .await
            .status,
        302
    );
    let ops = proxy.app().cache().signing_ops();
    for _ in 0..5 {
        get(&url, &[("authorization", &admin)]).await;
    }
    assert_eq!(
        proxy.app().cache().signing_ops(),
        ops,
        "a limited request does no signing work"
    );
    // Anonymous callers are counted per client address, from X-Forwarded-For when the peer
    // is a trusted proxy.
    let public = format!("{}/org/acme/a.txt", proxy.base);
    for _ in 0..2 {
        assert_eq!(
            get(&public, &[("x-forwarded-for", "203.0.113.1")])
                .await
                .status,
            401
        );
    }
    assert_eq!(
        get(&public, &[("x-forwarded-for", "203.0.113.1")])
            .await
            .status,
        429
    );
    assert_eq!(
        get(&public, &[("x-forwarded-for", "203.0.113.2")])
            .await
            .status,
        401,
        "another client, another bucket"
    );
}

fn api(proxy: &Proxy, path: &str) -> String {
    format!("{}{path}", proxy.base)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_sign_api() {
    let origin = s3_origin().await;
    let proxy = proxy(&config(&origin, ""), false).await;
    origin.put("acme/docs/report.pdf", b"acme report");
    let url = api(&proxy, "/orgs/acme/content/sign");
    let sk = bearer(SK_ACME);
    // A bare key, an unsigned URL and a stale signed URL all resolve to the same object.
    let unsigned = format!("{}/{BUCKET}/acme/docs/report.pdf", origin.endpoint());
    let stale = botocore_presign(
        &origin.endpoint(),
        "acme/docs/report.pdf",
        "20130524T000000Z",
        3600,
    );
    for given in ["acme/docs/report.pdf", unsigned.as_str(), stale.as_str()] {
        let got = post(
            &url,
            &json!({"url": given}).to_string(),
            &[("authorization", &sk)],
        )
        .await;
        assert_eq!(got.status, 200, "{given}: {}", got.text());
        let body = got.json();
        assert_eq!(body["url"], unsigned);
        let signed = body["signed_url"].as_str().unwrap();
        assert_eq!(
            get(signed, &[]).await.text(),
            "acme report",
            "the origin accepts the fresh URL"
        );
    }
    // A public object: no signature needed, signed_url is null.
    let public = post(
        &api(&proxy, "/orgs/acme/content/sign"),
        &json!({"url": "acme/public/logo.png"}).to_string(),
        &[("authorization", &bearer(SK_ADMIN))],
    )
    .await;
    assert_eq!(public.status, 200);
    assert_eq!(public.json()["signed_url"], Value::Null);

    let code = |g: &Got| g.json()["code"].as_str().unwrap().to_owned();
    let bad = post(&url, "{not json", &[("authorization", &sk)]).await;
    assert_eq!(
        (bad.status.as_u16(), code(&bad).as_str()),
        (400, "BAD_REQUEST")
    );
    let missing = post(&url, "{}", &[("authorization", &sk)]).await;
    assert_eq!(
        (missing.status.as_u16(), code(&missing).as_str()),
        (400, "BAD_REQUEST")
    );
    let wrong_type = post(&url, r#"{"url": 5}"#, &[("authorization", &sk)]).await;
    assert_eq!(wrong_type.status, 400);
    let anon = post(&url, r#"{"url": "acme/x"}"#, &[]).await;
    assert_eq!(
        (anon.status.as_u16(), code(&anon).as_str()),
        (401, "UNAUTHORIZED")
    );
    let public_key = post(
        &url,
        r#"{"url": "acme/x"}"#,
        &[("authorization", &bearer(PK_ACME))],
    )
    .await;
    assert_eq!(
        (public_key.status.as_u16(), code(&public_key).as_str()),
        (403, "FORBIDDEN")
    );
    let other_org = post(
        &api(&proxy, "/orgs/globex/content/sign"),
        r#"{"url": "globex/x"}"#,
        &[("authorization", &sk)],
    )
    .await;
    assert_eq!(
        (other_org.status.as_u16(), code(&other_org).as_str()),
        (403, "FORBIDDEN")
    );
    let outside = post(
        &url,
        r#"{"url": "globex/x"}"#,
        &[("authorization", &bearer(SK_ADMIN))],
    )
    .await;
    assert_eq!(
        (outside.status.as_u16(), code(&outside).as_str()),
        (403, "FORBIDDEN"),
        "the object must be the org's"
    );
    let unknown = post(
        &url,
        r#"{"url": "https://elsewhere.example.com/acme/x"}"#,
        &[("authorization", &sk)],
    )
    .await;
    assert_eq!(
        (unknown.status.as_u16(), code(&unknown).as_str()),
        (404, "NOT_FOUND")
    );
    let big = format!(r#"{{"url": "{}"}}"#, "a".repeat(70_000));
    let too_big = post(&url, &big, &[("authorization", &sk)]).await;
    assert_eq!(
        (too_big.status.as_u16(), code(&too_big).as_str()),
        (413, "PAYLOAD_TOO_LARGE")
    );
    assert_eq!(get(&url, &[("authorization", &sk)]).await.status, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_signed_url_api() {
    let origin = s3_origin().await;
    let proxy = proxy(&config(&origin, ""), false).await;
    origin.put("acme/files/f_abc123xyz", b"file body");
    let url = api(&proxy, "/v1/files/f_abc123xyz/signed-url");
    let sk = bearer(SK_ACME);
    let before = now();
    let got = post(&url, r#"{"expires_in": 300}"#, &[("authorization", &sk)]).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let body = got.json();
    assert!(
        body["url"].as_str().unwrap().contains("X-Amz-Expires=300"),
        "exactly the lifetime asked for"
    );
    let expires_at = humantime::parse_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    let expires_at = edgesign::clock::unix_secs(expires_at);
    assert!(
        expires_at >= before + 300 && expires_at <= now() + 300,
        "expires_at is honest"
    );
    assert_eq!(
        get(body["url"].as_str().unwrap(), &[]).await.text(),
        "file body"
    );
    // Default lifetime: one hour.
    let default = post(&url, "", &[("authorization", &sk)]).await;
    assert!(
        default.json()["url"]
            .as_str()
            .unwrap()
            .contains("X-Amz-Expires=3600")
    );

    let code = |g: &Got| g.json()["code"].as_str().unwrap().to_owned();
    let anon = post(&url, "{}", &[]).await;
    assert_eq!(
        (anon.status.as_u16(), code(&anon).as_str()),
        (401, "unauthorized")
    );
    let pk = post(&url, "{}", &[("authorization", &bearer(PK_ACME))]).await;
    assert_eq!((pk.status.as_u16(), code(&pk).as_str()), (403, "forbidden"));
    let missing = post(
        &api(&proxy, "/v1/files/f_missing/signed-url"),
        "{}",
        &[("authorization", &sk)],
    )
    .await;
    assert_eq!(
        (missing.status.as_u16(), code(&missing).as_str()),
        (404, "not_found")
    );
    for bad in [
        r#"{"expires_in": 0}"#,
        r#"{"expires_in": 604801}"#,
        r#"{"expires_in": "3600"}"#,
        r#"{"expires_in": 1.5}"#,
        "[1]",
    ] {
        let got = post(&url, bad, &[("authorization", &sk)]).await;
        assert_eq!(
            (got.status.as_u16(), code(&got).as_str()),
            (400, "bad_request"),
            "{bad}"
        );
    }
    let max = post(&url, r#"{"expires_in": 604800}"#, &[("authorization", &sk)]).await;
    assert!(
        max.json()["url"]
            .as_str()
            .unwrap()
            .contains("X-Amz-Expires=604800")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_signed_url_api_rate_limit() {
    let origin = s3_origin().await;
    let proxy = proxy(
        &config(&origin, "[rate_limit]\nper_second = 0.1\nburst = 1\n"),
        false,
    )
    .await;
    origin.put("acme/files/f1", b"x");
    let url = api(&proxy, "/v1/files/f1/signed-url");
    assert_eq!(
        post(&url, "{}", &[("authorization", &bearer(SK_ACME))])
            .await
            .status,
        200
    );
    let limited = post(&url, "{}", &[("authorization", &bearer(SK_ACME))]).await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["code"], "rate_limit_exceeded");
    assert!(!limited.header("retry-after").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_presigned_url_api() {
    let origin = s3_origin().await;
    let proxy = proxy(&config(&origin, ""), false).await;
    origin.put("acme/documents/protocol.pdf", b"protocol");
    let url = api(&proxy, "/generate-presigned-url");
    let token = bearer(&hs(claims(json!({}))));
    let got = post(
        &url,
        r#"{"key": "acme/documents/protocol.pdf"}"#,
        &[("authorization", &token)],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let presigned = got.json()["url"].as_str().unwrap().to_owned();
    assert!(presigned.contains("X-Amz-Expires=3600"), "valid one hour");
    assert_eq!(get(&presigned, &[]).await.text(), "protocol");
    // The URL works through /api/v1/proxy/file too, as that API's documentation suggests.
    let via = get(
        &format!(
            "{}/api/v1/proxy/file?presigned_url={}",
            proxy.base,
            edgesign::sign::encoding::uri_encode(presigned.as_bytes(), false)
        ),
        &[],
    )
    .await;
    assert_eq!(via.text(), "protocol");

    let anon = post(&url, r#"{"key": "acme/x"}"#, &[]).await;
    assert_eq!(
        anon.status, 400,
        "authentication failures are 400 in this API"
    );
    let bad_token = post(
        &url,
        r#"{"key": "acme/x"}"#,
        &[("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.xxxx")],
    )
    .await;
    assert_eq!(bad_token.status, 400);
    assert_eq!(
        post(&url, r#"{"nokey": 1}"#, &[("authorization", &token)])
            .await
            .status,
        400
    );
    assert_eq!(
        post(&url, "not json", &[("authorization", &token)])
            .await
            .status,
        400
    );
    let outside = post(
        &url,
        r#"{"key": "globex/documents/x.pdf"}"#,
        &[("authorization", &token)],
    )
    .await;
    assert_eq!(outside.status, 403);
    assert_eq!(outside.json()["code"], "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_presigned_url_api_signing_failure_is_500() {
    let origin = s3_origin().await;
    // Credentials that died yesterday: an honest signer refuses to mint a dead URL.
    let cfg = config(&origin, "").replace(
        &format!("secret_access_key = \"{SK}\"\n"),
        &format!("secret_access_key = \"{SK}\"\nexpires_at = \"2020-01-01T00:00:00Z\"\n"),
    );
    let proxy = proxy(&cfg, false).await;
    let got = post(
        &api(&proxy, "/generate-presigned-url"),
        r#"{"key": "acme/x"}"#,
        &[("authorization", &bearer(SK_ACME))],
    )
    .await;
    assert_eq!(got.status, 500);
    assert_eq!(got.json()["code"], "internal");
    assert_eq!(got.json()["message"], "internal error", "no detail leaks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_sign_api() {
    let origin = s3_origin().await;
    let proxy = proxy(&config(&origin, ""), false).await;
    origin.put("acme/n.txt", b"native api");
    let url = api(&proxy, "/v1/sign");
    let sk = bearer(SK_ACME);
    let got = post(
        &url,
        r#"{"origin": "docs", "key": "acme/n.txt"}"#,
        &[("authorization", &sk)],
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text());
    let body = got.json();
    assert_eq!(
        (body["origin"].as_str(), body["key"].as_str()),
        (Some("docs"), Some("acme/n.txt"))
    );
    assert_eq!(
        get(body["url"].as_str().unwrap(), &[]).await.text(),
        "native api"
    );
    // Without expires_in: the bucketed, cached URL (the same on a second call).
    let again = post(
        &url,
        r#"{"origin": "docs", "key": "acme/n.txt"}"#,
        &[("authorization", &sk)],
    )
    .await;
    assert_eq!(again.json()["url"], body["url"]);
    // By URL, with an exact lifetime and HEAD.
    let by_url = post(&url, &json!({"url": format!("{}/{BUCKET}/acme/n.txt", origin.endpoint()), "expires_in": 120, "method": "HEAD"}).to_string(), &[("authorization", &sk)]).await;
    assert_eq!(by_url.status, 200);
    let head_url = by_url.json()["url"].as_str().unwrap().to_owned();
    assert!(head_url.contains("X-Amz-Expires=120"));
    assert_eq!(send("HEAD", &head_url, &[]).await.status, 200);

    let code = |g: &Got| g.json()["code"].as_str().unwrap().to_owned();
    assert_eq!(
        code(
            &post(
                &url,
                r#"{"origin": "nope", "key": "acme/n.txt"}"#,
                &[("authorization", &sk)]
            )
            .await
        ),
        "not_found"
    );
    assert_eq!(
        code(
            &post(
                &url,
                r#"{"url": "https://elsewhere.example/x"}"#,
                &[("authorization", &sk)]
            )
            .await
        ),
        "forbidden_origin"
    );
    assert_eq!(
        code(&post(&url, r#"{"origin": "docs"}"#, &[("authorization", &sk)]).await),
        "bad_request"
    );
    assert_eq!(
        code(
            &post(
                &url,
                r#"{"origin": "docs", "key": "k", "method": "PUT"}"#,
                &[("authorization", &sk)]
            )
            .await
        ),
        "bad_request"
    );
    assert_eq!(
        code(&post(&url, r#"{"origin": "docs", "key": "acme/n.txt"}"#, &[]).await),
        "unauthorized"
    );
    assert_eq!(
        code(
            &post(
                &url,
                r#"{"origin": "docs", "key": "acme/n.txt"}"#,
                &[("authorization", &bearer(PK_ACME))]
            )
            .await
        ),
        "forbidden"
    );
    assert_eq!(
        code(
            &post(
                &url,
                r#"{"origin": "docs", "key": "globex/n.txt"}"#,
                &[("authorization", &sk)]
            )
            .await
        ),
        "forbidden"
    );
}

/// The README's curl examples, against the shipped config.toml and its demo-only keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_examples_run_against_the_shipped_config() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = http.local_addr().unwrap();
    let text = std::fs::read_to_string(root.join("config.toml"))
        .unwrap()
        .replace("127.0.0.1:8080", &addr.to_string());
    let config = edgesign::config::Config::parse(&text, root, &|_| None).unwrap();
    let _running = edgesign::server::serve(
        edgesign::app::App::new(config).unwrap(),
        edgesign::server::Listeners { http, https: None },
    )
    .unwrap();
    let base = format!("http://{addr}");
    let sk = bearer("sk_demo_acme_DO_NOT_USE_IN_PRODUCTION");
    let welcome = "Welcome, acme. This object lives under the acme/ org prefix.\n";

    let demo = get(&format!("{base}/demo/hello.txt"), &[]).await;
    assert_eq!(demo.status, 302);
    assert!(
        get(demo.header("location"), &[])
            .await
            .text()
            .starts_with("Hello from edgesign!")
    );

    let content = post(
        &format!("{base}/orgs/acme/content/sign"),
        r#"{"url": "acme/welcome.txt"}"#,
        &[("authorization", &sk)],
    )
    .await
    .json();
    assert_eq!(
        get(content["signed_url"].as_str().unwrap(), &[])
            .await
            .text(),
        welcome
    );
    let files = post(
        &format!("{base}/v1/files/f_demo123/signed-url"),
        r#"{"expires_in": 300}"#,
        &[("authorization", &sk)],
    )
    .await
    .json();
    assert_eq!(
        get(files["url"].as_str().unwrap(), &[]).await.text(),
        "The file behind file id f_demo123.\n"
    );
    let presign = post(
        &format!("{base}/generate-presigned-url"),
        r#"{"key": "acme/welcome.txt"}"#,
        &[("authorization", &sk)],
    )
    .await
    .json();
    let presigned = presign["url"].as_str().unwrap();
    assert_eq!(get(presigned, &[]).await.text(), welcome);
    let via = format!(
        "{base}/api/v1/proxy/file?presigned_url={}",
        edgesign::sign::encoding::uri_encode(presigned.as_bytes(), false)
    );
    assert_eq!(get(&via, &[]).await.text(), welcome);
    let native = post(
        &format!("{base}/v1/sign"),
        r#"{"origin": "demo", "key": "acme/welcome.txt", "expires_in": 60}"#,
        &[("authorization", &sk)],
    )
    .await
    .json();
    assert_eq!(
        get(native["url"].as_str().unwrap(), &[]).await.text(),
        welcome
    );
    let pk = post(
        &format!("{base}/v1/sign"),
        r#"{"origin": "demo", "key": "acme/welcome.txt"}"#,
        &[(
            "authorization",
            &bearer("pk_demo_acme_DO_NOT_USE_IN_PRODUCTION"),
        )],
    )
    .await;
    assert_eq!(pk.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_without_an_org_and_dot_segments_are_confined() {
    let origin = s3_origin().await;
    let proxy = proxy(&config(&origin, ""), false).await;
    origin.put("acme/a.txt", b"acme a");
    // A token with no org claim mints nothing and reads no org route.
    let no_org = bearer(&hs(claims(json!({"org": null}))));
    let minted = post(
        &api(&proxy, "/v1/sign"),
        r#"{"origin": "docs", "key": "acme/a.txt"}"#,
        &[("authorization", &no_org)],
    )
    .await;
    assert_eq!(minted.status, 403);
    assert_eq!(
        get(
            &format!("{}/org/acme/a.txt", proxy.base),
            &[("authorization", &no_org)]
        )
        .await
        .status,
        403
    );
    // Dot segments cannot walk an org caller out of its prefix.
    let walk = get(
        &format!("{}/org/acme/..%2Fglobex%2Fsecret.txt", proxy.base),
        &[("authorization", &bearer(SK_ACME))],
    )
    .await;
    assert_eq!(walk.status, 403);
    // A stale session cookie does not break a capability URL.
    let now_amz = edgesign::sign::encoding::amz_date(now());
    let valid = botocore_presign(
        &origin.endpoint(),
        "acme/a.txt",
        std::str::from_utf8(&now_amz).unwrap(),
        600,
    );
    let stale_cookie = format!(
        "edgesign_session={}",
        hs(claims(json!({"exp": now() - 3600})))
    );
    let got = get(
        &format!(
            "{}/org/acme/a.txt?{}",
            proxy.base,
            valid.split_once('?').unwrap().1
        ),
        &[("cookie", &stale_cookie)],
    )
    .await;
    assert_eq!(got.status, 302, "{}", got.text());
}
