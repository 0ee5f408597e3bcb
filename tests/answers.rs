//! What clients hear when things are not simply 200: an origin's errors in stream mode
//! (its status kept, its body never passed on), an oversized request head, a stale
//! `/_origin/` link, and public objects on the content-sign API.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::time::Duration;

use bytes::Bytes;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An origin body that must never reach a client: it names buckets, hosts and request ids.
const LEAK: &str =
    "<Error><Code>X</Code><BucketName>secret-bucket</BucketName><HostId>h-1234</HostId></Error>";

fn stand_in_config(addr: std::net::SocketAddr) -> String {
    format!(
        "[[origins]]\nname = \"docs\"\nkind = \"s3\"\nendpoint = \"http://{addr}\"\nregion = \"us-east-1\"\nbucket = \"{BUCKET}\"\npath_style = true\nttl = \"1h\"\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n\n[[routes]]\nprefix = \"/s/\"\norigin = \"docs\"\nmode = \"stream\"\naccess = \"public\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_errors_keep_their_status_and_never_their_body() {
    // The origin answers by the object's name: /<bucket>/<status>.
    let addr = serve_fn(|req| {
        let status: u16 = req
            .uri
            .path()
            .rsplit('/')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(200);
        let mut resp = http::Response::new(http_body_util::Full::new(Bytes::from_static(
            if status == 200 || status == 206 {
                b"object"
            } else {
                LEAK.as_bytes()
            },
        )));
        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
        if status == 416 {
            resp.headers_mut()
                .insert("content-range", http::HeaderValue::from_static("bytes */6"));
        }
        resp.headers_mut()
            .insert("x-amz-request-id", http::HeaderValue::from_static("h-1234"));
        resp
    })
    .await;
    let proxy = proxy(&stand_in_config(addr), false).await;
    let app = proxy.app();
    let signer = &app.config.origin("docs").unwrap().signer;
    for (origin_status, status, code, xml) in [
        (404, 404, "not_found", "NoSuchKey"),
        (412, 412, "precondition_failed", "PreconditionFailed"),
        (416, 416, "range_not_satisfiable", "InvalidRange"),
        (401, 502, "origin_rejected", "InternalError"),
        (403, 502, "origin_rejected", "InternalError"),
        (500, 502, "origin_unavailable", "InternalError"),
        (503, 502, "origin_unavailable", "InternalError"),
    ] {
        // A browser on a stable link hears JSON.
        let got = get(&format!("{}/s/{origin_status}", proxy.base), &[]).await;
        assert_eq!(got.status.as_u16(), status, "origin {origin_status}");
        assert_eq!(got.json()["code"], code, "origin {origin_status}");
        assert!(
            !got.text().contains("secret-bucket"),
            "origin {origin_status}: {}",
            got.text()
        );
        assert!(got.headers.get("x-amz-request-id").is_none());
        if origin_status == 416 {
            assert_eq!(got.header("content-range"), "bytes */6");
        }
        // An S3 client (a SigV4 URL) hears S3's XML, with the same status.
        let now = edgesign::clock::unix_secs(edgesign::clock::now());
        let url = signer
            .sign(&edgesign::sign::signer::SignSpec {
                raw_key: &origin_status.to_string(),
                method: edgesign::sign::Method::Get,
                params: &[],
                signed_at: now,
                lifetime: 600,
            })
            .unwrap()
            .url;
        let got = get(
            &format!(
                "{}/s/{}",
                proxy.base,
                url.split_once(&format!("/{BUCKET}/")).unwrap().1
            ),
            &[],
        )
        .await;
        assert_eq!(
            got.status.as_u16(),
            status,
            "S3 client, origin {origin_status}"
        );
        assert!(
            got.text().contains(&format!("<Code>{xml}</Code>")),
            "{}",
            got.text()
        );
        assert!(!got.text().contains("secret-bucket"));
    }
    // 304 passes, with no body.
    let got = get(&format!("{}/s/304", proxy.base), &[]).await;
    assert_eq!(got.status, 304);
    assert!(got.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_object_at_a_real_store_is_a_json_404_not_its_xml() {
    let origin = s3_origin().await;
    let proxy = proxy(&format!("{}[[routes]]\nprefix = \"/s/\"\norigin = \"docs\"\nmode = \"stream\"\naccess = \"public\"\n", s3_origin_toml(&origin, "1h")), false).await;
    let got = get(&format!("{}/s/no/such/key.txt", proxy.base), &[]).await;
    assert_eq!(got.status, 404);
    assert_eq!(got.json()["code"], "not_found");
    assert!(!got.text().contains("NoSuchKey"), "{}", got.text());
    assert!(!got.text().contains(BUCKET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_rejection_is_logged_with_the_origins_own_code() {
    let addr = serve_fn(|_req| {
        let mut resp = http::Response::new(http_body_util::Full::new(Bytes::from_static(
            LEAK.as_bytes(),
        )));
        *resp.status_mut() = http::StatusCode::FORBIDDEN;
        resp
    })
    .await;
    let proxy = spawn_with("answers-log", &stand_in_config(addr), &[]);
    let got = get(&format!("{}/s/a.txt", proxy.base), &[]).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.json()["code"], "origin_rejected");
    assert!(
        proxy
            .wait_for_log("origin docs answered 403 Forbidden", Duration::from_secs(5))
            .await,
        "the origin's code is not in the log:\n{}",
        proxy.log()
    );
    // Once, with the request id and the code the client heard.
    let id = got.header("x-request-id").to_owned();
    let lines: Vec<String> = proxy
        .log()
        .lines()
        .filter(|l| l.contains("answered 403 Forbidden"))
        .map(str::to_owned)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(&id) && lines[0].contains("origin_rejected"),
        "{}",
        lines[0]
    );
    assert!(!proxy.log().contains("secret-bucket"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_head_gets_a_json_431() {
    let root = tempdir("answers-local");
    std::fs::write(root.join("ok.txt"), "fine").unwrap();
    let proxy = proxy_with(
        &format!("[[origins]]\nname = \"demo\"\nkind = \"local\"\nroot = \"{}\"\nttl = \"1h\"\n[[origins.keys]]\nkey_id = \"k1\"\nsecret = \"0123456789abcdef0123456789\"\n[[routes]]\nprefix = \"/d/\"\norigin = \"demo\"\nmode = \"stream\"\naccess = \"public\"\n", root.display()),
        false,
        "max_header_size = 8192",
    )
    .await;
    let mut sock = tokio::net::TcpStream::connect(proxy.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let big = "x".repeat(9000);
    sock.write_all(format!("GET /d/ok.txt HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut answer))
        .await
        .expect("no answer")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    assert!(
        answer.contains("content-type: application/json"),
        "{answer}"
    );
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["code"], "header_too_large");
    // A head within the limit is served on a fresh connection, as ever.
    assert_eq!(
        get(&format!("{}/d/ok.txt", proxy.base), &[]).await.text(),
        "fine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_origin_link_is_rescued_for_a_caller_who_may_read_it() {
    let root = tempdir("answers-rescue");
    std::fs::create_dir_all(root.join("acme")).unwrap();
    std::fs::write(root.join("acme/doc.txt"), "acme doc").unwrap();
    let proxy = proxy(
        &format!("[[origins]]\nname = \"demo\"\nkind = \"local\"\nroot = \"{}\"\nttl = \"1h\"\n[[origins.keys]]\nkey_id = \"k1\"\nsecret = \"0123456789abcdef0123456789\"\n[[routes]]\nprefix = \"/d/\"\norigin = \"demo\"\nmode = \"redirect\"\naccess = \"org\"\n[auth]\n{}", root.display(), api_keys_toml()),
        false,
    )
    .await;
    let app = proxy.app();
    let signer = &app.config.origin("demo").unwrap().signer;
    // Signed an hour and a half ago, for an hour.
    let past = edgesign::clock::unix_secs(edgesign::clock::now()) - 5400;
    let stale_link = |raw_key: &str| {
        signer
            .sign(&edgesign::sign::signer::SignSpec {
                raw_key,
                method: edgesign::sign::Method::Get,
                params: &[],
                signed_at: past,
                lifetime: 3600,
            })
            .unwrap()
            .url
    };
    let stale = stale_link("acme/doc.txt");
    // Anonymous: 401, as before.
    let anon = get(&stale, &[]).await;
    assert_eq!(anon.status, 401);
    assert_eq!(anon.json()["code"], "unauthorized");
    // Another org's object, or a forged link: 403.
    let other = format!("Bearer {SK_ACME}");
    let theirs = stale_link("globex/doc.txt");
    let got = get(&theirs, &[("authorization", &other)]).await;
    assert_eq!(got.status, 403);
    assert_eq!(got.json()["code"], "forbidden");
    let forged = stale.replace("acme/doc.txt", "acme/other.txt");
    let got = get(&forged, &[("authorization", &other)]).await;
    assert_eq!(got.json()["code"], "invalid_signature");
    // The org's caller: 302 to a fresh link that serves the file.
    let got = get(&stale, &[("authorization", &other)]).await;
    assert_eq!(got.status, 302, "{}", got.text());
    let fresh = got.header("location").to_owned();
    assert!(
        fresh.starts_with(&format!("{}/_origin/demo/acme/doc.txt?", proxy.base)),
        "{fresh}"
    );
    assert_ne!(fresh, stale);
    assert_eq!(get(&fresh, &[]).await.text(), "acme doc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_objects_answer_the_content_api_for_any_authenticated_caller() {
    let origin = s3_origin().await;
    let cfg = format!(
        "[[origins]]\nname = \"docs\"\nkind = \"s3\"\nendpoint = \"{}\"\nregion = \"us-east-1\"\nbucket = \"{BUCKET}\"\npath_style = true\nttl = \"1h\"\npublic_prefixes = [\"public/\"]\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n[auth]\n{}[[auth.api_keys]]\nsha256 = \"{}\"\nkind = \"public\"\norg = \"globex\"\n[compat]\ncontent_sign_origin = \"docs\"\n",
        origin.endpoint(),
        api_keys_toml(),
        hex::encode(edgesign::auth::api_key::hash("pk_test_globex_0123456789"))
    );
    let proxy = proxy(&cfg, false).await;
    let unsigned = format!("{}/{BUCKET}/public/logo.png", origin.endpoint());
    for (caller, org) in [
        (SK_ACME, "acme"),
        (SK_ACME, "globex"),
        ("pk_test_globex_0123456789", "globex"),
    ] {
        let got = post(
            &format!("{}/orgs/{org}/content/sign", proxy.base),
            r#"{"url": "public/logo.png"}"#,
            &[("authorization", &format!("Bearer {caller}"))],
        )
        .await;
        assert_eq!(got.status, 200, "{caller} for {org}: {}", got.text());
        assert_eq!(
            got.json(),
            serde_json::json!({"url": unsigned, "signed_url": null})
        );
    }
    // Still 401 without credentials, and private objects stay the org's own.
    assert_eq!(
        post(
            &format!("{}/orgs/acme/content/sign", proxy.base),
            r#"{"url": "public/logo.png"}"#,
            &[]
        )
        .await
        .status,
        401
    );
    let other = post(
        &format!("{}/orgs/globex/content/sign", proxy.base),
        r#"{"url": "globex/doc.txt"}"#,
        &[("authorization", &format!("Bearer {SK_ACME}"))],
    )
    .await;
    assert_eq!(other.status, 403);
    assert_eq!(other.json()["code"], "FORBIDDEN");
}
