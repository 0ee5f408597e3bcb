//! Every CloudFront vector (botocore `CloudFrontSigner` and the AWS JS signer) reproduced
//! exactly: policy JSON, signature, signed URL; verified with the public key; and re-signed
//! with custom-policy conditions (wildcard `Resource`, `DateGreaterThan`, `IpAddress`) kept.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

mod support;

use edgesign::sign::Method;
use edgesign::sign::cloudfront::{self, HashAlgorithm, PolicyKind, PrivateKey, PublicKey};
use edgesign::sign::encoding::cloudfront_b64_encode;
use edgesign::sign::signer::{CloudFront, CloudFrontKey, Kind, Layout, OriginSigner, Scheme};
use edgesign::sign::url::RawUrl;
use support::vectors::{vector, vector_path};

const BOTO: &str = "cloudfront_signed_urls.json";
const JS: &str = "cloudfront_sha256_signed_urls.json";

fn read(name: &str) -> String {
    std::fs::read_to_string(vector_path(name)).unwrap()
}

fn keys(alg: &str) -> (PrivateKey, PublicKey) {
    if alg.starts_with("ecdsa") {
        (
            PrivateKey::from_pem(&read("cloudfront_test_ec_key.pem")).unwrap(),
            PublicKey::from_pem(&read("cloudfront_test_ec_key.pub.pem")).unwrap(),
        )
    } else {
        (
            PrivateKey::from_pem(&read("cloudfront_test_key.pem")).unwrap(),
            PublicKey::from_pem(&read("cloudfront_test_key.pub.pem")).unwrap(),
        )
    }
}

fn origin_for(url: &str, key_pair_id: &str, alg: &str, hash: HashAlgorithm) -> OriginSigner {
    let u = RawUrl::parse(url).unwrap();
    let (private, public) = keys(alg);
    OriginSigner {
        name: "cdn".into(),
        ttl: 3600,
        kind: Kind::CloudFront(CloudFront {
            layout: Layout::new(&u.origin(), "").unwrap(),
            endpoint: None,
            hash,
            keys: vec![CloudFrontKey {
                key_pair_id: key_pair_id.into(),
                private,
                public,
            }],
            cookie_domain: None,
        }),
    }
}

/// Verifies `signed_url` through an origin, re-signs it 1 day later, and checks that the
/// policy conditions other than the expiry are kept and the new URL verifies.
fn check_resign(origin: &OriginSigner, signed_url: &str, policy_json: &str) {
    let u = RawUrl::parse(signed_url).unwrap();
    let verified = origin.verify(&u, Method::Get, |_| None).expect("genuine");
    assert_eq!(verified.scheme, Scheme::CloudFront);
    let (_, before) = cloudfront::parse_policy(policy_json.as_bytes()).unwrap();
    assert_eq!(verified.expires_at, before.date_less_than);
    let at = before.date_less_than + 86_400;
    let fresh = origin.resign(&verified, at, 600).unwrap();
    assert_eq!(fresh.expires_at, at + 600);
    let fu = RawUrl::parse(&fresh.url).unwrap();
    let again = origin
        .verify(&fu, Method::Get, |_| None)
        .expect("re-signed URL is genuine");
    assert_eq!(again.expires_at, at + 600);
    assert_eq!(again.raw_key, verified.raw_key);
    let parsed = cloudfront::parse(fu.query).unwrap();
    let original = cloudfront::parse(u.query).unwrap();
    assert_eq!(parsed.params, original.params, "extra parameters kept");
    match parsed.policy {
        Some(p) => {
            let (_, after) = cloudfront::parse_policy(&p).unwrap();
            assert_eq!(after.resource, before.resource);
            assert_eq!(after.source_ip, before.source_ip);
            assert_eq!(after.date_greater_than, before.date_greater_than);
            assert_eq!(after.date_less_than, at + 600);
        }
        None => assert!(original.policy.is_none(), "canned stays canned"),
    }
}

fn check_boto(name: &str) {
    let v = vector(BOTO, name);
    let input = &v["input"];
    let expected = &v["expected"];
    let alg = input["alg"].as_str().unwrap();
    let hash = if alg.ends_with("sha256") {
        HashAlgorithm::Sha256
    } else {
        HashAlgorithm::Sha1
    };
    let url = input["url"].as_str().unwrap();
    let expires = input["date_less_than_epoch"].as_u64().unwrap();
    let policy = match input["kind"].as_str().unwrap() {
        "canned" => cloudfront::canned_policy(url, expires),
        _ => cloudfront::custom_policy(
            input["policy_resource"].as_str().unwrap(),
            expires,
            input["ip_address"].as_str(),
            input["date_greater_than_epoch"].as_u64(),
        ),
    };
    assert_eq!(
        policy,
        expected["policy_json"].as_str().unwrap(),
        "{name}: policy JSON"
    );
    if let Some(b64) = expected["policy_b64_cf"].as_str() {
        assert_eq!(
            cloudfront_b64_encode(policy.as_bytes()),
            b64,
            "{name}: policy base64"
        );
    }
    let (private, public) = keys(alg);
    let sig = private.sign(hash, policy.as_bytes()).unwrap();
    assert_eq!(
        cloudfront_b64_encode(&sig),
        expected["signature_b64_cf"].as_str().unwrap(),
        "{name}: signature"
    );
    assert!(public.verify(hash, policy.as_bytes(), &sig));
    let kind = match input["kind"].as_str().unwrap() {
        "canned" => PolicyKind::Canned { expires },
        _ => PolicyKind::Custom(policy.clone()),
    };
    let key_pair_id = input["key_pair_id"].as_str().unwrap();
    let signed = cloudfront::sign(url, &kind, &private, key_pair_id, hash).unwrap();
    assert_eq!(
        signed,
        expected["signed_url"].as_str().unwrap(),
        "{name}: signed URL"
    );
    let origin = origin_for(url, key_pair_id, alg, hash);
    check_resign(&origin, &signed, &policy);
}

fn check_js(name: &str) {
    let v = vector(JS, name);
    let input = &v["input"];
    let expected = &v["expected"];
    let policy = expected["policy_json"].as_str().unwrap();
    let (private, _) = keys("rsa");
    let sig = private
        .sign(HashAlgorithm::Sha256, policy.as_bytes())
        .unwrap();
    let js_url = expected["signed_url"].as_str().unwrap();
    let u = RawUrl::parse(js_url).unwrap();
    let parsed = cloudfront::parse(u.query).unwrap();
    assert_eq!(parsed.hash, HashAlgorithm::Sha256);
    assert_eq!(parsed.signature, sig, "{name}: signature");
    let url = input["url"].as_str().unwrap();
    let origin = origin_for(url, "K2JCJMDEHXQW5F", "rsa", HashAlgorithm::Sha256);
    // The JS SDK orders its parameters differently; order carries no meaning.
    check_resign(&origin, js_url, policy);
}

macro_rules! vector_test {
    ($fn:ident, $name:literal, js) => {
        #[test]
        fn $fn() {
            check_js($name);
        }
    };
    ($fn:ident, $name:literal) => {
        #[test]
        fn $fn() {
            check_boto($name);
        }
    };
}

vector_test!(canned_basic, "canned-basic");
vector_test!(canned_existing_query, "canned-existing-query");
vector_test!(canned_encoded_path, "canned-encoded-path");
vector_test!(canned_legacy_keypair_id, "canned-legacy-keypair-id");
vector_test!(canned_alt_domain_port, "canned-alt-domain-port");
vector_test!(custom_wildcard, "custom-wildcard");
vector_test!(custom_start_and_ip_cidr, "custom-start-and-ip-cidr");
vector_test!(custom_single_ip, "custom-single-ip");
vector_test!(
    custom_exact_resource_with_query,
    "custom-exact-resource-with-query"
);
vector_test!(custom_star_everything, "custom-star-everything");
vector_test!(canned_basic_rsa_sha256, "canned-basic-rsa-sha256");
vector_test!(
    custom_start_and_ip_cidr_rsa_sha256,
    "custom-start-and-ip-cidr-rsa-sha256"
);
vector_test!(canned_basic_ecdsa_sha1, "canned-basic-ecdsa-sha1");
vector_test!(custom_wildcard_ecdsa_sha1, "custom-wildcard-ecdsa-sha1");
vector_test!(canned_basic_ecdsa_sha256, "canned-basic-ecdsa-sha256");
vector_test!(
    custom_start_and_ip_cidr_ecdsa_sha256,
    "custom-start-and-ip-cidr-ecdsa-sha256"
);
vector_test!(sha256_canned, "sha256-canned", js);
vector_test!(sha256_custom_wildcard, "sha256-custom-wildcard", js);
vector_test!(sha256_custom_params, "sha256-custom-params", js);

#[test]
fn every_vector_has_a_named_test() {
    let covered = support::vectors::covered_names(include_str!("cloudfront_vectors.rs"));
    for name in support::vectors::vector_names(BOTO)
        .into_iter()
        .chain(support::vectors::vector_names(JS))
    {
        assert!(covered.contains(&name), "vector {name} has no named test");
    }
}

#[test]
fn a_wildcard_policy_does_not_cover_other_paths() {
    let v = vector(BOTO, "custom-wildcard");
    let url = v["expected"]["signed_url"].as_str().unwrap();
    let moved = url.replace("/videos/a.mp4", "/private/a.mp4");
    let origin = origin_for(url, "K2JCJMDEHXQW5F", "rsa", HashAlgorithm::Sha1);
    let err = origin
        .verify(&RawUrl::parse(&moved).unwrap(), Method::Get, |_| None)
        .unwrap_err();
    assert!(
        matches!(err, edgesign::sign::Error::InvalidSignature(_)),
        "{err:?}"
    );
}

#[test]
fn a_canned_url_cannot_be_moved_or_extended() {
    let v = vector(BOTO, "canned-basic");
    let url = v["expected"]["signed_url"].as_str().unwrap();
    let origin = origin_for(url, "K2JCJMDEHXQW5F", "rsa", HashAlgorithm::Sha1);
    for forged in [
        url.replace("image.jpg", "image.png"),
        url.replace("Expires=1893456000", "Expires=1893456001"),
        url.replace("?Expires", "?extra=1&Expires"),
        url.replace("Key-Pair-Id=K2JCJMDEHXQW5F", "Key-Pair-Id=K2JCJMDEHXQW5G"),
    ] {
        assert!(
            origin
                .verify(&RawUrl::parse(&forged).unwrap(), Method::Get, |_| None)
                .is_err(),
            "{forged}"
        );
    }
}

#[test]
fn ecdsa_signatures_are_deterministic() {
    let (private, _) = keys("ecdsa");
    let a = private.sign(HashAlgorithm::Sha256, b"policy").unwrap();
    let b = private.sign(HashAlgorithm::Sha256, b"policy").unwrap();
    assert_eq!(a, b, "RFC 6979 keeps URLs cache-stable");
}
