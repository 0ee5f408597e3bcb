//! The command line through the built binary: `sign --at` reproduces AWS's published
//! example and a sample of the SDK vectors; `inspect` reports scheme, key, expiry and
//! genuineness; `hash-key` prints what `[[auth.api_keys]] sha256` wants.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use support::vectors::vector;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgesign"))
}

fn tempdir() -> PathBuf {
    let d = support::scratch::dir("cli");
    std::fs::create_dir_all(d.join("files")).unwrap();
    d
}

/// Writes a config holding one origin block and returns its path.
fn config_with(dir: &Path, origin: &str) -> PathBuf {
    let path = dir.join("c.toml");
    std::fs::write(&path, format!("[cache]\nbucket = \"1s\"\n{origin}")).unwrap();
    path
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn s3_origin_toml(input: &Value) -> String {
    let endpoint = input["endpoint"]
        .as_str()
        .map(|e| format!("endpoint = {e:?}\n"))
        .unwrap_or_default();
    let token = input["session_token"]
        .as_str()
        .map(|t| format!("session_token = {t:?}\n"))
        .unwrap_or_default();
    format!(
        "[[origins]]\nname = \"docs\"\nkind = \"s3\"\n{endpoint}region = {:?}\nbucket = {:?}\npath_style = {}\nttl = \"7d\"\n[[origins.keys]]\naccess_key_id = {:?}\nsecret_access_key = {:?}\n{token}",
        input["region"].as_str().unwrap(),
        input["bucket"].as_str().unwrap(),
        input["addressing_style"] == "path",
        input["access_key_id"].as_str().unwrap(),
        input["secret_access_key"].as_str().unwrap(),
    )
}

/// `edgesign sign --at` for a SigV4 vector; returns (config path, URL).
fn sign_vector(name: &str) -> (PathBuf, String) {
    let v = vector("sigv4_presign.json", name);
    let input = &v["input"];
    let dir = tempdir();
    let cfg = config_with(&dir, &s3_origin_toml(input));
    let at = input["timestamp"].as_str().unwrap();
    let at = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &at[0..4],
        &at[4..6],
        &at[6..8],
        &at[9..11],
        &at[11..13],
        &at[13..15]
    );
    let url = run(bin()
        .args(["sign", "--config"])
        .arg(&cfg)
        .args(["--origin", "docs", "--at", &at, "--expires-in"])
        .arg(input["expires_in"].as_u64().unwrap().to_string())
        .args(["--method", input["method"].as_str().unwrap(), "--"])
        .arg(input["key"].as_str().unwrap()));
    let url = url.trim().to_owned();
    assert_eq!(url, v["expected"]["url"].as_str().unwrap(), "{name}");
    (cfg, url)
}

fn inspect(cfg: Option<&Path>, url: &str) -> Value {
    let mut cmd = bin();
    cmd.arg("inspect");
    if let Some(c) = cfg {
        cmd.arg("--config").arg(c);
    }
    serde_json::from_str(&run(cmd.arg(url))).unwrap()
}

#[test]
fn sign_at_reproduces_the_aws_documentation_example() {
    let (_, url) = sign_vector("aws-doc-example");
    assert!(url.ends_with(
        "X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    ));
}

#[test]
fn a_sample_of_vectors_round_trips_through_the_binary() {
    for name in [
        "local-path-style",
        "key-unicode",
        "key-rfc3986-reserved",
        "key-double-slash-no-normalize",
        "key-literal-percent",
        "session-token",
        "endpoint-explicit-443",
        "dotted-bucket-virtual-falls-back",
        "head-object",
    ] {
        let (cfg, url) = sign_vector(name);
        let v = vector("sigv4_presign.json", name);
        let report = inspect(Some(&cfg), &url);
        assert_eq!(report["scheme"], "sigv4", "{name}");
        assert_eq!(report["genuine"], true, "{name}: {report}");
        assert_eq!(report["origin"], "docs");
        assert_eq!(report["key"], v["input"]["key"], "{name}");
        assert_eq!(report["expired"], true, "2013 URLs have expired");
        assert_eq!(report["signed_at"], "2013-05-24T00:00:00Z");
        // One changed signature digit and it is not genuine.
        let sig = v["expected"]["signature"].as_str().unwrap();
        let other = if sig.starts_with('0') { "1" } else { "0" };
        let forged = url.replace(sig, &format!("{other}{}", &sig[1..]));
        let report = inspect(Some(&cfg), &forged);
        assert_eq!(report["genuine"], false, "{name}");
        assert_eq!(report["reason"], "signature does not match");
    }
}

#[test]
fn cloudfront_canned_url_through_the_binary() {
    let v = vector("cloudfront_signed_urls.json", "canned-basic");
    let dir = tempdir();
    std::fs::copy(
        support::vectors::vector_path("cloudfront_test_key.pem"),
        dir.join("cf.pem"),
    )
    .unwrap();
    let cfg = config_with(
        &dir,
        "[[origins]]\nname = \"cdn\"\nkind = \"cloudfront\"\ndomain = \"d111111abcdef8.cloudfront.net\"\nttl = \"1h\"\n[[origins.keys]]\nkey_pair_id = \"K2JCJMDEHXQW5F\"\nprivate_key_file = \"cf.pem\"\n",
    );
    // Expires = 2029-12-31T23:00:00Z + 3600 s = 1893456000, the vector's expiry.
    let url = run(bin().args(["sign", "--config"]).arg(&cfg).args([
        "--origin",
        "cdn",
        "--at",
        "2029-12-31T23:00:00Z",
        "--expires-in",
        "3600",
        "image.jpg",
    ]));
    assert_eq!(url.trim(), v["expected"]["signed_url"].as_str().unwrap());
    let report = inspect(Some(&cfg), url.trim());
    assert_eq!(report["scheme"], "cloudfront");
    assert_eq!(report["genuine"], true);
    assert_eq!(report["expires_at"], "2030-01-01T00:00:00Z");
}

#[test]
fn inspect_without_config_reads_the_url_alone() {
    let v = vector("sigv4_presign.json", "response-content-disposition");
    let report = inspect(None, v["expected"]["url"].as_str().unwrap());
    assert_eq!(report["scheme"], "sigv4");
    assert_eq!(report["key"], "report.pdf");
    assert_eq!(report["expires_at"], "2013-05-24T01:00:00Z");
    assert_eq!(report["expired"], true);
    assert!(report.get("genuine").is_none(), "genuineness needs keys");
    assert_eq!(
        report["params"][0].as_str().unwrap().split('=').next(),
        Some("response-content-disposition")
    );

    let report = inspect(None, "https://cdn.example.com/a/b.txt");
    assert_eq!(report["scheme"], "unsigned");
    assert_eq!(report["expires_at"], Value::Null);

    let out = bin().args(["inspect", "not a url"]).output().unwrap();
    assert!(!out.status.success());
    let err: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(err["code"], "bad_request");
}

#[test]
fn native_links_sign_and_inspect() {
    let dir = tempdir();
    let cfg = config_with(
        &dir,
        "[[origins]]\nname = \"demo\"\nkind = \"local\"\nroot = \"files\"\nttl = \"1h\"\n[[origins.keys]]\nkey_id = \"k1\"\nsecret = \"0123456789abcdef0123\"\n",
    );
    let url =
        run(bin()
            .args(["sign", "--config"])
            .arg(&cfg)
            .args(["--origin", "demo", "docs/a b.txt"]));
    assert!(
        url.starts_with("http://127.0.0.1:8080/_origin/demo/docs/a%20b.txt?expires="),
        "{url}"
    );
    let report = inspect(Some(&cfg), url.trim());
    assert_eq!(report["scheme"], "native");
    assert_eq!(report["genuine"], true);
    assert_eq!(report["expired"], false);
    assert_eq!(report["key"], "docs/a b.txt");
}

#[test]
fn hash_key_prints_the_sha256() {
    // Expected value from coreutils: `printf sk_live_abc | sha256sum`.
    let out = run(bin().args(["hash-key", "sk_live_abc"]));
    assert_eq!(
        out.trim(),
        "b2817799acd7f3337c32f967a7c4ca32a767c94190298bace3e0447120385c09"
    );
    let mut child = bin()
        .args(["hash-key", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"sk_live_abc\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        "b2817799acd7f3337c32f967a7c4ca32a767c94190298bace3e0447120385c09"
    );
}

#[test]
fn sign_refuses_bad_arguments() {
    let dir = tempdir();
    let cfg = config_with(
        &dir,
        "[[origins]]\nname = \"demo\"\nkind = \"local\"\nroot = \"files\"\n[[origins.keys]]\nkey_id = \"k1\"\nsecret = \"0123456789abcdef0123\"\n",
    );
    for args in [
        vec!["--origin", "nope", "k"],
        vec!["--origin", "demo", "--method", "PUT", "k"],
        vec!["--origin", "demo", "--at", "yesterday", "k"],
        vec!["--origin", "demo", "--expires-in", "0", "k"],
    ] {
        let out = bin()
            .args(["sign", "--config"])
            .arg(&cfg)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(out.stdout.is_empty());
    }
}
