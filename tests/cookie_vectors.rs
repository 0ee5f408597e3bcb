//! CloudFront signed-cookie vectors (tests/vectors/cloudfront_signed_cookies.json: botocore's
//! `CloudFrontSigner` policies and signatures, cross-checked there against the AWS JS SDK's
//! `getSignedCookies`) reproduced byte for byte by edgesign's cookie signer, for RSA and
//! ECDSA, SHA-1 and SHA-256, canned and custom; verified through an origin with the public
//! key against URLs the policy covers (and not against one it does not); renewed with every
//! condition but the expiry kept.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

mod support;

use edgesign::sign::cloudfront::{self, HashAlgorithm, PolicyKind, PrivateKey, PublicKey};
use edgesign::sign::cookies::{self, CookieSet};
use edgesign::sign::signer::{CloudFront, CloudFrontKey, Kind, Layout, OriginSigner};
use edgesign::sign::url::RawUrl;
use serde_json::Value;
use support::vectors::vector_path;

const FILE: &str = "cloudfront_signed_cookies.json";

fn read(name: &str) -> String {
    std::fs::read_to_string(vector_path(name)).unwrap()
}

fn origin_for(resource: &str, alg: &str, key_pair_id: &str) -> OriginSigner {
    let u = RawUrl::parse(resource).unwrap();
    let (private, public) = if alg.starts_with("ecdsa") {
        (
            PrivateKey::from_pem(&read("cloudfront_test_ec_key.pem")).unwrap(),
            PublicKey::from_pem(&read("cloudfront_test_ec_key.pub.pem")).unwrap(),
        )
    } else {
        (
            PrivateKey::from_pem(&read("cloudfront_test_key.pem")).unwrap(),
            PublicKey::from_pem(&read("cloudfront_test_key.pub.pem")).unwrap(),
        )
    };
    OriginSigner {
        name: "cdn".into(),
        ttl: 3600,
        kind: Kind::CloudFront(CloudFront {
            layout: Layout::new(&u.origin(), "").unwrap(),
            endpoint: None,
            hash: if alg.ends_with("sha256") {
                HashAlgorithm::Sha256
            } else {
                HashAlgorithm::Sha1
            },
            keys: vec![CloudFrontKey {
                key_pair_id: key_pair_id.into(),
                private,
                public,
            }],
            cookie_domain: None,
        }),
    }
}

/// The vector's cookies as a request would send them.
fn cookie_header(expected: &Value) -> String {
    expected["cookies"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(n, v)| format!("{n}={}", v.as_str().unwrap()))
        .collect::<Vec<_>>()
        .join("; ")
}

fn check(v: &Value) {
    let name = v["name"].as_str().unwrap();
    let input = &v["input"];
    let expected = &v["expected"];
    let alg = input["alg"].as_str().unwrap();
    let resource = input["policy_resource"].as_str().unwrap();
    let dlt = input["date_less_than_epoch"].as_u64().unwrap();
    let key_pair_id = input["key_pair_id"].as_str().unwrap();
    let origin = origin_for(resource, alg, key_pair_id);
    let Kind::CloudFront(cf) = &origin.kind else {
        unreachable!()
    };

    // The policy, byte for byte, and the cookies signed over it.
    let (policy, json) = match input["kind"].as_str().unwrap() {
        "custom" => {
            let json = cloudfront::custom_policy(
                resource,
                dlt,
                input["ip_address"].as_str(),
                input["date_greater_than_epoch"].as_u64(),
            );
            (PolicyKind::Custom(json.clone()), json)
        }
        _ => (
            PolicyKind::Canned { expires: dlt },
            cloudfront::canned_policy(resource, dlt),
        ),
    };
    assert_eq!(
        json,
        expected["policy_json"].as_str().unwrap(),
        "{name}: policy"
    );
    let set = cookies::sign(&policy, resource, &cf.keys[0].private, key_pair_id, cf.hash).unwrap();
    let ours: Vec<(String, String)> = set
        .pairs()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let want: Vec<(String, String)> = expected["cookies"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(n, v)| (n.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let mut sorted = ours.clone();
    sorted.sort();
    let mut want_sorted = want.clone();
    want_sorted.sort();
    assert_eq!(sorted, want_sorted, "{name}: cookies");
    if !alg.starts_with("ecdsa") {
        assert_eq!(
            v["cross_check"]["js_sdk_same_cookies"], true,
            "{name}: the AWS JS SDK set the same cookies"
        );
    }

    // Verified through the origin, with the public key, for a URL the policy covers.
    let covered = resource.replace('*', "seg-001.ts");
    let sent = cookie_header(expected);
    let parsed = cookies::parse([sent.as_str()]).unwrap().unwrap();
    let url = RawUrl::parse(&covered).unwrap();
    let verified = origin
        .verify_cookies(&url, &parsed)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(verified.expires_at, dlt, "{name}");
    assert_eq!(
        verified.valid_from,
        input["date_greater_than_epoch"].as_u64(),
        "{name}"
    );
    // Not for a URL outside it.
    let outside_text = format!("{}/elsewhere/x.ts", url.origin());
    let outside = RawUrl::parse(&outside_text).unwrap();
    assert!(
        origin.verify_cookies(&outside, &parsed).is_err(),
        "{name}: outside"
    );
    // Not with one byte of the policy or the expiry changed.
    let tampered = match input["kind"].as_str().unwrap() {
        "custom" => sent.replace(
            &format!(
                "CloudFront-Policy={}",
                expected["cookies"]["CloudFront-Policy"].as_str().unwrap()
            ),
            &format!(
                "CloudFront-Policy={}",
                edgesign::sign::encoding::cloudfront_b64_encode(
                    json.replace(&dlt.to_string(), &(dlt + 1).to_string())
                        .as_bytes()
                )
            ),
        ),
        _ => sent.replace(&dlt.to_string(), &(dlt + 1).to_string()),
    };
    assert_ne!(tampered, sent);
    let tampered = cookies::parse([tampered.as_str()]).unwrap().unwrap();
    assert!(
        origin.verify_cookies(&url, &tampered).is_err(),
        "{name}: tampered"
    );

    // Renewed a day later: everything but DateLessThan kept, and it verifies.
    let renewed = origin
        .resign_cookies(&verified, dlt + 86_400, 3600)
        .unwrap();
    assert_eq!(renewed.expires_at, dlt + 86_400 + 3600);
    let header = renewed.cookies.header();
    let again = cookies::parse([header.as_str()]).unwrap().unwrap();
    let v2 = origin.verify_cookies(&url, &again).unwrap();
    assert_eq!(v2.expires_at, dlt + 86_400 + 3600, "{name}");
    assert_eq!(v2.valid_from, verified.valid_from, "{name}");
    assert_eq!(v2.source_ip, verified.source_ip, "{name}");
    assert_eq!(v2.resource, verified.resource, "{name}");
    if let Some(p) = renewed.cookies.get(cookies::POLICY) {
        let json2 =
            String::from_utf8(edgesign::sign::encoding::cloudfront_b64_decode(p).unwrap()).unwrap();
        assert_eq!(
            json2,
            json.replace(&dlt.to_string(), &(dlt + 86_400 + 3600).to_string()),
            "{name}: key order and every other byte kept"
        );
    }
    assert_eq!(CookieSet::from_header(&header), renewed.cookies);
}

#[test]
fn every_cookie_vector_is_reproduced_verified_and_renewed() {
    let doc: Value = serde_json::from_str(&read(FILE)).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 14);
    for v in vectors {
        check(v);
    }
}

/// A fresh directory grant is botocore's custom policy over `https://<domain>/<dir>*`.
#[test]
fn a_directory_grant_is_the_vector_s_policy() {
    let doc: Value = serde_json::from_str(&read(FILE)).unwrap();
    let v = doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "rsa-sha1-custom-dlt")
        .unwrap()
        .clone();
    let origin = origin_for(
        "https://d111111abcdef8.cloudfront.net/",
        "rsa-sha1",
        "K2JCJMDEHXQW5F",
    );
    let dlt = v["input"]["date_less_than_epoch"].as_u64().unwrap();
    let minted = origin
        .sign_cookies("videos/ep1/", dlt - 3600, 3600)
        .unwrap();
    assert_eq!(
        minted.resource,
        "https://d111111abcdef8.cloudfront.net/videos/ep1/*"
    );
    let mut ours: Vec<String> = minted
        .cookies
        .pairs()
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    ours.sort();
    let mut want: Vec<String> = cookie_header(&v["expected"])
        .split("; ")
        .map(str::to_owned)
        .collect();
    want.sort();
    assert_eq!(ours, want, "the same three cookies");
    let names: Vec<&str> = minted.cookies.pairs().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "CloudFront-Policy",
            "CloudFront-Signature",
            "CloudFront-Key-Pair-Id"
        ],
        "set in the order CloudFront's guide lists them"
    );
}
