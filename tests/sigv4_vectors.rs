//! Every botocore SigV4 presign vector (tests/vectors/sigv4_presign.json) reproduced byte for
//! byte, stage by stage: canonical request, string to sign, signature, URL. One named test
//! per vector, so a failure says which case and which stage diverged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

mod support;

use edgesign::sign::encoding::{encode_key, uri_encode};
use edgesign::sign::signer::SignSpec;
use edgesign::sign::sigv4::{self, AuthParams, Request};
use edgesign::sign::url::RawUrl;
use edgesign::sign::{Method, Window};
use serde_json::Value;
use support::vectors::{amz, s3_origin, vector};

const FILE: &str = "sigv4_presign.json";

/// boto3 parameter names → S3 wire names; values encoded as botocore serialises them.
fn wire_params(params: &Value) -> (Vec<String>, Vec<(String, String)>) {
    let mut query = Vec::new();
    let mut headers = Vec::new();
    for (name, value) in params.as_object().expect("params") {
        let value = value.as_str().expect("string param");
        let wire = match name.as_str() {
            "Range" => {
                headers.push(("range".to_owned(), value.to_owned()));
                continue;
            }
            "VersionId" => "versionId".to_owned(),
            "ResponseExpires" => {
                // botocore serialises the timestamp as an IMF-fixdate.
                let t = httpdate::fmt_http_date(humantime::parse_rfc3339(value).expect("rfc3339"));
                query.push(format!(
                    "response-expires={}",
                    uri_encode(t.as_bytes(), false)
                ));
                continue;
            }
            other => {
                let rest = other.strip_prefix("Response").expect("known param");
                let mut kebab = String::from("response");
                for c in rest.chars() {
                    if c.is_ascii_uppercase() {
                        kebab.push('-');
                    }
                    kebab.push(c.to_ascii_lowercase());
                }
                kebab
            }
        };
        query.push(format!("{wire}={}", uri_encode(value.as_bytes(), false)));
    }
    (query, headers)
}

fn check(name: &str) {
    let v = vector(FILE, name);
    let input = &v["input"];
    let expected = &v["expected"];
    let origin = s3_origin(input);
    let layout = origin.layout().clone();
    let raw_key = encode_key(input["key"].as_str().unwrap());
    let path = layout.path_of(&raw_key);
    let (params, headers) = wire_params(&input["params"]);
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let method = Method::parse(input["method"].as_str().unwrap()).unwrap();
    let signed_at = amz(input["timestamp"].as_str().unwrap());
    let expires_in = input["expires_in"].as_u64().unwrap();
    let region = input["region"].as_str().unwrap();
    let req = Request {
        method,
        host: &layout.signing_host,
        path: &path,
        params: &params,
        headers: &headers,
        region,
        signed_at,
        expires_in,
    };
    let token = input["session_token"].as_str();
    let auth = AuthParams::new(&req, input["access_key_id"].as_str().unwrap(), token);

    // Stage 1: canonical request.
    let mut all_headers = vec![("host", layout.signing_host.as_str())];
    all_headers.extend(headers.iter().copied());
    all_headers.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let auth_pairs = [
        ("X-Amz-Algorithm", sigv4::ALGORITHM),
        ("X-Amz-Credential", auth.credential.as_str()),
        ("X-Amz-Date", auth.date.as_str()),
        ("X-Amz-Expires", auth.expires.as_str()),
        ("X-Amz-SignedHeaders", auth.signed_headers.as_str()),
    ];
    let token_pair = auth
        .security_token
        .as_deref()
        .map(|t| ("X-Amz-Security-Token", t));
    let query = params
        .iter()
        .map(|p| p.split_once('=').unwrap())
        .chain(auth_pairs)
        .chain(token_pair);
    let creq = sigv4::canonical_request(method, &path, query, &all_headers);
    assert_eq!(
        creq,
        expected["canonical_request"].as_str().unwrap(),
        "{name}: canonical request"
    );

    // Stage 2: string to sign.
    let sts = sigv4::string_to_sign(&auth.date, region, &creq);
    assert_eq!(
        sts,
        expected["string_to_sign"].as_str().unwrap(),
        "{name}: string to sign"
    );

    // Stage 3 + 4: derived key and signature.
    let key = sigv4::derive_signing_key(
        input["secret_access_key"].as_str().unwrap(),
        &auth.date.as_bytes()[..8],
        region,
        "s3",
    );
    let mac = <hmac::Hmac<sha2::Sha256> as hmac::Mac>::new_from_slice(&key).unwrap();
    let sig = sigv4::signature(mac, &sts);
    assert_eq!(
        std::str::from_utf8(&sig).unwrap(),
        expected["signature"].as_str().unwrap(),
        "{name}: signature"
    );

    // The whole URL, through the presigner (with its signing-key cache).
    let edgesign::sign::signer::Kind::S3(s3) = &origin.kind else {
        unreachable!()
    };
    let presigned = sigv4::presign(&req, &s3.keys[0]);
    let url = format!(
        "{}{}?{}",
        layout.base().trim_end_matches('/'),
        path.strip_prefix(&layout.path_prefix).unwrap(),
        presigned.query
    );
    assert_eq!(url, expected["url"].as_str().unwrap(), "{name}: URL");

    // And through the origin signer, where no header is signed.
    if headers.is_empty() {
        let signed = origin
            .sign(&SignSpec {
                raw_key: &raw_key,
                method,
                params: &params,
                signed_at,
                lifetime: expires_in,
            })
            .unwrap();
        assert_eq!(
            signed.url,
            expected["url"].as_str().unwrap(),
            "{name}: origin URL"
        );
        assert_eq!(signed.expires_at, signed_at + expires_in);
    }

    // The URL verifies, with the request's signed headers, and names the same key.
    let parsed_url = RawUrl::parse(expected["url"].as_str().unwrap()).unwrap();
    let lookup = |n: &str| headers.iter().find(|(h, _)| *h == n).map(|(_, v)| *v);
    let verified = origin.verify(&parsed_url, method, lookup).expect("genuine");
    assert_eq!(verified.raw_key, raw_key);
    assert_eq!(verified.expires_at, signed_at + expires_in);
    // A different method is a different signature.
    let other = if method == Method::Get {
        Method::Head
    } else {
        Method::Get
    };
    assert!(
        origin.verify(&parsed_url, other, lookup).is_err(),
        "{name}: method is signed"
    );
    // Bucketing never changes an exact-instant signature: the vector time is its own window.
    assert_eq!(
        Window::at(signed_at, 1, expires_in.max(2)).signed_at,
        signed_at
    );
}

macro_rules! vector_test {
    ($fn:ident, $name:literal) => {
        #[test]
        fn $fn() {
            check($name);
        }
    };
}

vector_test!(aws_doc_example, "aws-doc-example");
vector_test!(local_path_style, "local-path-style");
vector_test!(local_virtual_host, "local-virtual-host");
vector_test!(aws_regional_virtual, "aws-regional-virtual");
vector_test!(aws_regional_path, "aws-regional-path");
vector_test!(
    aws_explicit_endpoint_virtual,
    "aws-explicit-endpoint-virtual"
);
vector_test!(
    dotted_bucket_virtual_falls_back,
    "dotted-bucket-virtual-falls-back"
);
vector_test!(key_space, "key-space");
vector_test!(key_plus_equals_amp, "key-plus-equals-amp");
vector_test!(key_unicode, "key-unicode");
vector_test!(key_emoji, "key-emoji");
vector_test!(key_rfc3986_reserved, "key-rfc3986-reserved");
vector_test!(key_unreserved, "key-unreserved");
vector_test!(key_literal_percent, "key-literal-percent");
vector_test!(key_question_hash, "key-question-hash");
vector_test!(
    key_double_slash_no_normalize,
    "key-double-slash-no-normalize"
);
vector_test!(key_leading_slash, "key-leading-slash");
vector_test!(key_trailing_slash, "key-trailing-slash");
vector_test!(key_tilde_caret_backtick, "key-tilde-caret-backtick");
vector_test!(response_content_disposition, "response-content-disposition");
vector_test!(response_overrides_all, "response-overrides-all");
vector_test!(version_id, "version-id");
vector_test!(range_param, "range-param");
vector_test!(session_token, "session-token");
vector_test!(session_token_local, "session-token-local");
vector_test!(expires_1s, "expires-1s");
vector_test!(expires_max_7d, "expires-max-7d");
vector_test!(head_object, "head-object");
vector_test!(endpoint_default_https_port, "endpoint-default-https-port");
vector_test!(endpoint_explicit_443, "endpoint-explicit-443");
vector_test!(endpoint_explicit_80, "endpoint-explicit-80");
vector_test!(
    region_ap_southeast_2_midnight,
    "region-ap-southeast-2-midnight"
);
vector_test!(secret_with_plus_slash, "secret-with-plus-slash");

#[test]
fn every_vector_has_a_named_test() {
    let covered = support::vectors::covered_names(include_str!("sigv4_vectors.rs"));
    for name in support::vectors::vector_names(FILE) {
        assert!(covered.contains(&name), "vector {name} has no named test");
    }
}

#[test]
fn expires_outside_one_to_seven_days_is_refused() {
    let v = vector(FILE, "expires-max-7d");
    let url = v["expected"]["url"].as_str().unwrap();
    for bad in [
        "X-Amz-Expires=604801",
        "X-Amz-Expires=0",
        "X-Amz-Expires=-1",
        "X-Amz-Expires=1e3",
    ] {
        let forged = url.replace("X-Amz-Expires=604800", bad);
        let u = RawUrl::parse(&forged).unwrap();
        assert!(sigv4::parse(u.query).is_err(), "{bad} accepted");
    }
}

#[test]
fn region_is_enforced_even_though_s3s_does_not() {
    let v = vector(FILE, "local-path-style");
    let mut input = v["input"].clone();
    input["region"] = "eu-west-1".into();
    let origin = s3_origin(&input);
    let u = RawUrl::parse(v["expected"]["url"].as_str().unwrap()).unwrap();
    let err = origin.verify(&u, Method::Get, |_| None).unwrap_err();
    assert!(
        matches!(err, edgesign::sign::Error::InvalidSignature(_)),
        "{err:?}"
    );
}
