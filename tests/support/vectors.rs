//! The vendors' test vectors (`tests/vectors/`) and origins built from them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a broken fixture should fail loudly"
)]

use std::path::PathBuf;

use edgesign::secret::Secret;
use edgesign::sign::encoding::parse_amz_date;
use edgesign::sign::signer::{self, Kind, OriginSigner, S3};
use edgesign::sign::sigv4::Credentials;
use serde_json::Value;

/// Path of a file under `tests/vectors/`.
pub fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(name)
}

/// The vector called `name` in `file`.
pub fn vector(file: &str, name: &str) -> Value {
    let text = std::fs::read_to_string(vector_path(file)).expect("vector file");
    let doc: Value = serde_json::from_str(&text).expect("vector json");
    doc["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vector {name} in {file}"))
        .clone()
}

/// Every vector name in `file`.
pub fn vector_names(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(vector_path(file)).expect("vector file");
    let doc: Value = serde_json::from_str(&text).expect("vector json");
    doc["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .map(|v| v["name"].as_str().expect("name").to_owned())
        .collect()
}

/// The names a test file covers with `vector_test!(fn_name, "vector-name")`, read from its
/// source (invocations may span lines after `cargo fmt`).
pub fn covered_names(source: &str) -> Vec<String> {
    source
        .split("\nvector_test!(")
        .skip(1)
        .filter_map(|rest| {
            let start = rest.find('"')? + 1;
            let end = start + rest[start..].find('"')?;
            Some(rest[start..end].to_owned())
        })
        .collect()
}

/// Unix seconds of an `X-Amz-Date`.
pub fn amz(ts: &str) -> u64 {
    parse_amz_date(ts).expect("timestamp")
}

/// An S3 origin signer for a SigV4 vector's input.
pub fn s3_origin(input: &Value) -> OriginSigner {
    let layout = signer::s3_layout(
        input["endpoint"].as_str(),
        input["region"].as_str().unwrap(),
        input["bucket"].as_str().unwrap(),
        input["addressing_style"] == "path",
    )
    .expect("layout");
    let creds = Credentials::new(
        input["access_key_id"].as_str().unwrap(),
        Secret::new(input["secret_access_key"].as_str().unwrap()),
        input["session_token"].as_str().map(Secret::new),
        None,
    );
    OriginSigner {
        name: "vec".into(),
        ttl: 3600,
        kind: Kind::S3(S3 {
            layout,
            region: input["region"].as_str().unwrap().into(),
            bucket: input["bucket"].as_str().unwrap().into(),
            keys: vec![creds],
        }),
    }
}
