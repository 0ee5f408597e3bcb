//! RS256 keys from `auth.jwks_url`, against a local JWKS server that rotates its keys as an
//! identity provider does: a key is published, a second one added, the first withdrawn.
//! Tokens are signed here with the two private keys (PKCS#1 v1.5, SHA-256).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde_json::json;
use support::*;

fn key(file: &str) -> rsa::RsaPrivateKey {
    let pem = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors")
            .join(file),
    )
    .unwrap();
    rsa::RsaPrivateKey::from_pkcs8_pem(&pem)
        .or_else(|_| {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            rsa::RsaPrivateKey::from_pkcs1_pem(&pem)
        })
        .unwrap()
}

fn jwk(kid: &str, k: &rsa::RsaPrivateKey) -> serde_json::Value {
    let public = k.to_public_key();
    json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    })
}

fn token(kid: &str, k: &rsa::RsaPrivateKey) -> String {
    let now = edgesign::clock::unix_secs(edgesign::clock::now());
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "RS256", "typ": "JWT", "kid": kid})),
        b64(json!({"sub": "u1", "org": "acme", "exp": now + 600}))
    );
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(k.clone());
    let sig = signer.sign(input.as_bytes());
    format!("Bearer {input}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_keys_by_kid_follow_the_provider_as_it_rotates() {
    let (one, two) = (
        key("cloudfront_test_key.pem"),
        key("jwt_rs256_test_key.pem"),
    );
    let published = Arc::new(Mutex::new(vec![jwk("one", &one)]));
    let fetches = Arc::new(Mutex::new(0u32));
    let server = {
        let (published, fetches) = (published.clone(), fetches.clone());
        serve_fn(move |_| {
            *fetches.lock().unwrap() += 1;
            let body = json!({"keys": *published.lock().unwrap()}).to_string();
            http::Response::builder()
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(Bytes::from(body)))
                .unwrap()
        })
        .await
    };
    let dir = tempdir("jwks");
    std::fs::create_dir_all(dir.join("root/acme")).unwrap();
    std::fs::write(dir.join("root/acme/doc.txt"), "doc").unwrap();
    let edge = spawn_with(
        "jwks",
        &format!(
            "public_url = \"http://edge.example\"\n[[origins]]\nname = \"demo\"\nkind = \"local\"\nroot = \"{}\"\nttl = \"1h\"\n[[origins.keys]]\nkey_id = \"k1\"\nsecret = \"a-local-origin-key-0123456789abcdef\"\n[[routes]]\nprefix = \"/d/\"\norigin = \"demo\"\nmode = \"redirect\"\naccess = \"org\"\n[auth]\njwks_url = \"http://{server}/.well-known/jwks.json\"\njwks_refresh = \"2s\"\n",
            dir.join("root").display()
        ),
        &[],
    );
    let (base, url) = (edge.base.clone(), format!("{}/d/acme/doc.txt", edge.base));
    let until = |within: Duration, want: u16, bearer: String| {
        let url = url.clone();
        async move {
            let deadline = edgesign::clock::instant() + within;
            loop {
                let status = get(&url, &[("authorization", &bearer)]).await.status;
                if status == want || edgesign::clock::instant() > deadline {
                    return status.as_u16();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    // Ready once the first set is held (waited for without a token: a token sent before
    // would count as an unknown kid and spend the refetch allowance the next step tests);
    // then a token signed by its key is admitted.
    let deadline = edgesign::clock::instant() + Duration::from_secs(10);
    while get(&format!("{base}/readyz"), &[]).await.status != 200 {
        assert!(edgesign::clock::instant() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        until(Duration::from_secs(10), 302, token("one", &one)).await,
        302
    );

    // A kid the set lacks makes edgesign fetch again at once (the provider has not published
    // it yet, so still 401)…
    let before = *fetches.lock().unwrap();
    let unknown = get(&url, &[("authorization", &token("two", &two))]).await;
    assert_eq!(unknown.status, 401, "{}", unknown.text());
    let after = *fetches.lock().unwrap();
    assert!(after > before, "an unknown kid did not fetch the set");
    // …but not again within the rate limit: made-up kids cannot flood the provider.
    for _ in 0..5 {
        assert_eq!(
            get(&url, &[("authorization", &token("made-up", &two))])
                .await
                .status,
            401
        );
    }
    assert!(
        *fetches.lock().unwrap() <= after + 1,
        "unknown kids fetched the set {} times",
        *fetches.lock().unwrap() - before
    );
    // The provider publishes the second key: admitted without a restart or a reload.
    published.lock().unwrap().push(jwk("two", &two));
    assert_eq!(
        until(Duration::from_secs(10), 302, token("two", &two)).await,
        302
    );
    // A token signed by one key but naming the other's kid is refused.
    assert_eq!(
        get(&url, &[("authorization", &token("two", &one))])
            .await
            .status,
        401
    );

    // The first key is withdrawn: the timed refresh drops it.
    published.lock().unwrap().remove(0);
    assert_eq!(
        until(Duration::from_secs(10), 401, token("one", &one)).await,
        401
    );
    assert_eq!(
        get(&url, &[("authorization", &token("two", &two))])
            .await
            .status,
        302
    );

    // The provider fails: the keys in hand stay in use.
    published.lock().unwrap().clear();
    assert!(
        edge.wait_for_log("cannot fetch the JWKS", Duration::from_secs(10))
            .await,
        "{}",
        edge.log()
    );
    assert_eq!(
        get(&url, &[("authorization", &token("two", &two))])
            .await
            .status,
        302
    );
}
