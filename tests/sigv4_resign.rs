//! Exact re-signing, proven against botocore: every URL the AWS JS SDK mints by default
//! (tests/vectors/sigv4_presign_js_defaults.json) verifies, and every GET URL of both vector
//! files re-signs at another instant to exactly what botocore makes of it from the URL alone
//! (tests/vectors/sigv4_resign_botocore.json): raw path, host, and every extra parameter kept.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

mod support;

use edgesign::sign::Method;
use edgesign::sign::url::RawUrl;
use support::vectors::{amz, s3_origin, vector};

const JS: &str = "sigv4_presign_js_defaults.json";
const RESIGN: &str = "sigv4_resign_botocore.json";

fn js_verifies(name: &str) {
    let v = vector(JS, name);
    let origin = s3_origin(&v["input"]);
    let url = v["expected"]["url"].as_str().unwrap();
    let u = RawUrl::parse(url).unwrap();
    let method = Method::parse(v["input"]["method"].as_str().unwrap()).unwrap();
    let verified = origin
        .verify(&u, method, |_| None)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(verified.expires_at, amz("20130524T000000Z") + 3600);
    // One flipped hex digit of the signature is refused.
    let sig = v["expected"]["signature"].as_str().unwrap();
    let flipped = format!(
        "{}{}",
        if sig.starts_with('0') { '1' } else { '0' },
        &sig[1..]
    );
    let tampered = url.replace(sig, &flipped);
    assert!(
        origin
            .verify(&RawUrl::parse(&tampered).unwrap(), method, |_| None)
            .is_err()
    );
}

fn resigns_like_botocore(name: &str) {
    let r = vector(RESIGN, name);
    let (file, source) = name.split_once('/').unwrap();
    let source = vector(&format!("{file}.json"), source);
    let origin = s3_origin(&source["input"]);
    let url = r["source_url"].as_str().unwrap();
    let u = RawUrl::parse(url).unwrap();
    let headers: Vec<(String, String)> = r["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap().to_owned()))
        .collect();
    let lookup = |n: &str| {
        headers
            .iter()
            .find(|(h, _)| h == n)
            .map(|(_, v)| v.as_str())
    };
    let verified = origin
        .verify(&u, Method::Get, lookup)
        .expect("source URL is genuine");
    let at = amz(r["at"].as_str().unwrap());
    let expires_in = r["expires_in"].as_u64().unwrap();
    let fresh = origin.resign(&verified, at, expires_in).unwrap();
    assert_eq!(
        fresh.url,
        r["expected_url"].as_str().unwrap(),
        "{name}: re-signed URL"
    );
    assert_eq!(fresh.expires_at, at + expires_in);
    // The fresh URL is itself genuine under the same origin.
    let again = RawUrl::parse(&fresh.url).unwrap();
    assert!(origin.verify(&again, Method::Get, lookup).is_ok());
}

macro_rules! vector_test {
    ($fn:ident, $name:literal, js) => {
        #[test]
        fn $fn() {
            js_verifies($name);
        }
    };
    ($fn:ident, $name:literal) => {
        #[test]
        fn $fn() {
            resigns_like_botocore($name);
        }
    };
}

vector_test!(
    js_default_local_path_style,
    "js-default-local-path-style",
    js
);
vector_test!(
    js_default_local_virtual_host,
    "js-default-local-virtual-host",
    js
);
vector_test!(js_default_key_unicode, "js-default-key-unicode", js);
vector_test!(
    js_default_key_rfc3986_reserved,
    "js-default-key-rfc3986-reserved",
    js
);
vector_test!(
    js_default_response_content_disposition,
    "js-default-response-content-disposition",
    js
);
vector_test!(js_default_version_id, "js-default-version-id", js);
vector_test!(
    js_default_session_token_local,
    "js-default-session-token-local",
    js
);
vector_test!(js_default_head_object, "js-default-head-object", js);

vector_test!(resign_aws_doc_example, "sigv4_presign/aws-doc-example");
vector_test!(resign_local_path_style, "sigv4_presign/local-path-style");
vector_test!(
    resign_local_virtual_host,
    "sigv4_presign/local-virtual-host"
);
vector_test!(
    resign_aws_regional_virtual,
    "sigv4_presign/aws-regional-virtual"
);
vector_test!(resign_aws_regional_path, "sigv4_presign/aws-regional-path");
vector_test!(
    resign_aws_explicit_endpoint_virtual,
    "sigv4_presign/aws-explicit-endpoint-virtual"
);
vector_test!(
    resign_dotted_bucket,
    "sigv4_presign/dotted-bucket-virtual-falls-back"
);
vector_test!(resign_key_space, "sigv4_presign/key-space");
vector_test!(
    resign_key_plus_equals_amp,
    "sigv4_presign/key-plus-equals-amp"
);
vector_test!(resign_key_unicode, "sigv4_presign/key-unicode");
vector_test!(resign_key_emoji, "sigv4_presign/key-emoji");
vector_test!(
    resign_key_rfc3986_reserved,
    "sigv4_presign/key-rfc3986-reserved"
);
vector_test!(resign_key_unreserved, "sigv4_presign/key-unreserved");
vector_test!(
    resign_key_literal_percent,
    "sigv4_presign/key-literal-percent"
);
vector_test!(resign_key_question_hash, "sigv4_presign/key-question-hash");
vector_test!(
    resign_key_double_slash,
    "sigv4_presign/key-double-slash-no-normalize"
);
vector_test!(resign_key_leading_slash, "sigv4_presign/key-leading-slash");
vector_test!(
    resign_key_trailing_slash,
    "sigv4_presign/key-trailing-slash"
);
vector_test!(
    resign_key_tilde_caret_backtick,
    "sigv4_presign/key-tilde-caret-backtick"
);
vector_test!(
    resign_response_content_disposition,
    "sigv4_presign/response-content-disposition"
);
vector_test!(
    resign_response_overrides_all,
    "sigv4_presign/response-overrides-all"
);
vector_test!(resign_version_id, "sigv4_presign/version-id");
vector_test!(resign_range_param, "sigv4_presign/range-param");
vector_test!(resign_session_token, "sigv4_presign/session-token");
vector_test!(
    resign_session_token_local,
    "sigv4_presign/session-token-local"
);
vector_test!(resign_expires_1s, "sigv4_presign/expires-1s");
vector_test!(resign_expires_max_7d, "sigv4_presign/expires-max-7d");
vector_test!(
    resign_endpoint_default_https_port,
    "sigv4_presign/endpoint-default-https-port"
);
vector_test!(
    resign_endpoint_explicit_443,
    "sigv4_presign/endpoint-explicit-443"
);
vector_test!(
    resign_endpoint_explicit_80,
    "sigv4_presign/endpoint-explicit-80"
);
vector_test!(
    resign_region_ap_southeast_2,
    "sigv4_presign/region-ap-southeast-2-midnight"
);
vector_test!(
    resign_secret_with_plus_slash,
    "sigv4_presign/secret-with-plus-slash"
);
vector_test!(
    resign_js_local_path_style,
    "sigv4_presign_js_defaults/js-default-local-path-style"
);
vector_test!(
    resign_js_local_virtual_host,
    "sigv4_presign_js_defaults/js-default-local-virtual-host"
);
vector_test!(
    resign_js_key_unicode,
    "sigv4_presign_js_defaults/js-default-key-unicode"
);
vector_test!(
    resign_js_key_rfc3986_reserved,
    "sigv4_presign_js_defaults/js-default-key-rfc3986-reserved"
);
vector_test!(
    resign_js_response_content_disposition,
    "sigv4_presign_js_defaults/js-default-response-content-disposition"
);
vector_test!(
    resign_js_version_id,
    "sigv4_presign_js_defaults/js-default-version-id"
);
vector_test!(
    resign_js_session_token_local,
    "sigv4_presign_js_defaults/js-default-session-token-local"
);

#[test]
fn every_vector_has_a_named_test() {
    let covered = support::vectors::covered_names(include_str!("sigv4_resign.rs"));
    for name in support::vectors::vector_names(JS)
        .into_iter()
        .chain(support::vectors::vector_names(RESIGN))
    {
        assert!(covered.contains(&name), "vector {name} has no named test");
    }
}
