//! Invariants over arbitrary input (proptest):
//! - sign → verify holds for any object key (unicode, `+`, `%`, spaces, `=`, `&`, dot
//!   segments, double slashes) and any `response-*` override, for all three schemes;
//! - any single-character tamper of the signature, the expiry, the key or a parameter fails;
//! - detection never panics on any string;
//! - time bucketing keeps its guarantee at every instant;
//! - encodings round-trip.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

mod support;

use edgesign::secret::Secret;
use edgesign::sign::cloudfront::{HashAlgorithm, PrivateKey};
use edgesign::sign::detect::inspect;
use edgesign::sign::encoding::{
    cloudfront_b64_decode, cloudfront_b64_encode, encode_key, percent_decode, uri_encode,
};
use edgesign::sign::native::NativeKey;
use edgesign::sign::signer::{
    self, CloudFront, CloudFrontKey, Kind, Layout, Local, OriginSigner, S3, SignSpec,
};
use edgesign::sign::sigv4::Credentials;
use edgesign::sign::url::RawUrl;
use edgesign::sign::{Method, Window};
use proptest::prelude::*;

fn s3_origin() -> OriginSigner {
    OriginSigner {
        name: "s3".into(),
        ttl: 3600,
        kind: Kind::S3(S3 {
            layout: signer::s3_layout(Some("http://127.0.0.1:9000"), "us-east-1", "bucket", true)
                .unwrap(),
            region: "us-east-1".into(),
            bucket: "bucket".into(),
            keys: vec![
                Credentials::new("AKIDNEW", Secret::new("new+secret/=="), None, None),
                Credentials::new(
                    "AKIDOLD",
                    Secret::new("old secret"),
                    Some(Secret::new("tok/+=")),
                    None,
                ),
            ],
        }),
    }
}

fn cf_origin() -> OriginSigner {
    let pem = std::fs::read_to_string(support::vectors::vector_path("cloudfront_test_ec_key.pem"))
        .unwrap();
    let private = PrivateKey::from_pem(&pem).unwrap();
    let public = private.public_key();
    OriginSigner {
        name: "cdn".into(),
        ttl: 3600,
        kind: Kind::CloudFront(CloudFront {
            layout: Layout::new("https://d111111abcdef8.cloudfront.net", "").unwrap(),
            endpoint: None,
            hash: HashAlgorithm::Sha256,
            keys: vec![CloudFrontKey {
                key_pair_id: "K2JCJMDEHXQW5F".into(),
                private,
                public,
            }],
            cookie_domain: None,
        }),
    }
}

fn local_origin() -> OriginSigner {
    OriginSigner {
        name: "demo".into(),
        ttl: 3600,
        kind: Kind::Local(Local {
            layout: Layout::new("http://127.0.0.1:8080", "/_origin/demo").unwrap(),
            root: std::env::temp_dir(),
            keys: vec![
                NativeKey {
                    key_id: "k2".into(),
                    secret: Secret::new("second-key-0123456789abcdef"),
                },
                NativeKey {
                    key_id: "k1".into(),
                    secret: Secret::new("first-key-0123456789abcdef"),
                },
            ],
        }),
    }
}

/// Keys full of the characters that break naive signers.
fn tricky_key() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "a", "Z", "0", " ", "+", "%", "%2F", "%25", "=", "&", "?", "#", "/", "//", "./", "../",
        "~", "ü", "文", "😀", "'", "\"", "\\", "^", ";", ":", "@", "[", "]", "!", "*",
    ]);
    prop::collection::vec(
        prop_oneof![atoms.prop_map(str::to_owned), "[a-z0-9._-]{1,6}"],
        1..12,
    )
    .prop_map(|parts| parts.concat())
    .prop_filter("not empty", |k| !k.is_empty())
}

fn overrides() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        (
            prop::sample::select(vec![
                "response-content-disposition",
                "response-content-type",
                "response-cache-control",
                "versionId",
            ]),
            ".{0,24}",
        )
            .prop_map(|(k, v)| format!("{k}={}", uri_encode(v.as_bytes(), false))),
        0..3,
    )
}

fn sign(origin: &OriginSigner, key: &str, params: &[String], at: u64) -> (String, String) {
    let raw_key = encode_key(key);
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    let signed = origin
        .sign(&SignSpec {
            raw_key: &raw_key,
            method: Method::Get,
            params: &params,
            signed_at: at,
            lifetime: 900,
        })
        .unwrap();
    assert_eq!(signed.expires_at, at + 900);
    (raw_key, signed.url)
}

fn verifies(origin: &OriginSigner, url: &str) -> bool {
    RawUrl::parse(url).is_ok_and(|u| origin.verify(&u, Method::Get, |_| None).is_ok())
}

/// Replaces the alphanumeric character at `pick` (mod the candidates) inside `range` of `url`
/// with a different one; positions inside `%XX` escapes are skipped, since `%2f` and `%2F`
/// mean the same bytes.
fn tamper(url: &str, range: std::ops::Range<usize>, pick: usize) -> Option<String> {
    let bytes = url.as_bytes();
    let mut candidates = Vec::new();
    let mut i = range.start;
    while i < range.end {
        if bytes[i] == b'%' {
            i += 3;
            continue;
        }
        if bytes[i].is_ascii_alphanumeric() {
            candidates.push(i);
        }
        i += 1;
    }
    let at = *candidates.get(pick % candidates.len().max(1))?;
    let old = bytes[at];
    let new = match old {
        b'0'..=b'8' => old + 1,
        b'9' => b'0',
        b'a'..=b'y' | b'A'..=b'Y' => old + 1,
        _ => old - 1,
    };
    let mut out = bytes.to_vec();
    out[at] = new;
    String::from_utf8(out).ok()
}

fn value_range(url: &str, name: &str) -> Option<std::ops::Range<usize>> {
    let q = url.find('?')?;
    let mut start = q + 1;
    for seg in url[q + 1..].split('&') {
        if let Some(v) = seg.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
            let s = start + name.len() + 1;
            return Some(s..s + v.len());
        }
        start += seg.len() + 1;
    }
    None
}

fn check_all_tampers(
    origin: &OriginSigner,
    url: &str,
    raw_key: &str,
    sig: &str,
    exp: &str,
    pick: usize,
) {
    assert!(verifies(origin, url), "fresh URL must verify: {url}");
    let path_start = url.find("://").unwrap() + 3;
    let path_start = path_start + url[path_start..].find('/').unwrap();
    let key_start = path_start + url[path_start..].find(raw_key).expect("key in URL");
    let q = url.find('?').unwrap();
    let mut ranges = vec![
        ("signature", value_range(url, sig).unwrap()),
        ("expiry", value_range(url, exp).unwrap()),
        ("key", key_start..key_start + raw_key.len()),
    ];
    // Any extra parameter (everything before the scheme's own ones).
    if let Some(first_auth) = [sig, exp, "X-Amz-Algorithm", "Expires", "Policy"]
        .iter()
        .filter_map(|n| url.find(&format!("{n}=")))
        .min()
        && first_auth > q + 1
    {
        ranges.push(("parameter", q + 1..first_auth - 1));
    }
    for (what, range) in ranges {
        if let Some(t) = tamper(url, range, pick) {
            assert!(!verifies(origin, &t), "tampered {what} still verifies: {t}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn sigv4_sign_verify_and_tamper(key in tricky_key(), params in overrides(), at in 1_000_000_000u64..4_000_000_000, pick in any::<usize>()) {
        let origin = s3_origin();
        let (raw_key, url) = sign(&origin, &key, &params, at);
        check_all_tampers(&origin, &url, &raw_key, "X-Amz-Signature", "X-Amz-Expires", pick);
        let date = value_range(&url, "X-Amz-Date").unwrap();
        if let Some(t) = tamper(&url, date, pick) {
            prop_assert!(!verifies(&origin, &t));
        }
    }

    #[test]
    fn native_sign_verify_and_tamper(key in tricky_key(), params in overrides(), at in 1_000_000_000u64..4_000_000_000, pick in any::<usize>()) {
        let origin = local_origin();
        let (raw_key, url) = sign(&origin, &key, &params, at);
        check_all_tampers(&origin, &url, &raw_key, "signature", "expires", pick);
        // Another origin's name in the path is another object.
        let moved = url.replace("/_origin/demo/", "/_origin/other/");
        prop_assert!(!verifies(&origin, &moved));
    }

    #[test]
    fn any_key_of_an_origin_verifies_but_only_the_first_signs(key in tricky_key()) {
        let origin = local_origin();
        let (_, url) = sign(&origin, &key, &[], 1_700_000_000);
        prop_assert!(url.contains("key_id=k2"));
        let Kind::Local(local) = &origin.kind else { unreachable!() };
        let old_signer = OriginSigner {
            name: "demo".into(),
            ttl: 3600,
            kind: Kind::Local(Local {
                layout: local.layout.clone(),
                root: local.root.clone(),
                keys: vec![NativeKey { key_id: "k1".into(), secret: Secret::new("first-key-0123456789abcdef") }],
            }),
        };
        let (_, old_url) = sign(&old_signer, &key, &[], 1_700_000_000);
        prop_assert!(verifies(&origin, &old_url), "a URL from the retiring key still verifies");
    }

    #[test]
    fn s3_urls_from_a_retiring_key_still_verify(key in tricky_key()) {
        let origin = s3_origin();
        let Kind::S3(s3) = &origin.kind else { unreachable!() };
        let old_only = OriginSigner {
            name: "s3".into(),
            ttl: 3600,
            kind: Kind::S3(S3 {
                layout: s3.layout.clone(),
                region: "us-east-1".into(),
                bucket: "bucket".into(),
                keys: vec![Credentials::new("AKIDOLD", Secret::new("old secret"), Some(Secret::new("tok/+=")), None)],
            }),
        };
        let (_, old_url) = sign(&old_only, &key, &[], 1_700_000_000);
        prop_assert!(old_url.contains("X-Amz-Security-Token=tok%2F%2B%3D"));
        prop_assert!(verifies(&origin, &old_url), "the second key verifies");
        let (_, new_url) = sign(&origin, &key, &[], 1_700_000_000);
        prop_assert!(new_url.contains("Credential=AKIDNEW%2F"), "the first key signs");
        prop_assert!(!verifies(&old_only, &new_url), "a key that is not listed does not verify");
    }

    #[test]
    fn detection_never_panics(s in ".{0,200}", t in "(https?://)?[a-z0-9.:@\\[\\]%/?&=#-]{0,120}") {
        let origins = [s3_origin(), local_origin()];
        let refs: Vec<&OriginSigner> = origins.iter().collect();
        for input in [&s, &t] {
            let _ = inspect(input, 1_700_000_000, None);
            let _ = inspect(input, 1_700_000_000, Some(&refs));
            if let Ok(u) = RawUrl::parse(input) {
                for o in &origins {
                    let _ = o.verify(&u, Method::Get, |_| None);
                }
            }
        }
    }

    #[test]
    fn detection_never_panics_on_mangled_signed_urls(key in tricky_key(), cut in any::<usize>(), junk in ".{0,8}") {
        let origin = s3_origin();
        let (_, url) = sign(&origin, &key, &[], 1_700_000_000);
        let mut at = cut % (url.len() + 1);
        while !url.is_char_boundary(at) { at -= 1; }
        let mangled = format!("{}{junk}{}", &url[..at], &url[at..]);
        let refs = [&origin];
        let _ = inspect(&mangled, 1_700_000_000, Some(&refs));
    }

    #[test]
    fn bucketing_guarantee_holds(now in 0u64..10_000_000_000, bucket in 1u64..86_400, extra in 0u64..604_800) {
        let ttl = 2 * bucket + extra;
        let w = Window::at(now, bucket, ttl);
        prop_assert!(w.signed_at <= now && now < w.signed_at + bucket);
        prop_assert_eq!(w.signed_at % bucket, 0);
        prop_assert!(w.expires_at - now >= ttl - bucket, "a handed-out URL keeps at least ttl - bucket");
        prop_assert!(w.max_age(now) >= 1 && w.max_age(now) <= bucket);
        // Every instant of the bucket yields the same window: replicas agree.
        prop_assert_eq!(Window::at(w.signed_at, bucket, ttl), w);
        prop_assert_eq!(Window::at(w.rolls_at - 1, bucket, ttl), w);
    }

    #[test]
    fn encodings_round_trip(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let encoded = uri_encode(&bytes, false);
        prop_assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b)));
        prop_assert_eq!(percent_decode(&encoded).into_owned(), bytes.clone());
        let b64 = cloudfront_b64_encode(&bytes);
        prop_assert!(!b64.contains(['+', '/', '=']));
        prop_assert_eq!(cloudfront_b64_decode(&b64), Some(bytes));
    }
}

proptest! {
    // ECDSA signing is slower; fewer cases still cover the key and parameter space.
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn cloudfront_sign_verify_and_tamper(key in tricky_key(), params in overrides(), at in 1_000_000_000u64..4_000_000_000, pick in any::<usize>()) {
        let origin = cf_origin();
        let (raw_key, url) = sign(&origin, &key, &params, at);
        check_all_tampers(&origin, &url, &raw_key, "Signature", "Expires", pick);
    }
}

#[test]
fn rsa_cloudfront_sign_verify_round_trip() {
    let pem =
        std::fs::read_to_string(support::vectors::vector_path("cloudfront_test_key.pem")).unwrap();
    let private = PrivateKey::from_pem(&pem).unwrap();
    let public = private.public_key();
    for hash in [HashAlgorithm::Sha1, HashAlgorithm::Sha256] {
        let origin = OriginSigner {
            name: "cdn".into(),
            ttl: 3600,
            kind: Kind::CloudFront(CloudFront {
                layout: Layout::new("https://cdn.example.com:8443", "").unwrap(),
                endpoint: None,
                hash,
                keys: vec![CloudFrontKey {
                    key_pair_id: "K2JCJMDEHXQW5F".into(),
                    private: PrivateKey::from_pem(&pem).unwrap(),
                    public: public.clone(),
                }],
                cookie_domain: None,
            }),
        };
        for key in ["a b/ü.txt", "x+y=z&w", "../../etc/passwd", "dir//./x"] {
            let (raw_key, url) = sign(
                &origin,
                key,
                &["response-content-type=text%2Fplain".to_owned()],
                1_700_000_000,
            );
            check_all_tampers(&origin, &url, &raw_key, "Signature", "Expires", 7);
            assert_eq!(
                url.contains("Hash-Algorithm=SHA256"),
                hash == HashAlgorithm::Sha256
            );
        }
    }
}
