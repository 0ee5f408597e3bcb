//! `edgesign check` through the built binary: a good config passes; each kind of mistake
//! exits 64 (EX_USAGE, as every command does for a bad config) with the key path named, and no secret from the file is ever printed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

#[path = "support/scratch.rs"]
mod scratch;

use std::path::Path;
use std::process::Command;

const SECRET: &str = "s3cr3t-VALUE-that-must-never-print";

const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "http://127.0.0.1:8080"

[cache]
bucket = "15m"

[[origins]]
name = "demo"
kind = "local"
root = "files"
ttl = "1h"
[[origins.keys]]
key_id = "k1"
secret = "s3cr3t-VALUE-that-must-never-print"

[[origins]]
name = "docs"
kind = "s3"
endpoint = "http://127.0.0.1:9000"
region = "us-east-1"
bucket = "docs"
path_style = true
ttl = "1h"
[[origins.keys]]
access_key_id = "AKIAIOSFODNN7EXAMPLE"
secret_access_key = "s3cr3t-VALUE-that-must-never-print"

[[routes]]
prefix = "/files/"
origin = "docs"
mode = "redirect"
access = "org"

[compat]
files_origin = "docs"
"#;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn check(config: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Run {
    let dir = tempdir();
    std::fs::create_dir_all(dir.join("files")).unwrap();
    for (name, content) in files {
        std::fs::write(dir.join(name), content).unwrap();
    }
    let path = dir.join("edgesign.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edgesign"))
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("EDGESIGN_TEST_SECRET")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains(SECRET) && !run.stderr.contains(SECRET),
        "a secret was printed:\n{}",
        run.stderr
    );
    run
}

fn tempdir() -> std::path::PathBuf {
    scratch::dir("check")
}

/// Asserts the config is refused with exit 64 (EX_USAGE) and a line naming `path` and containing `words`.
fn refused(config: &str, files: &[(&str, &str)], env: &[(&str, &str)], path: &str, words: &str) {
    let run = check(config, files, env);
    assert_eq!(
        run.code, 64,
        "expected exit 64, got {}:\n{}",
        run.code, run.stderr
    );
    assert!(
        run.stderr
            .lines()
            .any(|l| l.contains(path) && l.contains(words)),
        "no line naming {path:?} with {words:?} in:\n{}",
        run.stderr
    );
}

#[test]
fn the_good_config_passes() {
    let run = check(GOOD, &[], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("OK (2 origins, 1 routes)"),
        "{}",
        run.stdout
    );
}

#[test]
fn the_shipped_config_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_edgesign"))
        .args(["check", "--config"])
        .arg(root.join("config.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unknown_keys_are_rejected() {
    let cfg = GOOD.replace(
        "region = \"us-east-1\"",
        "region = \"us-east-1\"\nregoin = \"x\"",
    );
    refused(&cfg, &[], &[], "line 23", "unknown field `regoin`");
    let cfg = format!("{GOOD}\n[extras]\nx = 1\n");
    refused(&cfg, &[], &[], "line", "unknown field `extras`");
}

#[test]
fn a_syntax_error_names_the_line_but_not_its_content() {
    let cfg = GOOD.replace(
        "secret_access_key = \"s3cr3t-VALUE-that-must-never-print\"",
        "secret_access_key = s3cr3t-VALUE-that-must-never-print",
    );
    let run = check(&cfg, &[], &[]);
    assert_eq!(run.code, 64);
    assert!(run.stderr.contains("line 28"), "{}", run.stderr);
}

#[test]
fn ttl_shorter_than_two_buckets() {
    refused(
        &GOOD.replace(
            "ttl = \"1h\"\n[[origins.keys]]\nkey_id",
            "ttl = \"20m\"\n[[origins.keys]]\nkey_id",
        ),
        &[],
        &[],
        "origins[0].ttl",
        "shorter than 2 × cache.bucket",
    );
}

#[test]
fn s3_ttl_over_seven_days() {
    let cfg = GOOD.replace(
        "path_style = true\nttl = \"1h\"",
        "path_style = true\nttl = \"8days\"",
    );
    refused(&cfg, &[], &[], "origins[1].ttl", "7-day maximum");
}

/// An S3 bucket is checked as a GCS one is: a `%` (or `/`, `?`, `#`, a space) would change
/// the URL edgesign signs, so such a name is refused, not sent to the store.
#[test]
fn s3_bucket_that_is_not_a_bucket_name() {
    for bad in [
        "docs%2Fother",
        "docs/other",
        "docs?x",
        "docs#x",
        "do cs",
        "",
    ] {
        let cfg = GOOD.replace("bucket = \"docs\"", &format!("bucket = {bad:?}"));
        refused(&cfg, &[], &[], "origins[1].bucket", "is not a bucket name");
    }
    let cfg = GOOD.replace("bucket = \"docs\"\n", "");
    refused(&cfg, &[], &[], "origins[1].bucket", "missing");
}

#[test]
fn secret_from_a_missing_environment_variable() {
    let cfg = GOOD.replace(
        "secret_access_key = \"s3cr3t-VALUE-that-must-never-print\"",
        "secret_access_key_env = \"EDGESIGN_TEST_SECRET\"",
    );
    refused(
        &cfg,
        &[],
        &[],
        "origins[1].keys[0].secret_access_key_env",
        "\"EDGESIGN_TEST_SECRET\" is not set",
    );
    // …and the same config passes once the variable is set.
    assert_eq!(
        check(&cfg, &[], &[("EDGESIGN_TEST_SECRET", SECRET)]).code,
        0
    );
}

#[test]
fn inline_and_env_secret_together() {
    let cfg = GOOD.replace(
        "secret_access_key = \"s3cr3t-VALUE-that-must-never-print\"",
        "secret_access_key = \"s3cr3t-VALUE-that-must-never-print\"\nsecret_access_key_env = \"X\"",
    );
    refused(
        &cfg,
        &[],
        &[],
        "origins[1].keys[0].secret_access_key",
        "set only one of",
    );
}

const CDN: &str = r#"
[[origins]]
name = "cdn"
kind = "cloudfront"
domain = "d111111abcdef8.cloudfront.net"
ttl = "1h"
[[origins.keys]]
key_pair_id = "K2JCJMDEHXQW5F"
private_key_file = "cf.pem"
"#;

#[test]
fn cloudfront_key_file_missing() {
    refused(
        &format!("{GOOD}{CDN}"),
        &[],
        &[],
        "origins[2].keys[0].private_key_file",
        "cannot read \"cf.pem\" (no such file)",
    );
}

#[test]
fn cloudfront_key_file_not_a_key() {
    let garbage = format!("-----BEGIN PRIVATE KEY-----\n{SECRET}\n-----END PRIVATE KEY-----\n");
    refused(
        &format!("{GOOD}{CDN}"),
        &[("cf.pem", &garbage)],
        &[],
        "origins[2].keys[0].private_key_file",
        "not a PEM RSA-2048 or EC P-256 private key",
    );
}

#[test]
fn cloudfront_key_file_good() {
    let pem = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/cloudfront_test_ec_key.pem"),
    )
    .unwrap();
    assert_eq!(
        check(&format!("{GOOD}{CDN}"), &[("cf.pem", &pem)], &[]).code,
        0
    );
}

#[test]
fn route_to_an_unknown_origin() {
    refused(
        &GOOD.replace("origin = \"docs\"\nmode", "origin = \"nope\"\nmode"),
        &[],
        &[],
        "routes[0].origin",
        "no origin is named \"nope\"",
    );
}

#[test]
fn unknown_kind_mode_and_access() {
    refused(
        &GOOD.replace("kind = \"s3\"", "kind = \"b2\""),
        &[],
        &[],
        "origins[1].kind",
        "\"b2\" is not s3, cloudfront, gcs, azure or local",
    );
    refused(
        &GOOD.replace("mode = \"redirect\"", "mode = \"bounce\""),
        &[],
        &[],
        "routes[0].mode",
        "not redirect, stream or cookie",
    );
    refused(
        &GOOD.replace("access = \"org\"", "access = \"everyone\""),
        &[],
        &[],
        "routes[0].access",
        "not public, authenticated or org",
    );
}

#[test]
fn bad_duration() {
    refused(
        &GOOD.replace("bucket = \"15m\"", "bucket = \"soon\""),
        &[],
        &[],
        "cache.bucket",
        "not a duration",
    );
}

#[test]
fn a_metrics_network_that_is_not_one() {
    refused(
        &GOOD.replace(
            "public_url = \"http://127.0.0.1:8080\"\n",
            "public_url = \"http://127.0.0.1:8080\"\nmetrics_allow = [\"10.0.0.0/8\", \"office\"]\n",
        ),
        &[],
        &[],
        "server.metrics_allow[1]",
        "not an IP or CIDR",
    );
}

#[test]
fn local_root_missing() {
    refused(
        &GOOD.replace("root = \"files\"", "root = \"nowhere\""),
        &[],
        &[],
        "origins[0].root",
        "not a readable directory",
    );
}

#[test]
fn short_native_secret() {
    let cfg = GOOD.replace(
        "key_id = \"k1\"\nsecret = \"s3cr3t-VALUE-that-must-never-print\"",
        "key_id = \"k1\"\nsecret = \"short\"",
    );
    refused(
        &cfg,
        &[],
        &[],
        "origins[0].keys[0].secret",
        "shorter than 16 bytes",
    );
}

#[test]
fn fields_of_another_kind() {
    let cfg = GOOD.replace("bucket = \"docs\"", "bucket = \"docs\"\ndomain = \"x.net\"");
    refused(
        &cfg,
        &[],
        &[],
        "origins[1].domain",
        "not used by kind = \"s3\"",
    );
}

#[test]
fn duplicate_origin_names() {
    refused(
        &GOOD.replace("name = \"docs\"", "name = \"demo\""),
        &[],
        &[],
        "origins[1].name",
        "defined twice",
    );
}

#[test]
fn bad_listen_address_and_partial_tls() {
    refused(
        &GOOD.replace("listen = \"127.0.0.1:8080\"", "listen = \"localhost\""),
        &[],
        &[],
        "server.listen",
        "not an address",
    );
    let cfg = GOOD.replace("[cache]", "tls_listen = \"127.0.0.1:8443\"\n\n[cache]");
    refused(&cfg, &[], &[], "server.tls_listen", "go together");
}

#[test]
fn api_key_hash_malformed() {
    let cfg = format!("{GOOD}\n[auth]\n[[auth.api_keys]]\nsha256 = \"abc\"\nkind = \"secret\"\n");
    refused(&cfg, &[], &[], "auth.api_keys[0].sha256", "64 hex digits");
}

#[test]
fn redirect_back_at_the_proxy() {
    let cfg = GOOD.replace(
        "endpoint = \"http://127.0.0.1:9000\"",
        "endpoint = \"http://127.0.0.1:8080\"",
    );
    refused(
        &cfg,
        &[],
        &[],
        "routes[0].origin",
        "points back at this proxy",
    );
}

#[test]
fn redirect_route_on_the_origins_own_host() {
    let cfg = GOOD.replace(
        "prefix = \"/files/\"",
        "prefix = \"/files/\"\nhost = \"127.0.0.1\"",
    );
    refused(&cfg, &[], &[], "routes[0].mode", "use mode = \"stream\"");
}

#[test]
fn no_origins_at_all() {
    refused(
        "[server]\nlisten = \"127.0.0.1:8080\"\n",
        &[],
        &[],
        "origins",
        "at least one",
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let cfg = GOOD
        .replace("bucket = \"15m\"", "bucket = \"soon\"")
        .replace("mode = \"redirect\"", "mode = \"bounce\"");
    let run = check(&cfg, &[], &[]);
    assert!(
        run.stderr.contains("cache.bucket") && run.stderr.contains("routes[0].mode"),
        "{}",
        run.stderr
    );
}

#[test]
fn serve_with_a_bad_config_exits_64_before_binding() {
    let dir = tempdir();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[server]\nlisten = \"nope\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edgesign"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen"));
}

#[test]
fn serve_with_a_bad_certificate_exits_64_naming_the_key() {
    let dir = tempdir();
    std::fs::create_dir_all(dir.join("files")).unwrap();
    std::fs::write(
        dir.join("bad.crt"),
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let certs = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs");
    let cfg = GOOD.replace(
        "[cache]",
        &format!(
            "tls_listen = \"127.0.0.1:0\"\ntls_cert = \"bad.crt\"\ntls_key = \"{}\"\n\n[cache]",
            certs.join("dev.key").display()
        ),
    );
    std::fs::write(dir.join("c.toml"), &cfg).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edgesign"))
        .arg("--config")
        .arg(dir.join("c.toml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.tls_cert"));
    // A key that does not belong to the certificate.
    let other_key =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/cloudfront_test_key.pem");
    let cfg = GOOD.replace(
        "[cache]",
        &format!(
            "tls_listen = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\n[cache]",
            certs.join("dev.crt").display(),
            other_key.display()
        ),
    );
    std::fs::write(dir.join("c.toml"), &cfg).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edgesign"))
        .arg("--config")
        .arg(dir.join("c.toml"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("server.tls_key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn server_limits_out_of_range() {
    let with = |extra: &str| GOOD.replacen("[server]\n", &format!("[server]\n{extra}\n"), 1);
    refused(
        &with("max_header_size = 1024"),
        &[],
        &[],
        "server.max_header_size",
        "between 8192",
    );
    refused(
        &with("max_connections = 0"),
        &[],
        &[],
        "server.max_connections",
        "between 1",
    );
    refused(
        &with("header_read_timeout = \"0s\""),
        &[],
        &[],
        "server.header_read_timeout",
        "at least",
    );
    refused(
        &with("idle_timeout = \"forever\""),
        &[],
        &[],
        "server.idle_timeout",
        "not a duration",
    );
    refused(
        &with("workers = 5000"),
        &[],
        &[],
        "server.workers",
        "more than 1024",
    );
    refused(
        &with("drain_delay = \"later\""),
        &[],
        &[],
        "server.drain_delay",
        "not a duration",
    );
    let run = check(
        &with(
            "drain_delay = \"5s\"\nheader_read_timeout = \"5s\"\nidle_timeout = \"2m\"\nmax_header_size = 32768\nmax_connections = 500\nworkers = 1",
        ),
        &[],
        &[],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[test]
fn credential_sources_are_checked_key_by_key() {
    let key = "access_key_id = \"AKIAIOSFODNN7EXAMPLE\"\nsecret_access_key = \"s3cr3t-VALUE-that-must-never-print\"";
    assert!(GOOD.contains(key), "the fixture changed");
    let with = |block: &str| GOOD.replace(key, block);
    // The SDK's chain, a profile, and a role on top of either: accepted.
    for ok in [
        "source = \"default\"",
        "source = \"profile\"\nprofile = \"signer\"",
        "source = \"default\"\nassume_role = \"arn:aws:iam::123456789012:role/edgesign\"",
    ] {
        let run = check(&with(ok), &[], &[]);
        assert_eq!(run.code, 0, "{ok}: {}", run.stderr);
    }
    for (block, path, words) in [
        (
            "source = \"imds\"",
            "origins[1].keys[0].source",
            "is not \"default\" or \"profile\"",
        ),
        (
            "source = \"profile\"",
            "origins[1].keys[0].profile",
            "missing",
        ),
        (
            "source = \"default\"\nprofile = \"x\"",
            "origins[1].keys[0].profile",
            "source = \"profile\"",
        ),
        (
            "assume_role = \"arn:aws:iam::1:role/x\"",
            "origins[1].keys[0].source",
            "missing",
        ),
        (
            "source = \"default\"\nassume_role = \"edgesign-signer\"",
            "origins[1].keys[0].assume_role",
            "role ARN",
        ),
        (
            "source = \"default\"\naccess_key_id = \"AKIAIOSFODNN7EXAMPLE\"",
            "origins[1].keys[0].access_key_id",
            "not used with source",
        ),
    ] {
        refused(&with(block), &[], &[], path, words);
    }
}

#[test]
fn secrets_from_files_are_trimmed_and_checked() {
    let dir = scratch::dir("secret-files");
    let inline = "secret_access_key = \"s3cr3t-VALUE-that-must-never-print\"";
    let file = dir.join("s3.secret");
    std::fs::write(&file, "s3cr3t-VALUE-that-must-never-print\n").unwrap();
    let from_file = GOOD.replace(
        inline,
        &format!("secret_access_key_file = \"{}\"", file.display()),
    );
    let run = check(&from_file, &[], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let missing = GOOD.replace(inline, "secret_access_key_file = \"no-such.secret\"");
    refused(
        &missing,
        &[],
        &[],
        "origins[1].keys[0].secret_access_key_file",
        "no such file",
    );
    let empty = dir.join("empty.secret");
    std::fs::write(&empty, "\n").unwrap();
    let empty = GOOD.replace(
        inline,
        &format!("secret_access_key_file = \"{}\"", empty.display()),
    );
    refused(
        &empty,
        &[],
        &[],
        "origins[1].keys[0].secret_access_key_file",
        "is empty",
    );
}

#[test]
fn fleet_and_audit_keys_are_checked_without_echoing_the_redis_password() {
    let with = |extra: &str| format!("{GOOD}\n{extra}");
    for (extra, path, words) in [
        (
            "[fleet]\nredis_url = \"http://user:hunter2-redis-password@127.0.0.1:6379\"\n",
            "fleet.redis_url",
            "is not a redis:// or rediss:// URL",
        ),
        ("[fleet]\n", "fleet.redis_url", "missing"),
        (
            "[fleet]\nredis_url = \"redis://127.0.0.1:6379/0\"\non_redis_error = \"maybe\"\n",
            "fleet.on_redis_error",
            "is not \"allow\" or \"deny\"",
        ),
        (
            "[fleet]\nredis_url = \"redis://127.0.0.1:6379/0\"\nsync_interval = \"10ms\"\n",
            "fleet.sync_interval",
            "between 100ms and 60s",
        ),
        ("[audit]\n", "audit.path", "missing"),
        (
            "[audit]\npath = \"/no/such/dir/audit.ndjson\"\n",
            "audit.path",
            "its directory does not exist",
        ),
    ] {
        refused(&with(extra), &[], &[], path, words);
        let run = check(&with(extra), &[], &[]);
        assert!(
            !run.stderr.contains("hunter2"),
            "the password was printed: {}",
            run.stderr
        );
    }
    let ok = with("[fleet]\nredis_url_env = \"EDGESIGN_TEST_REDIS\"\n[audit]\npath = \"-\"\n");
    let run = check(
        &ok,
        &[],
        &[("EDGESIGN_TEST_REDIS", "redis://:pw@127.0.0.1:6379/0")],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
}

/// A GCS origin (service account and HMAC keys) and an Azure origin, as docs/config.md writes
/// them; `{SA}` is replaced by the service-account key file's name.
const CLOUDS: &str = r#"
[server]
listen = "127.0.0.1:8080"
public_url = "http://127.0.0.1:8080"

[[origins]]
name = "media"
kind = "gcs"
bucket = "media"
ttl = "1h"
[[origins.keys]]
service_account_file = "sa.json"
[[origins.keys]]
access_id = "GOOG1EXAMPLE"
secret = "s3cr3t-VALUE-that-must-never-print"

[[origins]]
name = "blobs"
kind = "azure"
account = "myaccount"
container = "media"
ttl = "1h"
[[origins.keys]]
account_key_env = "EDGESIGN_TEST_SECRET"
"#;

/// A base64 account key that decodes (not a real one).
const ACCOUNT_KEY: &str = "czNjcjN0LVZBTFVFLXRoYXQtbXVzdC1uZXZlci1wcmludA==";

fn service_account() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/gcs_dummy_service_account.json"),
    )
    .unwrap()
}

#[test]
fn gcs_and_azure_origins_pass() {
    let run = check(
        CLOUDS,
        &[("sa.json", &service_account())],
        &[("EDGESIGN_TEST_SECRET", ACCOUNT_KEY)],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("OK (2 origins, 0 routes)"),
        "{}",
        run.stdout
    );
}

#[test]
fn gcs_service_account_file_missing() {
    refused(
        CLOUDS,
        &[],
        &[("EDGESIGN_TEST_SECRET", ACCOUNT_KEY)],
        "origins[0].keys[0].service_account_file",
        "cannot read \"sa.json\" (no such file)",
    );
}

#[test]
fn gcs_service_account_file_not_a_key() {
    let broken = service_account().replace("BEGIN PRIVATE KEY", "BEGIN NOTHING");
    refused(
        CLOUDS,
        &[("sa.json", &broken)],
        &[("EDGESIGN_TEST_SECRET", ACCOUNT_KEY)],
        "origins[0].keys[0].service_account_file",
        "not a PKCS#8 PEM RSA key",
    );
    refused(
        CLOUDS,
        &[("sa.json", "{\"private_key\": \"\"}")],
        &[("EDGESIGN_TEST_SECRET", ACCOUNT_KEY)],
        "origins[0].keys[0].service_account_file",
        "no client_email",
    );
}

#[test]
fn gcs_key_that_is_neither_or_both() {
    let neither = CLOUDS.replace("service_account_file = \"sa.json\"", "");
    refused(
        &neither,
        &[],
        &[("EDGESIGN_TEST_SECRET", ACCOUNT_KEY)],
        "origins[0].keys[0].service_account_file",
        "missing",
    );
    let both = CLOUDS.replace(
        "service_account_file = \"sa.json\"",
        "service_account_file = \"sa.json\"\naccess_id = \"GOOG1X\"",
    );
    refused(
        &both,
        &[("sa.json", &service_account())],
        &[("EDGESIGN_TEST_SECRET", ACCOUNT_KEY)],
        "origins[0].keys[0].service_account_file",
        "not both",
    );
    let no_secret = CLOUDS.replace("secret = \"s3cr3t-VALUE-that-must-never-print\"", "");
    refused(
        &no_secret,
        &[("sa.json", &service_account())],
        &[("EDGESIGN_TEST_SECRET", ACCOUNT_KEY)],
        "origins[0].keys[1].secret",
        "missing",
    );
}

#[test]
fn gcs_ttl_over_seven_days() {
    refused(
        &CLOUDS.replacen("ttl = \"1h\"", "ttl = \"8d\"", 1),
        &[("sa.json", &service_account())],
        &[("EDGESIGN_TEST_SECRET", ACCOUNT_KEY)],
        "origins[0].ttl",
        "exceeds GCS's 7-day maximum",
    );
}

#[test]
fn azure_account_key_not_base64() {
    refused(
        CLOUDS,
        &[("sa.json", &service_account())],
        &[("EDGESIGN_TEST_SECRET", "s3cr3t-VALUE-that-must-never-print")],
        "origins[1].keys[0].account_key",
        "is not base64",
    );
}

#[test]
fn azure_unknown_sas_version() {
    let cfg = CLOUDS.replace(
        "container = \"media\"",
        "container = \"media\"\nsas_version = \"2026-01-01\"",
    );
    refused(
        &cfg,
        &[("sa.json", &service_account())],
        &[("EDGESIGN_TEST_SECRET", ACCOUNT_KEY)],
        "origins[1].sas_version",
        "\"2026-01-01\" is not a SAS version edgesign signs",
    );
}

#[test]
fn azure_account_and_container_named() {
    let cfg = CLOUDS.replace("account = \"myaccount\"", "account = \"My_Account\"");
    refused(
        &cfg,
        &[("sa.json", &service_account())],
        &[("EDGESIGN_TEST_SECRET", ACCOUNT_KEY)],
        "origins[1].account",
        "not a storage account name",
    );
    let cfg = CLOUDS.replace("container = \"media\"\n", "");
    refused(
        &cfg,
        &[("sa.json", &service_account())],
        &[("EDGESIGN_TEST_SECRET", ACCOUNT_KEY)],
        "origins[1].container",
        "missing",
    );
    let cfg = CLOUDS.replace(
        "container = \"media\"",
        "container = \"media\"\nregion = \"x\"",
    );
    refused(
        &cfg,
        &[("sa.json", &service_account())],
        &[("EDGESIGN_TEST_SECRET", ACCOUNT_KEY)],
        "origins[1].region",
        "not used by kind = \"azure\"",
    );
}

/// Every commented `[[origins]]` example in the shipped config.toml (S3, R2, MinIO, GCS,
/// Azure, CloudFront), uncommented as a user would, with its placeholders filled in, its
/// files present and its variables exported, passes `check`: the examples are not stale.
#[test]
fn the_shipped_commented_origin_examples_pass_when_uncommented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shipped = std::fs::read_to_string(root.join("config.toml")).unwrap();
    let mut examples = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in shipped.lines() {
        match (&mut current, line.strip_prefix("# ")) {
            (None, Some("[[origins]]")) => current = Some(vec!["[[origins]]"]),
            (Some(block), Some(rest)) => block.push(rest),
            (Some(_), None) => examples.push(current.take().unwrap().join("\n")),
            (None, _) => {}
        }
    }
    let kinds: Vec<String> = examples
        .iter()
        .map(|e| {
            let kind = e.lines().find(|l| l.starts_with("kind = ")).unwrap();
            let name = e.lines().find(|l| l.starts_with("name = ")).unwrap();
            format!("{name} {kind}")
        })
        .collect();
    for want in [
        "\"r2\"",
        "\"minio\"",
        "\"gcs\"",
        "\"azure\"",
        "\"cloudfront\"",
        "\"docs\"",
    ] {
        assert!(
            kinds.iter().any(|k| k.contains(want)),
            "no commented example for {want} in config.toml: {kinds:?}"
        );
    }
    let dir = tempdir();
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    std::fs::copy(
        root.join("tests/vectors/gcs_dummy_service_account.json"),
        dir.join("certs/gcs-sa.json"),
    )
    .unwrap();
    std::fs::copy(
        root.join("tests/vectors/cloudfront_test_key.pem"),
        dir.join("certs/cloudfront.pem"),
    )
    .unwrap();
    for example in &examples {
        let filled = example
            .replace("<account id>", "0123456789abcdef0123456789abcdef")
            .replace("<R2 access key id>", "R2ACCESSKEYID0123")
            .replace("<MinIO access key>", "MINIOACCESSKEY01");
        let config = format!(
            "[server]\nlisten = \"127.0.0.1:8080\"\npublic_url = \"http://127.0.0.1:8080\"\n\n{filled}\n"
        );
        let path = dir.join("example.toml");
        std::fs::write(&path, &config).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_edgesign"))
            .args(["check", "--config"])
            .arg(&path)
            .env(
                "DOCS_SECRET_ACCESS_KEY",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            )
            .env("R2_SECRET_ACCESS_KEY", "r2-secret")
            .env("MINIO_SECRET_KEY", "minio-secret")
            .env("AZURE_ACCOUNT_KEY", "YWNjb3VudC1rZXktb2YtdGhlLWV4YW1wbGU=")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "config.toml's example, uncommented, fails:\n{config}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The README's signed-cookie example (an HLS library behind a cookie route) passes `check`
/// as written, with its key file present; and the mistakes it warns about are refused,
/// naming the key.
#[test]
fn the_readme_cookie_example_passes_and_its_warnings_are_enforced() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let section = readme
        .split("## Protecting an HLS or DASH library with signed cookies")
        .nth(1)
        .expect("the README's cookie section");
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a toml block");
    let pem = std::fs::read_to_string(root.join("tests/vectors/cloudfront_test_key.pem")).unwrap();
    let config = example.replace("/etc/edgesign/cloudfront.pem", "cloudfront.pem");
    let run = check(&config, &[("cloudfront.pem", &pem)], &[]);
    assert_eq!(run.code, 0, "{}\n{config}", run.stderr);
    refused(
        &config.replace(
            "cookie_domain = \".example.com\"",
            "cookie_domain = \".other.org\"",
        ),
        &[("cloudfront.pem", &pem)],
        &[],
        "origins[0].cookie_domain",
        "is not under",
    );
    refused(
        &config.replace("cookie_domain = \".example.com\"", ""),
        &[("cloudfront.pem", &pem)],
        &[],
        "routes[0].mode",
        "set cookie_domain",
    );
    refused(
        &GOOD.replace("mode = \"redirect\"", "mode = \"cookie\""),
        &[],
        &[],
        "routes[0].mode",
        "cookie mode sets CloudFront signed cookies, but origin \"docs\" is kind = \"s3\"",
    );
}
