//! Who may do what, and the JSON signing APIs: API keys, JWT (header and cookie) with every
//! rejection, rate limits, and every documented status of the four APIs. Every URL an API
//! returns is fetched from the real s3s-fs origin.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a broken fixture should fail loudly")]

mod harness;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use harness::*;
use hmac::Mac;
use serde_json::{Value, json};

const PK_ACME: &str = "pk_test_acme_0123456789";
const HS_SECRET: &str = "an-hs256-secret-that-is-long-enough-0123456789";

fn now() -> u64 {
    edgesign::clock::unix_secs(edgesign::clock::now())
}

fn jwt_hs256(secret: &[u8], header: Value, claims: Value) -> String {
    let h = URL_SAFE_NO_PAD.encode(header.to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(format!("{h}.{c}").as_bytes());
    format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

fn jwt_rs256(claims: Value) -> String {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};
    let pem = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/cloudfront_test_key.pem")).unwrap();
    let key = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(rsa::RsaPrivateKey::from_pkcs1_pem(&pem).unwrap());
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string());
    let c = URL_SAFE_NO_PAD.encode(claims.to_string());
    let sig = key.sign(format!("{h}.{c}").as_bytes());
    format!("{h}.{c}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

fn hs(claims: Value) -> String {
    jwt_hs256(HS_SECRET.as_bytes(), json!({"alg": "HS256", "typ": "JWT"}), claims)
}

fn config(origin: &S3Origin, extra: &str) -> String {
    let pub_pem = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/cloudfront_test_key.pub.pem");
    let h = |k: &str| hex::encode(edgesign::auth::api_key::hash(k));
    format!(
        "{extra}\n[[origins]]\nname = \"docs\"\nkind = \"s3\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"{BUCKET}\"\npath_style = true\nttl = \"1h\"\npublic_prefixes = [\"public/\"]\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n\n[[routes]]\nprefix = \"/org/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"org\"\n\n[auth]\njwt_hs256_secret = \"{HS_SECRET}\"\njwt_rs256_public_key_files = [\"{}\"]\nissuer = \"https://auth.example.com\"\naudience = \"edgesign\"\n{}[[auth.api_keys]]\nsha256 = \"{}\"\nkind = \"public\"\norg = \"acme\"\n\n[compat]\ncontent_sign_origin = \"docs\"\nfiles_origin = \"docs\"\nfiles_key_prefix = \"acme/files/\"\npresign_origin = \"docs\"\n",
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

async fn post(url: &str, body: &str, headers: &[(&str, &str)]) -> Got {
    use http_body_util::BodyExt;
    let mut req = http::Request::builder().method("POST").uri(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let resp = client.request(req.body(http_body_util::Full::new(bytes::Bytes::from(body.to_owned()))).unwrap()).await.unwrap();
    let (parts, body) = resp.into_parts();
    Got { status: parts.status, headers: parts.headers, body: body.collect().await.unwrap().to_bytes(), version: parts.version }
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
        let cookie = get(&url, &[("cookie", &format!("theme=dark; edgesign_session={token}"))]).await;
        assert_eq!(cookie.status, 302);
        let other = get(&format!("{}/org/globex/a.txt", proxy.base), &[("authorization", &bearer(&token))]).await;
        assert_eq!(other.status, 403, "the org claim scopes the caller");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_token_is_rejected() {
    let origin = s3_origin().await;
    let proxy = proxy(&config(&origin, ""), false).await;
    let url = format!("{}/org/acme/a.txt", proxy.base);
    let public_pem = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/cloudfront_test_key.pub.pem")).unwrap();
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg": "none"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims(json!({})).to_string())
    );
    let cases = [
        ("alg none", none),
        ("algorithm confusion: HS256 keyed with the RS256 public key", jwt_hs256(&public_pem, json!({"alg": "HS256"}), claims(json!({})))),
        ("wrong HS256 secret", jwt_hs256(b"another-secret-another-secret-another", json!({"alg": "HS256"}), claims(json!({})))),
        ("expired", hs(claims(json!({"exp": now() - 3600})))),
        ("no exp", hs(claims(json!({"exp": null})))),
        ("not yet valid", hs(claims(json!({"nbf": now() + 3600})))),
        ("wrong issuer", hs(claims(json!({"iss": "https://evil.example.com"})))),
        ("wrong audience", hs(claims(json!({"aud": "someone-else"})))),
        ("unsupported alg", jwt_hs256(HS_SECRET.as_bytes(), json!({"alg": "HS512"}), claims(json!({})))),
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
    assert_eq!(get(&url, &[("authorization", &bearer(&skewed))]).await.status, 302);
    // An audience list that holds ours is accepted.
    let list = hs(claims(json!({"aud": ["other", "edgesign"]})));
    assert_eq!(get(&url, &[("authorization", &bearer(&list))]).await.status, 302);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_per_principal_with_retry_after() {
    let origin = s3_origin().await;
    let proxy = proxy_with(&config(&origin, "[rate_limit]\nper_second = 0.5\nburst = 2\n"), false, "trusted_proxies = [\"127.0.0.1/32\"]").await;
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
    assert_eq!(get(&url, &[("authorization", &bearer(SK_ACME))]).await.status, 302);
    let ops = proxy.app().cache.signing_ops();
    for _ in 0..5 {
        get(&url, &[("authorization", &admin)]).await;
    }
    assert_eq!(proxy.app().cache.signing_ops(), ops, "a limited request does no signing work");
    // Anonymous callers are counted per client address, from X-Forwarded-For when the peer
    // is a trusted proxy.
    let public = format!("{}/org/acme/a.txt", proxy.base);
    for _ in 0..2 {
        assert_eq!(get(&public, &[("x-forwarded-for", "203.0.113.1")]).await.status, 401);
    }
    assert_eq!(get(&public, &[("x-forwarded-for", "203.0.113.1")]).await.status, 429);
    assert_eq!(get(&public, &[("x-forwarded-for", "203.0.113.2")]).await.status, 401, "another client, another bucket");
}
