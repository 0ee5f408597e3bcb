//! Host routes configured as a user taking over a store's or a CDN's name would: DNS (here,
//! the `Host` header of a client that connects to edgesign) sends edgesign the URLs clients
//! already hold, and edgesign serves, rescues or refuses them exactly. Against real parts:
//! s3s-fs path-style and virtual-host style (it verifies presigned signatures itself), URLs
//! minted by botocore, and a CloudFront stand-in that verifies signatures against
//! `https://<domain>/…` with the public key, as CloudFront does.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use support::*;

/// Sends `GET http://<edge><path_and_query>` with `Host: host` (a client whose DNS points
/// the store's name at edgesign).
async fn to_edge(edge: &Proxy, host: &str, path_and_query: &str, auth: Option<&str>) -> Got {
    let url = format!("{}{path_and_query}", edge.base);
    let bearer = auth.map(|k| format!("Bearer {k}"));
    let mut headers = vec![("host", host)];
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    get(&url, &headers).await
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").unwrap().1;
    &rest[..rest.find('/').unwrap()]
}

/// A stale URL: minted long ago, for a minute.
const LONG_AGO: &str = "20200101T000000Z";

fn now_amz() -> String {
    let now = edgesign::clock::unix_secs(edgesign::clock::now());
    String::from_utf8(edgesign::sign::encoding::amz_date(now).to_vec()).unwrap()
}

/// Botocore re-derives the signature of a URL that reached the origin, from the URL alone
/// (its own `X-Amz-Date` and `X-Amz-Expires`): the re-signed URL is exactly what AWS's SDK
/// would sign for that host, raw path and parameters.
fn assert_botocore_rederives(seen: &str) {
    let at = query_param(seen, "X-Amz-Date").unwrap();
    let expires: u64 = query_param(seen, "X-Amz-Expires").unwrap().parse().unwrap();
    let again = botocore_sign(seen, at, expires);
    assert_eq!(
        query_param(&again, "X-Amz-Signature"),
        query_param(seen, "X-Amz-Signature"),
        "botocore signs {seen} differently: {again}"
    );
}

fn s3_host_route_config(endpoint: &str, bucket_path_style: bool, host: &str) -> String {
    format!(
        "[[origins]]\nname = \"store\"\nkind = \"s3\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\nbucket = \"{BUCKET}\"\npath_style = {bucket_path_style}\nttl = \"1h\"\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n\n[[routes]]\nhost = \"{host}\"\nprefix = \"/\"\norigin = \"store\"\nmode = \"stream\"\naccess = \"org\"\n\n[auth]\n{}",
        api_keys_toml()
    )
}

/// The four cases of the table of docs/http.md for one botocore URL scheme, on a host route.
async fn rescue_like_the_store(
    proxy: &Proxy,
    origin: &S3Origin,
    mint: impl Fn(&str, &str, u64) -> String,
) {
    const KEYS: [&str; 5] = [
        "acme/ünïcödé ✓.txt",
        "acme/a+b=c.txt",
        "acme/with space.txt",
        "acme/literal%2B.txt",
        "acme/x//y/./z/../w.txt",
    ];
    std::fs::create_dir_all(origin.root.join(BUCKET).join("acme/x/y/z")).unwrap();
    for key in KEYS {
        let on_disk = if key.contains("/./") {
            "acme/x/y/w.txt"
        } else {
            key
        };
        origin.put(on_disk, format!("content of {key}").as_bytes());
        // Valid: served without credentials, the URL being the capability.
        let valid = mint(key, &now_amz(), 3600);
        let got = to_edge(proxy, host_of(&valid), path_and_query(&valid), None).await;
        assert_eq!(got.status, 200, "{key} valid: {}", got.text());
        assert_eq!(got.text(), format!("content of {key}"));
        assert_eq!(
            origin.seen().last().unwrap(),
            &valid,
            "{key}: sent on as it was"
        );

        // Expired, with credentials: re-signed exactly and streamed.
        let stale = mint(key, LONG_AGO, 60);
        let got = to_edge(
            proxy,
            host_of(&stale),
            path_and_query(&stale),
            Some(SK_ACME),
        )
        .await;
        assert_eq!(got.status, 200, "{key} rescued: {}", got.text());
        assert_eq!(got.text(), format!("content of {key}"));
        let reached = origin.seen().last().unwrap().clone();
        assert_eq!(
            reached.split_once('?').unwrap().0,
            stale.split_once('?').unwrap().0,
            "{key}: the same host and raw path"
        );
        assert_ne!(query_param(&reached, "X-Amz-Date"), Some(LONG_AGO));
        assert_botocore_rederives(&reached);

        // Expired, without credentials: S3's own answer, and the origin hears nothing.
        let before = origin.seen().len();
        let got = to_edge(proxy, host_of(&stale), path_and_query(&stale), None).await;
        assert_eq!(got.status, 403, "{key} anonymous");
        assert!(
            got.text()
                .contains("<Code>AccessDenied</Code><Message>Request has expired</Message>"),
            "{}",
            got.text()
        );
        // Tampered: refused, never re-signed, never sent.
        let sig = query_param(&valid, "X-Amz-Signature").unwrap();
        let flipped = format!(
            "{}{}",
            if sig.starts_with('0') { '1' } else { '0' },
            &sig[1..]
        );
        let forged = valid.replace(sig, &flipped);
        let got = to_edge(
            proxy,
            host_of(&forged),
            path_and_query(&forged),
            Some(SK_ACME),
        )
        .await;
        assert_eq!(got.status, 403, "{key} forged");
        assert!(got.text().contains("<Code>SignatureDoesNotMatch</Code>"));
        assert_eq!(
            origin.seen().len(),
            before,
            "{key}: nothing reached the origin"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_route_takes_over_a_path_style_store() {
    let origin = s3_origin().await;
    let host = origin.addr.to_string();
    let proxy = proxy(
        &s3_host_route_config(&origin.endpoint(), true, &host),
        false,
    )
    .await;
    let endpoint = origin.endpoint();
    rescue_like_the_store(&proxy, &origin, |key, at, expires| {
        botocore_presign_with(&endpoint, key, at, expires, "path", None)
    })
    .await;

    // A stable link on that host names the object its path names at the store.
    origin.put("acme/doc.txt", b"doc");
    let got = to_edge(
        &proxy,
        &host,
        &format!("/{BUCKET}/acme/doc.txt"),
        Some(SK_ACME),
    )
    .await;
    assert_eq!(got.text(), "doc");
    assert_eq!(
        to_edge(&proxy, &host, "/acme/doc.txt", Some(SK_ACME))
            .await
            .status,
        404
    );

    // A non-ASCII file name in a signed response-content-disposition reaches the client.
    let disposition = "attachment; filename=\"naïve résumé.txt\"";
    let stale = botocore_presign_with(
        &endpoint,
        "acme/doc.txt",
        LONG_AGO,
        60,
        "path",
        Some(disposition),
    );
    let got = to_edge(&proxy, &host, path_and_query(&stale), Some(SK_ACME)).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(
        got.headers["content-disposition"].as_bytes(),
        disposition.as_bytes()
    );
    assert_botocore_rederives(origin.seen().last().unwrap());

    // The AWS JS SDK's default parameters are kept, in place, when re-signed.
    let js = botocore_sign(
        &format!(
            "{endpoint}/{BUCKET}/acme/doc.txt?x-id=GetObject&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD&x-amz-checksum-mode=ENABLED"
        ),
        LONG_AGO,
        60,
    );
    let got = to_edge(&proxy, &host, path_and_query(&js), Some(SK_ACME)).await;
    assert_eq!(got.status, 200, "{}", got.text());
    let reached = origin.seen().last().unwrap().clone();
    for p in [
        "x-id=GetObject",
        "X-Amz-Content-Sha256=UNSIGNED-PAYLOAD",
        "x-amz-checksum-mode=ENABLED",
    ] {
        assert!(reached.contains(p), "{p} lost: {reached}");
    }
    assert_botocore_rederives(&reached);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_route_takes_over_a_virtual_host_store() {
    let origin = s3_origin_virtual_host().await;
    let endpoint = format!("http://localhost:{}", origin.addr.port());
    let host = format!("{BUCKET}.localhost:{}", origin.addr.port());
    let proxy = proxy(&s3_host_route_config(&endpoint, false, &host), false).await;
    rescue_like_the_store(&proxy, &origin, |key, at, expires| {
        let url = botocore_presign_with(&endpoint, key, at, expires, "virtual", None);
        assert!(url.starts_with(&format!("http://{host}/")), "{url}");
        url
    })
    .await;
    origin.put("acme/doc.txt", b"doc");
    let got = to_edge(&proxy, &host, "/acme/doc.txt", Some(SK_ACME)).await;
    assert_eq!(
        got.text(),
        "doc",
        "a stable link is the object its path names"
    );
}

/// The stand-in distribution: it verifies every signed URL against `https://<Host><path>`
/// with the key pair's public key (canned and custom policies, `DateLessThan`,
/// `DateGreaterThan`, `IpAddress`), as CloudFront does, and records what reached it.
#[derive(Clone, Default)]
struct Distribution {
    seen: Arc<Mutex<Vec<String>>>,
}

impl Distribution {
    fn answer(&self, req: &http::request::Parts) -> http::Response<http_body_util::Full<Bytes>> {
        let host = req.headers["host"].to_str().unwrap().to_owned();
        let url = format!("https://{host}{}", req.uri.path_and_query().unwrap());
        self.seen.lock().unwrap().push(url.clone());
        let status = match verify_like_cloudfront(&url) {
            Ok(()) => 200,
            Err(why) => {
                eprintln!("stand-in refused {url}: {why}");
                403
            }
        };
        let mut resp = http::Response::new(http_body_util::Full::new(Bytes::from(format!(
            "object at {}",
            req.uri.path()
        ))));
        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap();
        resp
    }
}

fn verify_like_cloudfront(url: &str) -> Result<(), String> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    use p256::pkcs8::DecodePublicKey;
    use sha2::Digest;
    let (base, query) = url.split_once('?').ok_or("unsigned")?;
    let mut kept = Vec::new();
    let (mut expires, mut policy, mut signature, mut sha256) = (None, None, None, false);
    for p in query.split('&') {
        match p.split_once('=').unwrap_or((p, "")) {
            ("Expires", v) => expires = Some(v.to_owned()),
            ("Policy", v) => policy = Some(v.to_owned()),
            ("Signature", v) => signature = Some(v.to_owned()),
            ("Key-Pair-Id", v) => {
                if v != "K2JCJMDEHXQW5F" {
                    return Err("unknown key pair".into());
                }
            }
            ("Hash-Algorithm", v) => sha256 = v == "SHA256",
            _ => kept.push(p),
        }
    }
    let resource = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let b64 = |s: &str| edgesign::sign::encoding::cloudfront_b64_decode(s).ok_or("bad base64");
    let statement = match (&policy, &expires) {
        (Some(p), _) => String::from_utf8(b64(p)?).map_err(|e| e.to_string())?,
        (None, Some(e)) => format!(
            r#"{{"Statement":[{{"Resource":"{resource}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{e}}}}}}}]}}"#
        ),
        _ => return Err("no policy".into()),
    };
    let digest = if sha256 {
        sha2::Sha256::digest(statement.as_bytes()).to_vec()
    } else {
        sha1::Sha1::digest(statement.as_bytes()).to_vec()
    };
    let pem = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors/cloudfront_test_ec_key.pub.pem"),
    )
    .unwrap();
    let key = p256::ecdsa::VerifyingKey::from_public_key_pem(&pem).unwrap();
    let sig = p256::ecdsa::Signature::from_der(&b64(signature.as_deref().ok_or("unsigned")?)?)
        .map_err(|e| e.to_string())?;
    key.verify_prehash(&digest, &sig)
        .map_err(|_| "signature does not verify")?;
    // The policy's conditions, as CloudFront applies them.
    let json: serde_json::Value = serde_json::from_str(&statement).map_err(|e| e.to_string())?;
    let st = &json["Statement"][0];
    let pattern = st["Resource"].as_str().ok_or("no Resource")?;
    if !wildcard_match(pattern, &resource) {
        return Err(format!("{resource} is not covered by {pattern}"));
    }
    let now = edgesign::clock::unix_secs(edgesign::clock::now());
    let c = &st["Condition"];
    if c["DateLessThan"]["AWS:EpochTime"]
        .as_u64()
        .ok_or("no DateLessThan")?
        <= now
    {
        return Err("expired".into());
    }
    if c["DateGreaterThan"]["AWS:EpochTime"]
        .as_u64()
        .is_some_and(|t| t > now)
    {
        return Err("not yet valid".into());
    }
    if let Some(ip) = c["IpAddress"]["AWS:SourceIp"].as_str() {
        let net: ipnet::IpNet = ip.parse().map_err(|_| "bad IpAddress")?;
        if !net.contains(&"127.0.0.1".parse::<std::net::IpAddr>().unwrap()) {
            return Err("client address not admitted".into());
        }
    }
    Ok(())
}

/// CloudFront's `*` (any run) and `?` (one character).
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && (p[i] == b'?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == b'*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|b| *b == b'*')
}

const DOMAIN: &str = "d111111abcdef8.cloudfront.net";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_route_takes_over_a_cloudfront_domain_fetched_from_its_endpoint() {
    let distribution = Distribution::default();
    let d = distribution.clone();
    let addr = serve_fn(move |req| d.answer(req)).await;
    let pem = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/cloudfront_test_ec_key.pem");
    let cfg = format!(
        "[[origins]]\nname = \"cdn\"\nkind = \"cloudfront\"\ndomain = \"{DOMAIN}\"\nendpoint = \"http://{addr}\"\nttl = \"1h\"\n[[origins.keys]]\nkey_pair_id = \"K2JCJMDEHXQW5F\"\nprivate_key_file = \"{}\"\n\n[[routes]]\nhost = \"{DOMAIN}\"\nprefix = \"/\"\norigin = \"cdn\"\nmode = \"stream\"\naccess = \"org\"\n[[routes]]\nhost = \"{DOMAIN}\"\nprefix = \"/acme/grace/\"\norigin = \"cdn\"\nmode = \"stream\"\naccess = \"org\"\nstale_grace = \"36500d\"\n[[routes]]\nhost = \"{DOMAIN}\"\nprefix = \"/public/\"\norigin = \"cdn\"\nmode = \"stream\"\naccess = \"public\"\n[[routes]]\nprefix = \"/cf/\"\norigin = \"cdn\"\nmode = \"redirect\"\naccess = \"org\"\n\n[auth]\n{}",
        pem.display(),
        api_keys_toml()
    );
    let proxy = proxy(&cfg, false).await;
    let app = proxy.app();
    let edgesign::sign::signer::Kind::CloudFront(cf) =
        &app.config.origin("cdn").unwrap().signer.kind
    else {
        unreachable!()
    };
    let sign = |url: &str, policy: edgesign::sign::cloudfront::PolicyKind| {
        edgesign::sign::cloudfront::sign(
            url,
            &policy,
            &cf.keys[0].private,
            "K2JCJMDEHXQW5F",
            cf.hash,
        )
        .unwrap()
    };
    let now = edgesign::clock::unix_secs(edgesign::clock::now());
    let canned = |url: &str, expires: u64| {
        sign(
            url,
            edgesign::sign::cloudfront::PolicyKind::Canned { expires },
        )
    };
    let seen = || distribution.seen.lock().unwrap().clone();

    // Valid: served without credentials; the distribution verified it as https://<domain>.
    let valid = canned(&format!("https://{DOMAIN}/acme/a.txt?v=1"), now + 600);
    let got = to_edge(&proxy, DOMAIN, path_and_query(&valid), None).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.text(), "object at /acme/a.txt");
    assert_eq!(seen().last().unwrap(), &valid);

    // Expired: re-signed for the same URL after re-authorizing; anonymous callers hear 401.
    let stale = canned(&format!("https://{DOMAIN}/acme/a.txt?v=1"), 1_600_000_000);
    let got = to_edge(&proxy, DOMAIN, path_and_query(&stale), None).await;
    assert_eq!(got.status, 401);
    assert_eq!(got.json()["code"], "unauthorized");
    let got = to_edge(&proxy, DOMAIN, path_and_query(&stale), Some(SK_ACME)).await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert!(
        seen()
            .last()
            .unwrap()
            .starts_with(&format!("https://{DOMAIN}/acme/a.txt?v=1&Expires="))
    );

    // Tampered: refused; the distribution hears nothing.
    let before = seen().len();
    let forged = stale.replace("/acme/a.txt", "/acme/b.txt");
    let got = to_edge(&proxy, DOMAIN, path_and_query(&forged), Some(SK_ADMIN)).await;
    assert_eq!(got.status, 403);
    assert_eq!(got.json()["code"], "invalid_signature");
    assert_eq!(seen().len(), before);

    // Custom policies, wildcard and DateGreaterThan, with and without IpAddress, re-signed
    // with every condition kept.
    for ip in [None, Some("127.0.0.0/8")] {
        let policy = edgesign::sign::cloudfront::custom_policy(
            &format!("https://{DOMAIN}/acme/videos/*"),
            1_600_000_000,
            ip,
            Some(1_500_000_000),
        );
        let stale = sign(
            &format!("https://{DOMAIN}/acme/videos/ep1/seg-7.ts"),
            edgesign::sign::cloudfront::PolicyKind::Custom(policy),
        );
        let got = to_edge(&proxy, DOMAIN, path_and_query(&stale), None).await;
        assert_eq!(got.status, 401, "{ip:?}");
        let got = to_edge(&proxy, DOMAIN, path_and_query(&stale), Some(SK_ACME)).await;
        assert_eq!(got.status, 200, "{ip:?}: {}", got.text());
        let reached = seen().last().unwrap().clone();
        let policy = query_param(&reached, "Policy").unwrap();
        let text =
            String::from_utf8(edgesign::sign::encoding::cloudfront_b64_decode(policy).unwrap())
                .unwrap();
        let (_, c) = edgesign::sign::cloudfront::parse_policy(text.as_bytes()).unwrap();
        assert_eq!(c.resource, format!("https://{DOMAIN}/acme/videos/*"));
        assert_eq!(c.date_greater_than, Some(1_500_000_000));
        assert_eq!(c.source_ip.as_deref(), ip);
        assert!(c.date_less_than > now);
    }

    // stale_grace: re-signed without credentials inside the window.
    let graced = canned(&format!("https://{DOMAIN}/acme/grace/a.txt"), now - 60);
    let got = to_edge(&proxy, DOMAIN, path_and_query(&graced), None).await;
    assert_eq!(got.status, 200, "{}", got.text());

    // A host route narrowed to /public/ serves only that part of the distribution: no dot
    // segment leads out of it, and no wildcard beyond it is renewed for anonymous callers.
    let got = to_edge(&proxy, DOMAIN, "/public/a.txt", None).await;
    assert_eq!(got.text(), "object at /public/a.txt");
    for path in [
        "/public/../acme/a.txt",
        "/public/%2e%2e/acme/a.txt",
        "/public//../acme/a.txt",
    ] {
        let got = to_edge(&proxy, DOMAIN, path, None).await;
        assert_eq!(got.status, 400, "{path}: {}", got.text());
    }
    let everything = edgesign::sign::cloudfront::custom_policy(
        &format!("https://{DOMAIN}/*"),
        1_600_000_000,
        None,
        None,
    );
    let wide = sign(
        &format!("https://{DOMAIN}/public/a.txt"),
        edgesign::sign::cloudfront::PolicyKind::Custom(everything),
    );
    let got = to_edge(&proxy, DOMAIN, path_and_query(&wide), None).await;
    assert_eq!(
        got.status, 401,
        "a whole-distribution policy renewed through /public/"
    );

    // Every URL names the domain, the endpoint only where edgesign connects: a redirect
    // route's Location is https://<domain>/….
    let got = get(
        &format!("{}/cf/acme/a.txt", proxy.base),
        &[("authorization", &format!("Bearer {SK_ACME}"))],
    )
    .await;
    assert_eq!(got.status, 302);
    assert!(
        got.header("location")
            .starts_with(&format!("https://{DOMAIN}/acme/a.txt?Expires=")),
        "{}",
        got.header("location")
    );
}
