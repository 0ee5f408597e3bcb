//! What an operator meets first, driven as an operator would: origin failures logged with
//! their cause (DNS, refused, TLS, the origin's own error code), a store behind a private CA
//! (`origin_client.ca_file`), secrets from files re-read on SIGHUP, `check`'s options and
//! warnings, the command line's papercuts, and metrics that exist before their first event.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use support::*;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_edgesign"))
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    use std::io::Write;
    let mut child = bin()
        .args(args)
        .env_remove("EDGESIGN_CONFIG")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// An HTTPS server with `certs/dev.crt` (issued by `certs/ca.crt`, a private CA) that
/// answers every request `200 tls-ok`.
async fn private_ca_origin() -> std::net::SocketAddr {
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<_> =
        rustls_pki_types::CertificateDer::pem_file_iter(repo().join("certs/dev.crt"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(repo().join("certs/dev.key")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(sock).await else {
                    return;
                };
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(Bytes::from_static(b"tls-ok")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    addr
}

fn stream_origin(name: &str, endpoint: &str) -> String {
    format!(
        "[[origins]]\nname = \"{name}\"\nkind = \"s3\"\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\nbucket = \"{BUCKET}\"\npath_style = true\nttl = \"1h\"\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n[[routes]]\nprefix = \"/{name}/\"\norigin = \"{name}\"\nmode = \"stream\"\naccess = \"public\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_failures_are_logged_with_their_cause_and_a_private_ca_can_be_trusted() {
    let tls = private_ca_origin().await;
    let store = s3_origin().await;
    store.put("acme/x.txt", b"x");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    // `denied` signs with a secret the store does not know: it answers 403 with its code.
    let denied =
        stream_origin("denied", &store.endpoint()).replace(SK, "not-the-secret-0123456789abcdef");
    let body = format!(
        "{}{}{}{denied}",
        stream_origin("private", &format!("https://localhost:{}", tls.port())),
        stream_origin("nodns", "http://no-such-host.invalid:9000"),
        stream_origin("refused", &format!("http://{closed}")),
    );
    let edge = spawn_with("origin-causes", &body, &[]);
    let base = edge.base.clone();
    for (path, status, log) in [
        ("/private/acme/x.txt", 502, "TLS handshake failed"),
        (
            "/nodns/acme/x.txt",
            502,
            r#"DNS lookup of \"no-such-host.invalid\" failed"#,
        ),
        ("/refused/acme/x.txt", 502, "Connection refused"),
        ("/denied/acme/x.txt", 502, "(SignatureDoesNotMatch"),
    ] {
        let got = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(got.status, status, "{path}: {}", got.text());
        // The client hears the code, never the cause.
        assert!(!got.text().contains("localhost") && !got.text().contains("Signature"));
        assert!(
            edge.wait_for_log(log, Duration::from_secs(5)).await,
            "{path}: no {log:?} in the log:\n{}",
            edge.log()
        );
    }
    let text = get(&format!("{base}/metrics"), &[]).await.text();
    let metrics = parse_metrics(&text);
    for (origin, kind) in [
        ("private", "tls"),
        ("nodns", "dns"),
        ("refused", "refused"),
        ("denied", "status"),
    ] {
        let series = format!("edgesign_origin_errors_total{{origin=\"{origin}\",kind=\"{kind}\"}}");
        assert_eq!(metrics.get(&series), Some(&1.0), "{series}\n{text}");
    }
    drop(edge);

    // The same store, its CA trusted through origin_client.ca_file: served.
    let trusted = format!(
        "{}[origin_client]\nca_file = \"{}\"\n",
        stream_origin("private", &format!("https://localhost:{}", tls.port())),
        repo().join("certs/ca.crt").display()
    );
    let edge = spawn_with("private-ca", &trusted, &[]);
    let got = get(&format!("{}/private/acme/x.txt", edge.base), &[]).await;
    assert_eq!((got.status.as_u16(), got.text()), (200, "tls-ok".into()));

    // web_roots = false with ca_file trusts that CA alone; without ca_file it is refused.
    let lonely = format!(
        "{}[origin_client]\nweb_roots = false\n",
        stream_origin("private", "https://localhost:1")
    );
    let dir = tempdir("web-roots");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"127.0.0.1:0\"\n{lonely}"),
    )
    .unwrap();
    let out = run(&["check", "--config", config.to_str().unwrap()], &[], None);
    assert_eq!(out.code, 64, "{}", out.stderr);
    assert!(
        out.stderr.contains("origin_client.web_roots"),
        "{}",
        out.stderr
    );
    let not_a_ca = dir.join("not-a-ca.pem");
    std::fs::write(&not_a_ca, "no certificate here").unwrap();
    let bad_ca = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n{}[origin_client]\nca_file = \"{}\"\n",
        stream_origin("private", "https://localhost:1"),
        not_a_ca.display()
    );
    std::fs::write(&config, bad_ca).unwrap();
    let out = run(&["check", "--config", config.to_str().unwrap()], &[], None);
    assert_eq!(out.code, 64, "{}", out.stderr);
    assert!(
        out.stderr.contains("origin_client.ca_file"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_files_are_read_again_on_sighup() {
    let dir = tempdir("secret-file");
    let secret = dir.join("jwt.secret");
    let first = "first-hs256-secret-0123456789abcdef-0123";
    let second = "second-hs256-secret-0123456789abcdef-012";
    // Trailing newline: files are trimmed, as `echo … > file` writes them.
    std::fs::write(&secret, format!("{first}\n")).unwrap();
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("acme")).unwrap();
    std::fs::write(root.join("acme/doc.txt"), "doc").unwrap();
    let key = dir.join("local.key");
    std::fs::write(&key, "a-local-origin-key-from-a-file-0123456789").unwrap();
    let body = format!(
        "public_url = \"http://edge.example\"\n[[origins]]\nname = \"demo\"\nkind = \"local\"\nroot = \"{}\"\nttl = \"1h\"\n[[origins.keys]]\nkey_id = \"k1\"\nsecret_file = \"{}\"\n[[routes]]\nprefix = \"/d/\"\norigin = \"demo\"\nmode = \"redirect\"\naccess = \"org\"\n[auth]\njwt_hs256_secret_file = \"{}\"\n",
        root.display(),
        key.display(),
        secret.display()
    );
    let edge = spawn_with("secret-file", &body, &[]);
    let now = edgesign::clock::unix_secs(edgesign::clock::now());
    let token = |s: &str| {
        format!(
            "Bearer {}",
            jwt_hs256(
                s.as_bytes(),
                json!({"alg": "HS256", "typ": "JWT"}),
                json!({"sub": "u1", "org": "acme", "exp": now + 600}),
            )
        )
    };
    let url = format!("{}/d/acme/doc.txt", edge.base);
    assert_eq!(
        get(&url, &[("authorization", &token(first))]).await.status,
        302
    );
    assert_eq!(
        get(&url, &[("authorization", &token(second))]).await.status,
        401
    );

    std::fs::write(&secret, second).unwrap();
    edge.signal("HUP");
    assert!(
        edge.wait_for_log("config reloaded", Duration::from_secs(10))
            .await,
        "{}",
        edge.log()
    );
    assert_eq!(
        get(&url, &[("authorization", &token(second))]).await.status,
        302
    );
    assert_eq!(
        get(&url, &[("authorization", &token(first))]).await.status,
        401
    );
    assert!(!edge.log().contains(first) && !edge.log().contains(second));

    // An emptied secret file is refused by the reload; the running config keeps serving.
    std::fs::write(&secret, "\n").unwrap();
    edge.signal("HUP");
    assert!(
        edge.wait_for_log("auth.jwt_hs256_secret_file", Duration::from_secs(10))
            .await,
        "{}",
        edge.log()
    );
    assert_eq!(
        get(&url, &[("authorization", &token(second))]).await.status,
        302
    );
}

#[test]
fn check_prints_the_effective_config_without_secrets_validates_without_env_and_warns() {
    let dir = tempdir("check-options");
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    let key_file = dir.join("k.secret");
    let file_secret = "a-secret-read-from-a-file-0123456789";
    std::fs::write(&key_file, file_secret).unwrap();
    let inline = "an-inline-native-secret-0123456789abcdef";
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"0.0.0.0:18080\"\n[[origins]]\nname = \"demo\"\nkind = \"local\"\nroot = \"{}\"\n[[origins.keys]]\nkey_id = \"k1\"\nsecret = \"{inline}\"\n[[origins.keys]]\nkey_id = \"k2\"\nsecret_file = \"{}\"\n[[origins]]\nname = \"docs\"\nkind = \"s3\"\nregion = \"eu-west-1\"\nbucket = \"docs\"\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key_env = \"EDGESIGN_TEST_UNSET_SECRET\"\n[[origins]]\nname = \"irsa\"\nkind = \"s3\"\nregion = \"eu-west-1\"\nbucket = \"docs\"\n[[origins.keys]]\nsource = \"default\"\nassume_role = \"arn:aws:iam::123456789012:role/signer\"\n",
            root.display(),
            key_file.display()
        ),
    )
    .unwrap();
    let path = config.to_str().unwrap();

    // The variable is not exported: refused, naming the key…
    let plain = run(&["check", "--config", path], &[], None);
    assert_eq!(plain.code, 64, "{}", plain.stderr);
    assert!(
        plain
            .stderr
            .contains("origins[1].keys[0].secret_access_key_env")
    );
    // …unless CI validates without the deployment's secrets.
    let ci = run(&["check", "--no-env", "--config", path], &[], None);
    assert_eq!(ci.code, 0, "{}", ci.stderr);
    // 0.0.0.0 without public_url names links no client can reach: a warning, not an error.
    assert!(
        ci.stderr.contains("warning: server.public_url"),
        "{}",
        ci.stderr
    );

    let shown = run(
        &["check", "--print", "--config", path],
        &[(
            "EDGESIGN_TEST_UNSET_SECRET",
            "the-env-secret-value-0123456789",
        )],
        None,
    );
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    for secret in [inline, file_secret, "the-env-secret-value-0123456789"] {
        assert!(
            !shown.stdout.contains(secret),
            "a secret was printed:\n{}",
            shown.stdout
        );
    }
    let ok_line = format!("{path}: OK");
    let (printed, _) = shown
        .stdout
        .split_once(&ok_line)
        .unwrap_or_else(|| panic!("no OK line:\n{}", shown.stdout));
    let effective: toml::Value =
        toml::from_str(printed).unwrap_or_else(|e| panic!("not TOML ({e}):\n{}", shown.stdout));
    // Defaults are filled in, secrets redacted, key ids kept.
    assert_eq!(effective["cache"]["bucket"].as_str(), Some("15m"));
    assert_eq!(
        effective["origins"][0]["keys"][1]["key_id"].as_str(),
        Some("k2")
    );
    assert_eq!(
        effective["origins"][0]["keys"][1]["secret"].as_str(),
        Some("<redacted>")
    );
    assert_eq!(
        effective["origins"][1]["keys"][0]["secret_access_key"].as_str(),
        Some("<redacted>")
    );
    // Where provided credentials come from is part of the effective config (and its hash).
    let provided = &effective["origins"][2]["keys"][0];
    assert_eq!(provided["source"].as_str(), Some("default"), "{provided}");
    assert_eq!(
        provided["assume_role"].as_str(),
        Some("arn:aws:iam::123456789012:role/signer")
    );
    assert_eq!(
        effective["server"]["public_url"].as_str(),
        Some("http://0.0.0.0:18080")
    );
}

#[test]
fn the_command_line_papercuts() {
    let shipped = repo().join("config.toml");
    let shipped = shipped.to_str().unwrap();

    // --version names the commit it was built from.
    let version = run(&["--version"], &[], None);
    assert_eq!(version.code, 0);
    let (_, commit) = version.stdout.trim().rsplit_once(' ').unwrap();
    let commit = commit.trim_matches(['(', ')']);
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{}",
        version.stdout
    );

    // hash-key reads the key from stdin, so it stays out of the shell's history.
    let direct = run(&["hash-key", "sk_live_example"], &[], None);
    let piped = run(&["hash-key"], &[], Some("sk_live_example\n"));
    assert_eq!(direct.code, 0);
    assert_eq!(piped.stdout, direct.stdout);
    assert_eq!(piped.stdout.trim().len(), 64);

    // -c and EDGESIGN_CONFIG name the config; inspect reads one only when named, and then
    // says which key verified the URL.
    let signed = run(
        &["sign", "-c", shipped, "--origin", "demo", "acme/hello.txt"],
        &[],
        None,
    );
    assert_eq!(signed.code, 0, "{}", signed.stderr);
    let url = signed.stdout.trim();
    let offline = run(&["inspect", url], &[], None);
    let offline: serde_json::Value = serde_json::from_str(&offline.stdout).unwrap();
    assert!(offline.get("genuine").is_none(), "{offline}");
    let inspected = run(&["inspect", url], &[("EDGESIGN_CONFIG", shipped)], None);
    let inspected: serde_json::Value = serde_json::from_str(&inspected.stdout).unwrap();
    assert_eq!(inspected["genuine"], true, "{inspected}");
    assert_eq!(inspected["key_id"], "demo-1", "{inspected}");

    // A lifetime above the scheme's maximum is refused, not shortened.
    let dir = tempdir("cli-s3");
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:18081\"\n[[origins]]\nname = \"docs\"\nkind = \"s3\"\nregion = \"us-east-1\"\nbucket = \"docs\"\n[[origins.keys]]\naccess_key_id = \"{AK}\"\nsecret_access_key = \"{SK}\"\n"
        ),
    )
    .unwrap();
    let path = config.to_str().unwrap();
    let long = run(
        &[
            "sign",
            "-c",
            path,
            "--origin",
            "docs",
            "--expires-in",
            "604801",
            "a.txt",
        ],
        &[],
        None,
    );
    assert_ne!(long.code, 0);
    assert!(long.stderr.contains("604800"), "{}", long.stderr);
    let week = run(
        &[
            "sign",
            "-c",
            path,
            "--origin",
            "docs",
            "--expires-in",
            "604800",
            "a.txt",
        ],
        &[],
        None,
    );
    assert_eq!(week.code, 0, "{}", week.stderr);
    assert!(week.stdout.contains("X-Amz-Expires=604800"));

    // A bad config is 64 for every command that reads one.
    let missing = repo().join("target/no-such-config.toml");
    let missing = missing.to_str().unwrap();
    for args in [
        vec!["check", "-c", missing],
        vec!["sign", "-c", missing, "--origin", "demo", "a"],
        vec!["inspect", "-c", missing, "http://x/y"],
        vec!["-c", missing],
    ] {
        assert_eq!(run(&args, &[], None).code, 64, "{args:?}");
    }

    // Completions and a man page, generated from the same definitions.
    let bash = run(&["completions", "bash"], &[], None);
    assert_eq!(bash.code, 0);
    assert!(bash.stdout.contains("hash-key") && bash.stdout.contains("--config"));
    let man = run(&["manpage"], &[], None);
    assert_eq!(man.code, 0);
    assert!(
        man.stdout.starts_with(".ie") || man.stdout.contains(".TH edgesign"),
        "{}",
        &man.stdout[..200.min(man.stdout.len())]
    );
    // inspect --help tells the truth about --config.
    let help = run(&["inspect", "--help"], &[], None);
    assert!(help.stdout.contains("EDGESIGN_CONFIG"), "{}", help.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_exist_before_their_first_event() {
    let origin = s3_origin().await;
    let body = format!(
        "{}[[routes]]\nprefix = \"/r/\"\norigin = \"docs\"\nmode = \"redirect\"\naccess = \"authenticated\"\n{}",
        s3_origin_toml(&origin, "1h"),
        api_keys_toml()
    );
    let edge = spawn_with("metrics-zero", &body, &[]);
    let text = get(&format!("{}/metrics", edge.base), &[]).await.text();
    let m = parse_metrics(&text);
    for series in [
        r#"edgesign_signed_url_verdicts_total{verdict="rescued"}"#,
        r#"edgesign_signed_url_verdicts_total{verdict="forged"}"#,
        r#"edgesign_signed_url_verdicts_total{verdict="expired_refused"}"#,
        r#"edgesign_origin_errors_total{origin="docs",kind="timeout"}"#,
        r#"edgesign_origin_errors_total{origin="docs",kind="tls"}"#,
        r#"edgesign_requests_total{route="redirect",status="502"}"#,
        r#"edgesign_requests_total{route="api_presign",status="500"}"#,
        r#"edgesign_config_reloads_total{result="error"}"#,
        r#"edgesign_signing_operations_total{scheme="sigv4"}"#,
    ] {
        assert_eq!(
            m.get(series),
            Some(&0.0),
            "{series} is not exported at 0:\n{text}"
        );
    }
    let build = m
        .keys()
        .find(|k| k.starts_with("edgesign_build_info{"))
        .unwrap_or_else(|| panic!("no build_info:\n{text}"));
    assert!(build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))));
    assert!(m["edgesign_config_hash"] > 0.0);
    assert!(m["process_resident_memory_bytes"] > 1e6, "{text}");
    assert!(m["process_open_fds"] >= 3.0);
    assert!(m.contains_key("process_cpu_seconds_total"));

    // A forged URL, an expired one refused (no credentials) and one rescued (an API key),
    // each counted once.
    let stale = botocore_presign(&origin.endpoint(), "acme/x.txt", "20130524T000000Z", 3600);
    let query = stale.split_once('?').unwrap().1;
    let sig = query.rsplit_once("X-Amz-Signature=").unwrap().1;
    let forged = query.replace(&sig[..8], "00000000");
    let base = edge.base.clone();
    assert_eq!(
        get(&format!("{base}/r/acme/x.txt?{forged}"), &[])
            .await
            .status,
        403
    );
    let expired = get(&format!("{base}/r/acme/x.txt?{query}"), &[]).await;
    assert_eq!(expired.status, 403, "{}", expired.text());
    assert!(
        expired.text().contains("Request has expired"),
        "{}",
        expired.text()
    );
    let rescued = get(
        &format!("{base}/r/acme/x.txt?{query}"),
        &[("x-api-key", SK_ADMIN)],
    )
    .await;
    assert_eq!(rescued.status, 302, "{}", rescued.text());
    let text = get(&format!("{base}/metrics"), &[]).await.text();
    // Latency buckets at the usual SLO thresholds.
    assert!(
        text.contains(r#"edgesign_request_duration_seconds_bucket{le="0.1",route="redirect"}"#)
            && text
                .contains(r#"edgesign_request_duration_seconds_bucket{le="1.0",route="redirect"}"#),
        "{text}"
    );
    let m = parse_metrics(&text);
    for (verdict, n) in [("forged", 1.0), ("expired_refused", 1.0), ("rescued", 1.0)] {
        let series = format!("edgesign_signed_url_verdicts_total{{verdict=\"{verdict}\"}}");
        assert_eq!(m[&series], n, "{series}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_answers_allow_and_the_signing_apis_speak_cors_to_listed_origins() {
    let dir = tempdir("cors");
    std::fs::create_dir_all(dir.join("root/acme")).unwrap();
    std::fs::write(dir.join("root/acme/doc.txt"), "doc").unwrap();
    let edge = spawn_with(
        "cors",
        &format!(
            "public_url = \"http://edge.example\"\n[[origins]]\nname = \"demo\"\nkind = \"local\"\nroot = \"{}\"\nttl = \"1h\"\n[[origins.keys]]\nkey_id = \"k1\"\nsecret = \"a-local-origin-key-0123456789abcdef\"\n[[routes]]\nprefix = \"/d/\"\norigin = \"demo\"\nmode = \"redirect\"\naccess = \"org\"\n[cors]\nallow_origins = [\"https://app.example.com\"]\n{}",
            dir.join("root").display(),
            api_keys_toml()
        ),
        &[],
    );
    let base = edge.base.clone();
    let app = ("origin", "https://app.example.com");
    let evil = ("origin", "https://evil.example");

    let route = send("OPTIONS", &format!("{base}/d/acme/doc.txt"), &[]).await;
    assert_eq!(route.status, 204);
    assert_eq!(route.header("allow"), "GET, HEAD, OPTIONS");
    let not_allowed = send("DELETE", &format!("{base}/d/acme/doc.txt"), &[]).await;
    assert_eq!(not_allowed.status, 405);
    assert_eq!(not_allowed.header("allow"), "GET, HEAD, OPTIONS");

    // Each API names its own methods, on OPTIONS and on a 405.
    for (method, path, allow) in [
        ("GET", "/v1/sign", "POST, OPTIONS"),
        ("PUT", "/v1/revocations", "GET, POST, OPTIONS"),
        ("GET", "/v1/revocations/rev_1", "DELETE, OPTIONS"),
        ("OPTIONS", "/v1/revocations/rev_1", "DELETE, OPTIONS"),
    ] {
        let got = send(method, &format!("{base}{path}"), &[("x-api-key", SK_ACME)]).await;
        let want = if method == "OPTIONS" { 204 } else { 405 };
        assert_eq!(got.status, want, "{method} {path}: {}", got.text());
        assert_eq!(got.header("allow"), allow, "{method} {path}");
    }
    // A preflight from a listed page: the method, the headers, credentials, cached 10 min.
    let api = format!("{base}/v1/sign");
    let preflight = send(
        "OPTIONS",
        &api,
        &[
            app,
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "authorization, content-type",
            ),
        ],
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("allow"), "POST, OPTIONS");
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        "https://app.example.com"
    );
    assert_eq!(preflight.header("access-control-allow-credentials"), "true");
    assert_eq!(preflight.header("access-control-allow-methods"), "POST");
    assert!(
        preflight
            .header("access-control-allow-headers")
            .contains("authorization")
    );
    assert_eq!(preflight.header("vary"), "Origin");
    // From any other page: no CORS headers, so the browser keeps the answer from it.
    let foreign = send(
        "OPTIONS",
        &api,
        &[evil, ("access-control-request-method", "POST")],
    )
    .await;
    assert_eq!(foreign.status, 204);
    assert!(foreign.headers.get("access-control-allow-origin").is_none());

    let bearer = format!("Bearer {SK_ACME}");
    let body = r#"{"origin": "demo", "key": "acme/doc.txt"}"#;
    let signed = post(&api, body, &[app, ("authorization", &bearer)]).await;
    assert_eq!(signed.status, 200, "{}", signed.text());
    assert_eq!(
        signed.header("access-control-allow-origin"),
        "https://app.example.com"
    );
    assert_eq!(
        signed.header("access-control-expose-headers"),
        "x-request-id"
    );
    let refused = post(&api, body, &[app]).await;
    assert_eq!(refused.status, 401);
    assert_eq!(
        refused.header("access-control-allow-origin"),
        "https://app.example.com",
        "the page can read why it was refused"
    );
    // An API whose origin is not configured is not served here: 404, as for the others.
    let unserved = post(
        &format!("{base}/generate-presigned-url"),
        r#"{"key": "acme/doc.txt"}"#,
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(unserved.status, 404, "{}", unserved.text());
    let elsewhere = post(&api, body, &[evil, ("authorization", &bearer)]).await;
    assert_eq!(elsewhere.status, 200);
    assert!(
        elsewhere
            .headers
            .get("access-control-allow-origin")
            .is_none()
    );

    // A wildcard or a spelling browsers never send is a config error naming the key.
    let config = dir.join("bad.toml");
    for (bad, words) in [
        ("*", "is not allowed"),
        ("https://App.example.com/", "is not an origin"),
    ] {
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:18082\"\n[cors]\nallow_origins = [\"{bad}\"]\n"
            ),
        )
        .unwrap();
        let out = run(&["check", "--config", config.to_str().unwrap()], &[], None);
        assert_eq!(out.code, 64, "{bad}: {}", out.stderr);
        assert!(
            out.stderr.contains("cors.allow_origins[0]") && out.stderr.contains(words),
            "{bad}: {}",
            out.stderr
        );
    }
}
