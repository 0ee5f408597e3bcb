//! Hot paths of the signing core (criterion): `cargo bench --bench signing`.
//! Figures and the machine they came from are in BENCHMARKS.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use edgesign::secret::Secret;
use edgesign::sign::cloudfront::{HashAlgorithm, PolicyKind, PrivateKey};
use edgesign::sign::detect::inspect;
use edgesign::sign::native::NativeKey;
use edgesign::sign::signer::{self, Kind, Layout, Local, OriginSigner, S3, Scheme, SignSpec};
use edgesign::sign::sigv4::{self, Credentials};
use edgesign::sign::url::RawUrl;
use edgesign::sign::{Method, azure, cloudfront, gcs};

fn s3() -> OriginSigner {
    OriginSigner {
        name: "docs".into(),
        ttl: 3600,
        kind: Kind::S3(S3 {
            layout: signer::s3_layout(Some("http://127.0.0.1:9000"), "us-east-1", "docs", true)
                .unwrap(),
            region: "us-east-1".into(),
            bucket: "docs".into(),
            keys: vec![Credentials::new(
                "AKIAIOSFODNN7EXAMPLE",
                Secret::new("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                None,
                None,
            )],
        }),
    }
}

fn key(name: &str) -> PrivateKey {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    PrivateKey::from_pem(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn bench(c: &mut Criterion) {
    let origin = s3();
    let Kind::S3(s3) = &origin.kind else {
        unreachable!()
    };
    let creds = &s3.keys[0];
    let at = 1_700_000_000;

    c.bench_function("sigv4_presign_warm_key", |b| {
        let req = sigv4::Request {
            method: Method::Get,
            host: "127.0.0.1:9000",
            path: "/docs/acme/reports/2024/q3%20summary.pdf",
            params: &[],
            headers: &[],
            region: "us-east-1",
            signed_at: at,
            expires_in: 3600,
        };
        b.iter(|| sigv4::presign(black_box(&req), creds))
    });

    c.bench_function("sigv4_origin_sign_full_url", |b| {
        let spec = SignSpec {
            raw_key: "acme/reports/2024/q3%20summary.pdf",
            method: Method::Get,
            params: &[],
            signed_at: at,
            lifetime: 3600,
        };
        b.iter(|| origin.sign(black_box(&spec)).unwrap())
    });

    let url = origin
        .sign(&SignSpec {
            raw_key: "acme/a.pdf",
            method: Method::Get,
            params: &["response-content-disposition=inline"],
            signed_at: at,
            lifetime: 3600,
        })
        .unwrap()
        .url;
    c.bench_function("sigv4_parse_and_verify", |b| {
        b.iter(|| {
            let u = RawUrl::parse(black_box(&url)).unwrap();
            origin.verify(&u, Method::Get, |_| None).unwrap().expires_at
        })
    });

    c.bench_function("sigv4_derive_signing_key", |b| {
        b.iter(|| {
            sigv4::derive_signing_key(
                black_box("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                b"20231114",
                "us-east-1",
                "s3",
            )
        })
    });

    let rsa = key("cloudfront_test_key.pem");
    let ec = key("cloudfront_test_ec_key.pem");
    let resource = "https://d111111abcdef8.cloudfront.net/acme/video.mp4";
    let policy = PolicyKind::Canned {
        expires: 1_893_456_000,
    };
    c.bench_function("cloudfront_rsa2048_sha1_sign", |b| {
        b.iter(|| {
            cloudfront::sign(
                black_box(resource),
                &policy,
                &rsa,
                "K2JCJMDEHXQW5F",
                HashAlgorithm::Sha1,
            )
            .unwrap()
        })
    });
    c.bench_function("cloudfront_rsa2048_sha256_sign", |b| {
        b.iter(|| {
            cloudfront::sign(
                black_box(resource),
                &policy,
                &rsa,
                "K2JCJMDEHXQW5F",
                HashAlgorithm::Sha256,
            )
            .unwrap()
        })
    });
    c.bench_function("cloudfront_ecdsa_p256_sign", |b| {
        b.iter(|| {
            cloudfront::sign(
                black_box(resource),
                &policy,
                &ec,
                "K2JCJMDEHXQW5F",
                HashAlgorithm::Sha256,
            )
            .unwrap()
        })
    });

    let local = OriginSigner {
        name: "demo".into(),
        ttl: 3600,
        kind: Kind::Local(Local {
            layout: Layout::new("http://127.0.0.1:8080", "/_origin/demo").unwrap(),
            root: std::env::temp_dir(),
            keys: vec![NativeKey {
                key_id: "k1".into(),
                secret: Secret::new("0123456789abcdef0123"),
            }],
        }),
    };
    c.bench_function("native_sign", |b| {
        let spec = SignSpec {
            raw_key: "docs/readme.md",
            method: Method::Get,
            params: &[],
            signed_at: at,
            lifetime: 3600,
        };
        b.iter(|| local.sign(black_box(&spec)).unwrap())
    });

    let sa = std::fs::read_to_string(format!(
        "{}/tests/vectors/gcs_dummy_service_account.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let gcs_rsa = gcs::Key::service_account(&sa).unwrap();
    let gcs_hmac = gcs::Key::hmac(
        "GOOG1EXAMPLEEDGESIGNHMACKEY0123456789ABCDEFGHIJKLMNOPQRSTUV",
        Secret::new("bGoa+V7g/yqDXvKRqq+JTFn4uQZbPiQJo4pf9RzJ"),
    );
    let gcs_req = gcs::Request {
        method: Method::Get,
        host: "storage.googleapis.com",
        path: "/media/acme/reports/2024/q3%20summary.pdf",
        params: &[],
        signed_at: at,
        expires_in: 3600,
    };
    c.bench_function("gcs_rsa2048_presign", |b| {
        b.iter(|| gcs::presign(black_box(&gcs_req), &gcs_rsa).unwrap())
    });
    c.bench_function("gcs_hmac_presign", |b| {
        b.iter(|| gcs::presign(black_box(&gcs_req), &gcs_hmac).unwrap())
    });
    c.bench_function("azure_sas_sign", |b| {
        let key = azure::AccountKey::from_base64(
            "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
        )
        .unwrap();
        let resource =
            azure::canonicalized_resource("devstoreaccount1", "media", "acme/reports/q3 summary.pdf");
        b.iter(|| {
            let fields = azure::Fields {
                permissions: "r".into(),
                start: Some(azure::time(at)),
                expiry: azure::time(at + 3600),
                version: azure::DEFAULT_VERSION.into(),
                resource: "b".into(),
                ..azure::Fields::default()
            };
            azure::sign(black_box(&fields), &resource, &key)
        })
    });

    c.bench_function("detect_scheme_of_query", |b| {
        let q = RawUrl::parse(&url).unwrap().query;
        b.iter(|| Scheme::of_query(black_box(q)))
    });
    c.bench_function("detect_inspect_url", |b| {
        b.iter(|| inspect(black_box(&url), at, None).unwrap())
    });
}

#[allow(missing_docs, reason = "generated by criterion_group!")]
mod group {
    use super::*;
    criterion_group!(benches, bench);
}
use group::benches;
criterion_main!(benches);
