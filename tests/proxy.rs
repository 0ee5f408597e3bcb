//! The proxy end to end, in process, against a real S3-compatible origin (s3s-fs verifies
//! every presigned signature and expiry itself): stable links in redirect and stream mode,
//! the signature cache, stale-URL rescue (botocore-minted), tampering, the local origin and
//! its path-escape defences, origin failures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

mod support;

use edgesign::sign::encoding::encode_key;
use sha2::Digest;
use support::*;

fn redirect_config(origin: &S3Origin, extra_routes: &str) -> String {
    format!(
        "[cache]\nbucket = \"15m\"\n{}\n[[routes]]\nprefix = \"/files/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"public\"\n\n[[routes]]\nprefix = \"/org/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"org\"\n\n[[routes]]\nprefix = \"/s/\"\norigin = \"docs\"\nmode = \"stream\"\naccess = \"public\"\n{extra_routes}\n[auth]\n{}",
        s3_origin_toml(origin, "1h"),
        api_keys_toml()
    )
}

const TRICKY_KEYS: [&str; 7] = [
    "hello.txt",
    "a b/ü+=&.txt",
    "x(1)!'*;,@$.bin",
    "emoji-😀.png",
    "100%25 sure.txt",
    "deep/er/key~_-.txt",
    "q?and#hash.txt",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stable_links_redirect_to_urls_the_origin_accepts() {
    let origin = s3_origin().await;
    let proxy = proxy(&redirect_config(&origin, ""), false).await;
    for key in TRICKY_KEYS {
        origin.put(key, format!("content of {key}").as_bytes());
        let got = get(&format!("{}/files/{}", proxy.base, encode_key(key)), &[]).await;
        assert_eq!(got.status, 302, "{key}: {}", got.text());
        let location = got.header("location").to_owned();
        assert!(
            location.starts_with(&format!("{}/{BUCKET}/", origin.endpoint())),
            "{location}"
        );
        let max_age: u64 = got
            .header("cache-control")
            .strip_prefix("private, max-age=")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            (1..=900).contains(&max_age),
            "max-age {max_age} outlives the bucket"
        );
        let fetched = get(&location, &[]).await;
        assert_eq!(
            fetched.status,
            200,
            "{key}: origin refused {location}: {}",
            fetched.text()
        );
        assert_eq!(fetched.text(), format!("content of {key}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_overrides_are_signed_in_and_honoured() {
    let origin = s3_origin().await;
    let proxy = proxy(&redirect_config(&origin, ""), false).await;
    origin.put("report.pdf", b"%PDF");
    // Overrides need a caller with credentials (as at S3), even on a public route.
    let auth = format!("Bearer {SK_ACME}");
    let got = get(&format!("{}/files/report.pdf?response-content-disposition=attachment%3B%20filename%3D%22r.pdf%22&junk=1", proxy.base), &[("authorization", &auth)]).await;
    assert_eq!(got.status, 302);
    let location = got.header("location");
    assert!(
        location.contains("response-content-disposition=attachment%3B%20filename%3D%22r.pdf%22"),
        "{location}"
    );
    assert!(
        !location.contains("junk"),
        "only response-* overrides are carried"
    );
    let fetched = get(location, &[]).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(
        fetched.header("content-disposition"),
        "attachment; filename=\"r.pdf\""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_signs_nothing_and_concurrent_misses_sign_once() {
    let origin = s3_origin().await;
    let proxy = proxy(&redirect_config(&origin, ""), false).await;
    let ops = || proxy.app().cache().signing_ops();
    let first = get(&format!("{}/files/one.txt", proxy.base), &[]).await;
    assert_eq!(ops(), 1);
    let second = get(&format!("{}/files/one.txt", proxy.base), &[]).await;
    assert_eq!(ops(), 1, "a hit performs no signing operation");
    assert_eq!(first.header("location"), second.header("location"));
    // A HEAD is another URL (the method is signed).
    let head = send("HEAD", &format!("{}/files/one.txt", proxy.base), &[]).await;
    assert_eq!(head.status, 302);
    assert_eq!(ops(), 2);

    let url = format!("{}/files/many.txt", proxy.base);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url, &[]).await.header("location").to_owned() })
        })
        .collect();
    let mut locations = Vec::new();
    for t in tasks {
        locations.push(t.await.unwrap());
    }
    assert_eq!(ops(), 3, "100 concurrent misses for one key sign once");
    assert!(
        locations
            .iter()
            .all(|l| l == &locations[0] && !l.is_empty())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_mode_passes_ranges_conditionals_and_head() {
    let origin = s3_origin().await;
    let proxy = proxy(&redirect_config(&origin, ""), false).await;
    let body: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    origin.put("big.bin", &body);
    let url = format!("{}/s/big.bin", proxy.base);

    let full = get(&url, &[]).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.body.as_ref(), &body[..]);
    assert_eq!(full.header("content-length"), "1048576");
    let etag = full.header("etag").to_owned();
    assert!(!etag.is_empty());

    let part = get(&url, &[("range", "bytes=10-19")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), "bytes 10-19/1048576");
    assert_eq!(part.body.as_ref(), &body[10..20]);

    assert_eq!(get(&url, &[("range", "bytes=2000000-")]).await.status, 416);

    let head = send("HEAD", &url, &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), "1048576");
    assert!(head.body.is_empty());

    assert_eq!(
        get(&format!("{}/s/missing.bin", proxy.base), &[])
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_object_streams_intact() {
    let origin = s3_origin().await;
    let proxy = proxy(&redirect_config(&origin, ""), false).await;
    let mut body = vec![0u8; 64 << 20];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for chunk in body.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    origin.put("huge.bin", &body);
    let got = get(&format!("{}/s/huge.bin", proxy.base), &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body.len(), body.len());
    assert_eq!(sha2::Sha256::digest(&got.body), sha2::Sha256::digest(&body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_botocore_urls_are_rescued_only_for_authorized_callers() {
    let origin = s3_origin().await;
    let grace = "\n[[routes]]\nprefix = \"/grace/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"org\"\nstale_grace = \"20000days\"\n";
    let proxy = proxy(&redirect_config(&origin, grace), false).await;
    origin.put("stale.txt", b"rescued");
    origin.put("acme/stale.txt", b"acme's");
    let stale = botocore_presign(&origin.endpoint(), "stale.txt", "20130524T000000Z", 3600);
    // The origin itself refuses it: it really has expired.
    assert_eq!(get(&stale, &[]).await.status, 403);
    let query = stale.split_once('?').unwrap().1;

    // No credentials: S3's own answer, since the client is an S3 client.
    let anon = get(&format!("{}/org/stale.txt?{query}", proxy.base), &[]).await;
    assert_eq!(anon.status, 403);
    assert_eq!(anon.header("content-type"), "application/xml");
    assert!(
        anon.text()
            .contains("<Code>AccessDenied</Code><Message>Request has expired</Message>"),
        "{}",
        anon.text()
    );

    // An org-scoped key may not rescue a key outside its org.
    let acme = get(
        &format!("{}/org/stale.txt?{query}", proxy.base),
        &[("authorization", &format!("Bearer {SK_ACME}"))],
    )
    .await;
    assert_eq!(acme.status, 403);

    // Credentials that may read it: a fresh URL the origin accepts.
    let ok = get(
        &format!("{}/org/stale.txt?{query}", proxy.base),
        &[("authorization", &format!("Bearer {SK_ADMIN}"))],
    )
    .await;
    assert_eq!(ok.status, 302, "{}", ok.text());
    let fresh = ok.header("location");
    assert!(fresh.starts_with(&format!("{}/{BUCKET}/stale.txt?", origin.endpoint())));
    assert_eq!(get(fresh, &[]).await.text(), "rescued");

    // Within a route's stale_grace no credentials are needed.
    let graced = get(&format!("{}/grace/stale.txt?{query}", proxy.base), &[]).await;
    assert_eq!(graced.status, 302);
    assert_eq!(get(graced.header("location"), &[]).await.text(), "rescued");

    // acme may rescue its own keys.
    let own = botocore_presign(
        &origin.endpoint(),
        "acme/stale.txt",
        "20130524T000000Z",
        3600,
    );
    let own_query = own.split_once('?').unwrap().1;
    let r = get(
        &format!("{}/org/acme/stale.txt?{own_query}", proxy.base),
        &[("authorization", &format!("Bearer {SK_ACME}"))],
    )
    .await;
    assert_eq!(r.status, 302);
    assert_eq!(get(r.header("location"), &[]).await.text(), "acme's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_or_moved_urls_are_refused_and_never_resigned() {
    let origin = s3_origin().await;
    let proxy = proxy(&redirect_config(&origin, ""), false).await;
    origin.put("a.txt", b"a");
    origin.put("b.txt", b"b");
    let stale = botocore_presign(&origin.endpoint(), "a.txt", "20130524T000000Z", 3600);
    let query = stale.split_once('?').unwrap().1;
    let admin = format!("Bearer {SK_ADMIN}");
    let sig = query.rsplit_once("X-Amz-Signature=").unwrap().1;
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { '1' } else { '0' },
        &sig[1..]
    );
    for (what, path) in [
        (
            "tampered signature",
            format!("/org/a.txt?{}", query.replace(sig, &flipped)),
        ),
        ("another object", format!("/org/b.txt?{query}")),
        (
            "tampered expiry",
            format!(
                "/org/a.txt?{}",
                query.replace("X-Amz-Expires=3600", "X-Amz-Expires=3601")
            ),
        ),
    ] {
        let got = get(
            &format!("{}{path}", proxy.base),
            &[("authorization", &admin)],
        )
        .await;
        assert_eq!(got.status, 403, "{what}");
        assert!(
            got.text().contains("<Code>SignatureDoesNotMatch</Code>"),
            "{what}: {}",
            got.text()
        );
    }
    assert_eq!(
        proxy.app().cache().signing_ops(),
        0,
        "nothing was re-signed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_genuine_url_is_a_capability() {
    let origin = s3_origin().await;
    let proxy = proxy(&redirect_config(&origin, ""), false).await;
    origin.put("cap.txt", b"capability");
    let now =
        edgesign::sign::encoding::amz_date(edgesign::clock::unix_secs(edgesign::clock::now()));
    let valid = botocore_presign(
        &origin.endpoint(),
        "cap.txt",
        std::str::from_utf8(&now).unwrap(),
        600,
    );
    let query = valid.split_once('?').unwrap().1;
    // On an org route, with no credentials: the URL itself is the credential.
    let got = get(&format!("{}/org/cap.txt?{query}", proxy.base), &[]).await;
    assert_eq!(got.status, 302);
    assert_eq!(got.header("location"), valid);
    // In stream mode it is fetched as is.
    let streamed = get(&format!("{}/s/cap.txt?{query}", proxy.base), &[]).await;
    assert_eq!(streamed.text(), "capability");
    assert_eq!(proxy.app().cache().signing_ops(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_are_checked_on_stable_links() {
    let origin = s3_origin().await;
    let proxy = proxy(&redirect_config(&origin, ""), false).await;
    let url = format!("{}/org/acme/x.txt", proxy.base);
    let anon = get(&url, &[]).await;
    assert_eq!(anon.status, 401);
    assert_eq!(anon.json()["code"], "unauthorized");
    assert_eq!(
        get(&url, &[("authorization", "Bearer sk_wrong")])
            .await
            .status,
        401
    );
    assert_eq!(
        get(&url, &[("authorization", &format!("Bearer {SK_ACME}"))])
            .await
            .status,
        302
    );
    let other = get(
        &format!("{}/org/globex/x.txt", proxy.base),
        &[("authorization", &format!("Bearer {SK_ACME}"))],
    )
    .await;
    assert_eq!(other.status, 403);
    assert_eq!(other.json()["code"], "forbidden");
    assert_eq!(send("POST", &url, &[]).await.status, 405);
    let raw = get(&format!("{}/files/raw-ü.txt", proxy.base), &[]).await;
    assert_eq!(raw.status, 400, "unencoded bytes are refused, not signed");
    assert_eq!(
        get(&format!("{}/nowhere/x", proxy.base), &[]).await.json()["code"],
        "not_found"
    );
}

fn local_config(root: &std::path::Path) -> String {
    format!(
        "[[origins]]\nname = \"demo\"\nkind = \"local\"\nroot = \"{}\"\nttl = \"1h\"\n[[origins.keys]]\nkey_id = \"k1\"\nsecret = \"0123456789abcdef0123456789\"\n\n[[routes]]\nprefix = \"/d/\"\norigin = \"demo\"\nmode = \"stream\"\naccess = \"public\"\n\n[[routes]]\nprefix = \"/r/\"\norigin = \"demo\"\nmode = \"redirect\"\naccess = \"public\"\n",
        root.display()
    )
}

fn local_tree() -> std::path::PathBuf {
    let base = tempdir("local");
    std::fs::create_dir_all(base.join("root/sub")).unwrap();
    std::fs::create_dir_all(base.join("outside")).unwrap();
    std::fs::write(base.join("root/ok.txt"), "fine").unwrap();
    std::fs::write(base.join("root/sub/inner.txt"), "inner").unwrap();
    std::fs::write(base.join("outside/secret.txt"), "TOP SECRET").unwrap();
    std::os::unix::fs::symlink(base.join("outside/secret.txt"), base.join("root/link.txt"))
        .unwrap();
    std::os::unix::fs::symlink(base.join("outside"), base.join("root/linkdir")).unwrap();
    base
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_origin_never_serves_outside_its_root() {
    let base = local_tree();
    let proxy = proxy(&local_config(&base.join("root")), false).await;
    assert_eq!(
        get(&format!("{}/d/ok.txt", proxy.base), &[]).await.text(),
        "fine"
    );
    assert_eq!(
        get(&format!("{}/d/sub/inner.txt", proxy.base), &[])
            .await
            .text(),
        "inner"
    );
    for escape in [
        "../outside/secret.txt",
        "sub/../../outside/secret.txt",
        "%2e%2e/outside/secret.txt",
        "%2E%2E%2Foutside%2Fsecret.txt",
        "..%2Foutside%2Fsecret.txt",
        "sub%2F..%2F..%2Foutside%2Fsecret.txt",
        "..%5Coutside%5Csecret.txt",
        "sub%5C..%5C..%5Coutside%5Csecret.txt",
        "link.txt",
        "linkdir/secret.txt",
        "%00ok.txt",
        "./ok.txt",
        "sub//inner.txt",
    ] {
        for route in ["d", "r"] {
            let got = get(&format!("{}/{route}/{escape}", proxy.base), &[]).await;
            let final_body = if got.status == 302 {
                get(got.header("location"), &[]).await
            } else {
                got
            };
            assert!(
                !final_body.text().contains("TOP SECRET"),
                "{route}/{escape} escaped the root"
            );
            assert_ne!(
                final_body.status,
                200,
                "{route}/{escape}: {}",
                final_body.text()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_links_need_a_genuine_unexpired_signature() {
    let base = local_tree();
    let proxy = proxy(&local_config(&base.join("root")), false).await;
    let got = get(&format!("{}/r/ok.txt", proxy.base), &[]).await;
    let link = got.header("location").to_owned();
    assert!(
        link.starts_with(&format!("{}/_origin/demo/ok.txt?", proxy.base)),
        "{link}"
    );
    assert_eq!(get(&link, &[]).await.text(), "fine");
    let range = get(&link, &[("range", "bytes=1-2")]).await;
    assert_eq!((range.status.as_u16(), range.text().as_str()), (206, "in"));
    let unsigned = get(&format!("{}/_origin/demo/ok.txt", proxy.base), &[]).await;
    assert_eq!(unsigned.status, 403);
    assert_eq!(unsigned.json()["code"], "invalid_signature");
    let moved = link.replace("/ok.txt?", "/sub/inner.txt?");
    assert_eq!(get(&moved, &[]).await.status, 403);
    let sig = link.rsplit_once("signature=").unwrap().1;
    let forged = link.replace(sig, &sig.chars().rev().collect::<String>());
    assert_eq!(get(&forged, &[]).await.status, 403);
    // An expired but genuine link: signed an hour and a half ago for an hour.
    let app = proxy.app();
    let origin = app.config.origin("demo").unwrap();
    let past = edgesign::clock::unix_secs(edgesign::clock::now()) - 5400;
    let old = origin
        .signer
        .sign(&edgesign::sign::signer::SignSpec {
            raw_key: "ok.txt",
            method: edgesign::sign::Method::Get,
            params: &[],
            signed_at: past,
            lifetime: 3600,
        })
        .unwrap();
    let expired = get(&old.url, &[]).await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.json()["code"], "unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_failures_are_502_and_504_and_a_cut_body_is_an_error() {
    // Refused: a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap();
    drop(closed);
    // Silent: accepts, never answers.
    let silent_addr = silent_origin().await;
    // Cut: promises 1000 bytes, sends 10, closes.
    let cut = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cut_addr = cut.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = cut.accept().await {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\ncontent-type: text/plain\r\n\r\n0123456789").await;
            let _ = s.shutdown().await;
        }
    });
    let origin_block = |name: &str, addr: std::net::SocketAddr| {
        format!(
            "[[origins]]\nname = \"{name}\"\nkind = \"s3\"\nendpoint = \"http://{addr}\"\nregion = \"us-east-1\"\nbucket = \"b\"\npath_style = true\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n[[routes]]\nprefix = \"/{name}/\"\norigin = \"{name}\"\nmode = \"stream\"\naccess = \"public\"\n"
        )
    };
    let cfg = format!(
        "[origin_client]\nconnect_timeout = \"1s\"\nresponse_timeout = \"1s\"\n{}{}{}",
        origin_block("closed", closed_addr),
        origin_block("silent", silent_addr),
        origin_block("cut", cut_addr)
    );
    let proxy = proxy(&cfg, false).await;
    let refused = get(&format!("{}/closed/x", proxy.base), &[]).await;
    assert_eq!(refused.status, 502);
    assert_eq!(refused.json()["code"], "origin_unavailable");
    assert!(
        !refused.text().contains("127.0.0.1"),
        "no detail leaks: {}",
        refused.text()
    );
    let silent = get(&format!("{}/silent/x", proxy.base), &[]).await;
    assert_eq!(silent.status, 504);
    assert_eq!(silent.json()["code"], "origin_timeout");

    let resp = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>()
        .get(format!("{}/cut/x", proxy.base).parse().unwrap())
        .await;
    // Either the response never completes its head, or its body ends in an error: never a
    // clean, short 200.
    if let Ok(resp) = resp {
        assert_eq!(resp.headers()["content-length"], "1000");
        let body = http_body_util::BodyExt::collect(resp.into_body()).await;
        assert!(body.is_err(), "a body cut mid-way must not look complete");
    }
}

/// s3s-fs ignores conditional headers on GET, so this one origin is a stand-in that answers
/// them the way S3 does; it proves the proxy passes the headers on and the statuses back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_headers_reach_the_origin_and_its_answer_comes_back() {
    let addr = serve_fn(|req| {
        let h = &req.headers;
        let status = if h.get("if-none-match").is_some_and(|v| v == "\"v1\"")
            || h.contains_key("if-modified-since")
        {
            304
        } else if h.get("if-match").is_some_and(|v| v != "\"v1\"")
            || h.contains_key("if-unmodified-since")
        {
            412
        } else {
            200
        };
        http::Response::builder()
            .status(status)
            .header("etag", "\"v1\"")
            .header("x-internal", "not passed")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"body",
            )))
            .unwrap()
    })
    .await;
    let cfg = format!(
        "[[origins]]\nname = \"c\"\nkind = \"s3\"\nendpoint = \"http://{addr}\"\nregion = \"us-east-1\"\nbucket = \"b\"\npath_style = true\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n[[routes]]\nprefix = \"/c/\"\norigin = \"c\"\nmode = \"stream\"\naccess = \"public\"\n"
    );
    let proxy = proxy(&cfg, false).await;
    let url = format!("{}/c/x", proxy.base);
    let plain = get(&url, &[]).await;
    assert_eq!(
        (plain.status.as_u16(), plain.text().as_str()),
        (200, "body")
    );
    assert_eq!(plain.header("etag"), "\"v1\"");
    assert_eq!(
        plain.header("x-internal"),
        "",
        "only the documented headers pass"
    );
    assert_eq!(get(&url, &[("if-none-match", "\"v1\"")]).await.status, 304);
    assert_eq!(
        get(
            &url,
            &[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]
        )
        .await
        .status,
        304
    );
    assert_eq!(get(&url, &[("if-match", "\"v0\"")]).await.status, 412);
    assert_eq!(
        get(
            &url,
            &[("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT")]
        )
        .await
        .status,
        412
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_stream_mode_answers_conditionals_itself() {
    let base = local_tree();
    let proxy = proxy(&local_config(&base.join("root")), false).await;
    let url = format!("{}/d/ok.txt", proxy.base);
    let full = get(&url, &[]).await;
    let etag = full.header("etag").to_owned();
    let modified = full.header("last-modified").to_owned();
    assert_eq!(get(&url, &[("if-none-match", &etag)]).await.status, 304);
    assert_eq!(
        get(&url, &[("if-modified-since", &modified)]).await.status,
        304
    );
    assert_eq!(get(&url, &[("if-match", "\"other\"")]).await.status, 412);
    assert_eq!(get(&url, &[("if-match", &etag)]).await.status, 200);
    assert_eq!(get(&url, &[("range", "bytes=9-")]).await.status, 416);
    let head = send("HEAD", &url, &[]).await;
    assert_eq!(
        (
            head.status.as_u16(),
            head.header("content-length"),
            head.body.len()
        ),
        (200, "4", 0)
    );
}

/// Counts TCP connections made to it.
async fn canary() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((_s, _)) = l.accept().await {
            h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (addr, hits)
}

fn proxy_file_url(base: &str, target: &str) -> String {
    format!(
        "{base}/proxy/file?presigned_url={}",
        edgesign::sign::encoding::uri_encode(target.as_bytes(), false)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_file_streams_genuine_urls_and_rescues_expired_ones() {
    let origin = s3_origin().await;
    let proxy = proxy(&redirect_config(&origin, ""), false).await;
    origin.put("doc.pdf", b"the document");
    let now =
        edgesign::sign::encoding::amz_date(edgesign::clock::unix_secs(edgesign::clock::now()));
    let valid = botocore_presign(
        &origin.endpoint(),
        "doc.pdf",
        std::str::from_utf8(&now).unwrap(),
        600,
    );
    for path in ["/proxy/file", "/api/v1/proxy/file"] {
        let url = proxy_file_url(&proxy.base, &valid).replace("/proxy/file", path);
        let got = get(&url, &[]).await;
        assert_eq!(
            (got.status.as_u16(), got.text().as_str()),
            (200, "the document"),
            "{path}"
        );
    }
    let expired = botocore_presign(&origin.endpoint(), "doc.pdf", "20130524T000000Z", 3600);
    let anon = get(&proxy_file_url(&proxy.base, &expired), &[]).await;
    assert_eq!(anon.status, 401);
    assert_eq!(anon.json()["code"], "unauthorized");
    let rescued = get(
        &proxy_file_url(&proxy.base, &expired),
        &[("authorization", &format!("Bearer {SK_ADMIN}"))],
    )
    .await;
    assert_eq!(
        (rescued.status.as_u16(), rescued.text().as_str()),
        (200, "the document")
    );
    let acme = get(
        &proxy_file_url(&proxy.base, &expired),
        &[("authorization", &format!("Bearer {SK_ACME}"))],
    )
    .await;
    assert_eq!(acme.status, 403, "org scope applies to /proxy/file");
    let forged = expired.replace("X-Amz-Expires=3600", "X-Amz-Expires=3599");
    let f = get(
        &proxy_file_url(&proxy.base, &forged),
        &[("authorization", &format!("Bearer {SK_ADMIN}"))],
    )
    .await;
    assert_eq!(f.json()["code"], "invalid_signature");
    let missing = get(&format!("{}/proxy/file", proxy.base), &[]).await;
    assert_eq!(missing.json()["code"], "bad_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_file_never_connects_anywhere_but_a_configured_origin() {
    // The configured origin *is* a canary: any spelling of it that slipped through would
    // connect here. A second canary stands for "anywhere else".
    let (origin_addr, origin_hits) = canary().await;
    let (other_addr, other_hits) = canary().await;
    let port = origin_addr.port();
    let cfg = format!(
        "[[origins]]\nname = \"docs\"\nkind = \"s3\"\nendpoint = \"http://{origin_addr}\"\nregion = \"us-east-1\"\nbucket = \"{BUCKET}\"\npath_style = true\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n\n[auth]\n{}",
        api_keys_toml()
    );
    let proxy = proxy(&cfg, false).await;
    let good = botocore_presign(
        &format!("http://{origin_addr}"),
        "k.txt",
        "20300101T000000Z",
        3600,
    );
    let query = good.split_once('?').unwrap().1;
    let tricks = [
        format!("http://{other_addr}/{BUCKET}/k.txt?{query}"),
        format!("http://evil@127.0.0.1:{port}/{BUCKET}/k.txt?{query}"),
        format!("http://127.0.0.1:{port}@{other_addr}/{BUCKET}/k.txt?{query}"),
        format!("http://2130706433:{port}/{BUCKET}/k.txt?{query}"),
        format!("http://0x7f000001:{port}/{BUCKET}/k.txt?{query}"),
        format!("http://0x7f.0.0.1:{port}/{BUCKET}/k.txt?{query}"),
        format!("http://0177.0.0.1:{port}/{BUCKET}/k.txt?{query}"),
        format!("http://127.1:{port}/{BUCKET}/k.txt?{query}"),
        format!("http://[::ffff:127.0.0.1]:{port}/{BUCKET}/k.txt?{query}"),
        format!("http://[::1]:{port}/{BUCKET}/k.txt?{query}"),
        format!("http://0.0.0.0:{port}/{BUCKET}/k.txt?{query}"),
        format!("http://localhost:{port}/{BUCKET}/k.txt?{query}"),
        format!("https://127.0.0.1:{port}/{BUCKET}/k.txt?{query}"),
        format!("ftp://127.0.0.1:{port}/{BUCKET}/k.txt?{query}"),
        format!("http://%31%32%37.0.0.1:{port}/{BUCKET}/k.txt?{query}"),
        format!("http://127.0.0.1:{port}/other-bucket/k.txt?{query}"),
        format!("http://127.0.0.1:{port}/{BUCKET}"),
        format!("//127.0.0.1:{port}/{BUCKET}/k.txt"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ];
    for t in &tricks {
        let got = get(
            &proxy_file_url(&proxy.base, t),
            &[("authorization", &format!("Bearer {SK_ADMIN}"))],
        )
        .await;
        assert_eq!(got.status, 403, "{t}: {}", got.text());
        assert_eq!(got.json()["code"], "forbidden_origin", "{t}");
    }
    // Double-encoded: the parameter decodes once, to a URL whose host still holds '%'.
    let double = proxy_file_url(
        &proxy.base,
        &format!("http://%2531%2532%2537.0.0.1:{port}/{BUCKET}/k.txt"),
    );
    assert_eq!(get(&double, &[]).await.json()["code"], "forbidden_origin");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(
        origin_hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a trick reached the origin's address"
    );
    assert_eq!(
        other_hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a trick reached another address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_redirect_is_never_followed() {
    let (elsewhere, elsewhere_hits) = canary().await;
    let addr = serve_fn(move |_req| {
        http::Response::builder()
            .status(302)
            .header("location", format!("http://{elsewhere}/steal"))
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap()
    })
    .await;
    let cfg = format!(
        "[[origins]]\nname = \"docs\"\nkind = \"s3\"\nendpoint = \"http://{addr}\"\nregion = \"us-east-1\"\nbucket = \"{BUCKET}\"\npath_style = true\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n[[routes]]\nprefix = \"/s/\"\norigin = \"docs\"\nmode = \"stream\"\naccess = \"public\"\n"
    );
    let proxy = proxy(&cfg, false).await;
    let now =
        edgesign::sign::encoding::amz_date(edgesign::clock::unix_secs(edgesign::clock::now()));
    let valid = botocore_presign(
        &format!("http://{addr}"),
        "k.txt",
        std::str::from_utf8(&now).unwrap(),
        600,
    );
    let got = get(&proxy_file_url(&proxy.base, &valid), &[]).await;
    assert_eq!(got.status, 502);
    assert_eq!(
        got.header("location"),
        "",
        "the origin's redirect is not handed on"
    );
    assert_eq!(
        get(&format!("{}/s/k.txt", proxy.base), &[]).await.status,
        502
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(elsewhere_hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

fn tls_client(
    h2: bool,
) -> hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Empty<bytes::Bytes>,
> {
    use rustls_pki_types::pem::PemObject;
    let ca = rustls_pki_types::CertificateDer::from_pem_file(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/ca.crt"),
    )
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let b = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only();
    let connector = if h2 {
        b.enable_http2().build()
    } else {
        b.enable_http1().build()
    };
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(connector)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_http2_by_alpn_and_http1_and_plain_serves_h2c() {
    let base = local_tree();
    let proxy = proxy(&local_config(&base.join("root")), true).await;
    let https = proxy.running.https_addr.unwrap();
    for (h2, version) in [
        (true, http::Version::HTTP_2),
        (false, http::Version::HTTP_11),
    ] {
        let uri: http::Uri = format!("https://127.0.0.1:{}/d/ok.txt", https.port())
            .parse()
            .unwrap();
        let resp = tls_client(h2).get(uri).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.version(), version);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"fine");
    }
    // h2c with prior knowledge on the plain listener.
    let h2c = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let resp = h2c
        .get(format!("{}/d/ok.txt", proxy.base).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        (resp.status().as_u16(), resp.version()),
        (200, http::Version::HTTP_2)
    );
}

/// Starts the built binary on `config`; returns the child and its plain-HTTP base URL.
fn spawn_edgesign(config: &std::path::Path) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_edgesign"))
        .arg("--config")
        .arg(config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("edgesign listening on ")
        .unwrap_or_else(|| panic!("unexpected: {line:?}"))
        .to_owned();
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_with_one_config_mint_the_same_location() {
    let origin = s3_origin().await;
    let dir = tempdir("fleet");
    let config = dir.join("edgesign.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://edge.example\"\n[cache]\nbucket = \"1h\"\n{}\n[[routes]]\nprefix = \"/files/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"public\"\n",
            s3_origin_toml(&origin, "2h")
        ),
    )
    .unwrap();
    let (mut a, base_a) = spawn_edgesign(&config);
    let (mut b, base_b) = spawn_edgesign(&config);
    assert_ne!(base_a, base_b);
    let mut same = false;
    // Two tries: a bucket could roll between the two requests (once an hour).
    for _ in 0..2 {
        let la = get(&format!("{base_a}/files/shared/%C3%BC.txt"), &[])
            .await
            .header("location")
            .to_owned();
        let lb = get(&format!("{base_b}/files/shared/%C3%BC.txt"), &[])
            .await
            .header("location")
            .to_owned();
        assert!(la.contains("X-Amz-Signature="), "{la}");
        if la == lb {
            same = true;
            break;
        }
    }
    a.kill().unwrap();
    b.kill().unwrap();
    let _ = (a.wait(), b.wait());
    assert!(same, "replicas disagreed on the URL for one bucket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_cloudfront_urls_keep_their_policy_when_rescued() {
    let pem = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/cloudfront_test_ec_key.pem");
    let cfg = format!(
        "[[origins]]\nname = \"cdn\"\nkind = \"cloudfront\"\ndomain = \"d111111abcdef8.cloudfront.net\"\nttl = \"1h\"\n[[origins.keys]]\nkey_pair_id = \"K2JCJMDEHXQW5F\"\nprivate_key_file = \"{}\"\n[[routes]]\nprefix = \"/cf/\"\norigin = \"cdn\"\nmode = \"redirect\"\naccess = \"org\"\n[auth]\n{}",
        pem.display(),
        api_keys_toml()
    );
    let proxy = proxy(&cfg, false).await;
    let app = proxy.app();
    let origin = app.config.origin("cdn").unwrap();
    let edgesign::sign::signer::Kind::CloudFront(cf) = &origin.signer.kind else {
        unreachable!()
    };
    let policy = edgesign::sign::cloudfront::custom_policy(
        "https://d111111abcdef8.cloudfront.net/acme/videos/*",
        1_600_000_000,
        Some("192.0.2.0/24"),
        Some(1_500_000_000),
    );
    let stale = edgesign::sign::cloudfront::sign(
        "https://d111111abcdef8.cloudfront.net/acme/videos/a.mp4?quality=hd",
        &edgesign::sign::cloudfront::PolicyKind::Custom(policy),
        &cf.keys[0].private,
        "K2JCJMDEHXQW5F",
        cf.hash,
    )
    .unwrap();
    let path = format!("/cf/{}", stale.split_once(".net/").unwrap().1);
    let anon = get(&format!("{}{path}", proxy.base), &[]).await;
    assert_eq!(anon.status, 401);
    assert_eq!(
        anon.json()["code"],
        "unauthorized",
        "a CloudFront client gets JSON, not S3 XML"
    );
    let ok = get(
        &format!("{}{path}", proxy.base),
        &[("authorization", &format!("Bearer {SK_ACME}"))],
    )
    .await;
    assert_eq!(ok.status, 302, "{}", ok.text());
    let fresh = ok.header("location");
    assert!(
        fresh.starts_with(
            "https://d111111abcdef8.cloudfront.net/acme/videos/a.mp4?quality=hd&Policy="
        ),
        "{fresh}"
    );
    let u = edgesign::sign::url::RawUrl::parse(fresh).unwrap();
    let verified = origin
        .signer
        .verify(&u, edgesign::sign::Method::Get, |_| None)
        .expect("fresh URL is genuine");
    assert!(verified.expires_at > edgesign::clock::unix_secs(edgesign::clock::now()));
    let parsed = edgesign::sign::cloudfront::parse(u.query).unwrap();
    let (_, c) = edgesign::sign::cloudfront::parse_policy(&parsed.policy.unwrap()).unwrap();
    assert_eq!(
        c.resource,
        "https://d111111abcdef8.cloudfront.net/acme/videos/*"
    );
    assert_eq!(c.source_ip.as_deref(), Some("192.0.2.0/24"));
    assert_eq!(c.date_greater_than, Some(1_500_000_000));
    // A policy covering the whole distribution is re-signed only for an administrator.
    let everything = edgesign::sign::cloudfront::custom_policy(
        "https://d111111abcdef8.cloudfront.net/*",
        1_600_000_000,
        None,
        None,
    );
    let wide = edgesign::sign::cloudfront::sign(
        "https://d111111abcdef8.cloudfront.net/acme/videos/a.mp4",
        &edgesign::sign::cloudfront::PolicyKind::Custom(everything),
        &cf.keys[0].private,
        "K2JCJMDEHXQW5F",
        cf.hash,
    )
    .unwrap();
    let wide_path = format!("/cf/{}", wide.split_once(".net/").unwrap().1);
    let scoped = get(
        &format!("{}{wide_path}", proxy.base),
        &[("authorization", &format!("Bearer {SK_ACME}"))],
    )
    .await;
    assert_eq!(
        scoped.status, 403,
        "an org caller must not get a capability for every org"
    );
    let admin = get(
        &format!("{}{wide_path}", proxy.base),
        &[("authorization", &format!("Bearer {SK_ADMIN}"))],
    )
    .await;
    assert_eq!(admin.status, 302);
    // The wildcard covers other query strings (as at CloudFront), but not other paths.
    let forged = path.replace("/videos/", "/audio/");
    let f = get(
        &format!("{}{forged}", proxy.base),
        &[("authorization", &format!("Bearer {SK_ADMIN}"))],
    )
    .await;
    assert_eq!(f.json()["code"], "invalid_signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloudfront_ip_condition_is_checked_against_the_client_when_edgesign_fetches() {
    // CloudFront cannot run here: a stand-in distribution serves the bytes and counts visits.
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    let addr = serve_fn(move |_req| {
        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        http::Response::new(http_body_util::Full::new(bytes::Bytes::from_static(
            b"from the distribution",
        )))
    })
    .await;
    let pem = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/cloudfront_test_ec_key.pem");
    let cfg = format!(
        "[[origins]]\nname = \"cdn\"\nkind = \"cloudfront\"\ndomain = \"d111111abcdef8.cloudfront.net\"\nendpoint = \"http://{addr}\"\nttl = \"1h\"\n[[origins.keys]]\nkey_pair_id = \"K2JCJMDEHXQW5F\"\nprivate_key_file = \"{}\"\n[[routes]]\nprefix = \"/cfs/\"\norigin = \"cdn\"\nmode = \"stream\"\naccess = \"public\"\n[[routes]]\nprefix = \"/cf/\"\norigin = \"cdn\"\nmode = \"redirect\"\naccess = \"public\"\n",
        pem.display()
    );
    let proxy = proxy(&cfg, false).await;
    let app = proxy.app();
    let edgesign::sign::signer::Kind::CloudFront(cf) =
        &app.config.origin("cdn").unwrap().signer.kind
    else {
        unreachable!()
    };
    let url_for = |range: &str| {
        let now = edgesign::clock::unix_secs(edgesign::clock::now());
        // The URL names the distribution; edgesign fetches it from the endpoint.
        let object = "https://d111111abcdef8.cloudfront.net/v/a.txt".to_owned();
        let policy =
            edgesign::sign::cloudfront::custom_policy(&object, now + 600, Some(range), None);
        edgesign::sign::cloudfront::sign(
            &object,
            &edgesign::sign::cloudfront::PolicyKind::Custom(policy),
            &cf.keys[0].private,
            "K2JCJMDEHXQW5F",
            cf.hash,
        )
        .unwrap()
    };
    let visits = || hits.load(std::sync::atomic::Ordering::SeqCst);

    // For another network: edgesign will not fetch it for this client (127.0.0.1), by route
    // or by /proxy/file, and the distribution never hears of it.
    let elsewhere = url_for("192.0.2.0/24");
    let query = elsewhere.split_once('?').unwrap().1;
    let streamed = get(&format!("{}/cfs/v/a.txt?{query}", proxy.base), &[]).await;
    assert_eq!(streamed.status, 403, "{}", streamed.text());
    assert_eq!(streamed.json()["code"], "forbidden");
    assert_eq!(
        get(&proxy_file_url(&proxy.base, &elsewhere), &[])
            .await
            .status,
        403
    );
    assert_eq!(visits(), 0);
    // Redirected, the client meets the distribution itself, which checks its address.
    let redirected = get(&format!("{}/cf/v/a.txt?{query}", proxy.base), &[]).await;
    assert_eq!(redirected.status, 302);
    assert_eq!(redirected.header("location"), elsewhere);

    // For the client's own network: streamed.
    let here = url_for("127.0.0.0/8");
    let query = here.split_once('?').unwrap().1;
    let streamed = get(&format!("{}/cfs/v/a.txt?{query}", proxy.base), &[]).await;
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    assert_eq!(streamed.text(), "from the distribution");
    assert_eq!(visits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_bucket_mints_a_new_url_without_anyone_waiting_for_it() {
    // The service reads a clock the test moves: no sleeping to cross a bucket.
    let origin = s3_origin().await;
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npublic_url = \"http://edge.example\"\n[cache]\nbucket = \"15m\"\n{}[[routes]]\nprefix = \"/files/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"public\"\n",
        s3_origin_toml(&origin, "1h")
    );
    let config =
        edgesign::config::Config::parse(&text, std::path::Path::new("."), &|_| None).unwrap();
    let now = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let read = now.clone();
    let app = edgesign::app::App::with_clock(
        config,
        std::sync::Arc::default(),
        edgesign::clock::Clock::from_fn(move || read.load(std::sync::atomic::Ordering::SeqCst)),
    )
    .unwrap();
    let peer: std::net::SocketAddr = "127.0.0.1:5555".parse().unwrap();
    let ask = |at: u64| {
        now.store(at, std::sync::atomic::Ordering::SeqCst);
        let req = http::Request::get("/files/a.txt")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let app = app.clone();
        async move {
            let resp = app.handle(req, peer).await;
            (
                resp.headers()["location"].to_str().unwrap().to_owned(),
                resp.headers()["cache-control"].to_str().unwrap().to_owned(),
            )
        }
    };
    // 2027-01-15T08:00:00Z, the start of a 15-minute bucket.
    let bucket = 1_800_000_000;
    let (first, age) = ask(bucket + 10).await;
    assert_eq!(age, "private, max-age=890");
    assert!(first.contains("X-Amz-Date=20270115T080000Z"), "{first}");
    let (again, age) = ask(bucket + 100).await;
    assert_eq!(
        (again.as_str(), age.as_str()),
        (first.as_str(), "private, max-age=800")
    );
    assert_eq!(app.cache().signing_ops(), 1, "the second was a cache hit");
    let (next, age) = ask(bucket + 901).await;
    assert_ne!(next, first, "a new bucket is a new URL");
    assert!(next.contains("X-Amz-Date=20270115T081500Z"), "{next}");
    assert_eq!(age, "private, max-age=899");
    assert_eq!(app.cache().signing_ops(), 2);
}
