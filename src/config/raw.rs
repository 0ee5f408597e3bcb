//! Raw serde structs of `config.toml`, as written (unknown keys rejected), and sizes.

use serde::Deserialize;

// ---------------------------------------------------------------------------------------
// Raw structs: exactly the keys of docs/config.md, nothing else.
// ---------------------------------------------------------------------------------------

/// Smallest `server.max_header_size` (hyper's read buffer cannot be smaller).
pub(super) const MIN_HEADER_SIZE: u64 = 8 * 1024;
/// Largest `server.max_header_size`.
pub(super) const MAX_HEADER_SIZE: u64 = 1024 * 1024;
/// Largest `server.workers`.
pub(super) const MAX_WORKERS: u64 = 1024;
/// Largest `server.max_connections` (the semaphore's limit is far above; this is sanity).
pub(super) const MAX_CONNECTIONS: u64 = 1 << 20;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) server: RawServer,
    #[serde(default)]
    pub(super) cache: RawCache,
    #[serde(default)]
    pub(super) origins: Vec<RawOrigin>,
    #[serde(default)]
    pub(super) routes: Vec<RawRoute>,
    #[serde(default)]
    pub(super) auth: RawAuth,
    #[serde(default)]
    pub(super) rate_limit: RawRateLimit,
    #[serde(default)]
    pub(super) compat: RawCompat,
    #[serde(default)]
    pub(super) origin_client: RawOriginClient,
    #[serde(default)]
    pub(super) cors: RawCors,
    pub(super) fleet: Option<RawFleet>,
    pub(super) audit: Option<RawAudit>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAudit {
    pub(super) path: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFleet {
    pub(super) redis_url: Option<String>,
    pub(super) redis_url_env: Option<String>,
    pub(super) redis_url_file: Option<String>,
    pub(super) key_prefix: Option<String>,
    pub(super) sync_interval: Option<String>,
    pub(super) on_redis_error: Option<String>,
}

impl std::fmt::Debug for RawFleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawFleet(**redacted**)")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCors {
    #[serde(default)]
    pub(super) allow_origins: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub(super) listen: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) tls_listen: Option<String>,
    pub(super) tls_cert: Option<String>,
    pub(super) tls_key: Option<String>,
    pub(super) trusted_proxies: Option<Vec<String>>,
    pub(super) metrics_allow: Option<Vec<String>>,
    pub(super) shutdown_grace: Option<String>,
    pub(super) drain_delay: Option<String>,
    pub(super) header_read_timeout: Option<String>,
    pub(super) idle_timeout: Option<String>,
    pub(super) send_timeout: Option<String>,
    pub(super) max_header_size: Option<u64>,
    pub(super) max_connections: Option<u64>,
    pub(super) workers: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCache {
    pub(super) max_entries: Option<u64>,
    pub(super) max_bytes: Option<RawSize>,
    pub(super) bucket: Option<String>,
}

/// A size: bytes as a number, or text with a unit (`"256MiB"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum RawSize {
    Bytes(u64),
    Text(String),
}

/// `"256MiB"`, `"1GiB"`, `"64KiB"`, `"1000000"` (bytes; `KB`/`MB`/`GB` are powers of ten).
pub(super) fn parse_size(raw: &RawSize) -> Option<u64> {
    let text = match raw {
        RawSize::Bytes(n) => return Some(*n),
        RawSize::Text(t) => t.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOrigin {
    pub(super) name: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) endpoint: Option<String>,
    pub(super) region: Option<String>,
    pub(super) bucket: Option<String>,
    pub(super) path_style: Option<bool>,
    pub(super) ttl: Option<String>,
    #[serde(default)]
    pub(super) public_prefixes: Vec<String>,
    pub(super) domain: Option<String>,
    pub(super) hash_algorithm: Option<String>,
    pub(super) root: Option<String>,
    pub(super) account: Option<String>,
    pub(super) container: Option<String>,
    pub(super) sas_version: Option<String>,
    pub(super) cookie_domain: Option<String>,
    #[serde(default)]
    pub(super) keys: Vec<RawKey>,
}

impl RawOrigin {
    /// The fields that belong to some kinds and not others, by name, and whether each is set.
    pub(super) fn kind_fields(&self) -> [(&'static str, bool); 11] {
        [
            ("endpoint", self.endpoint.is_some()),
            ("region", self.region.is_some()),
            ("bucket", self.bucket.is_some()),
            ("path_style", self.path_style.is_some()),
            ("domain", self.domain.is_some()),
            ("hash_algorithm", self.hash_algorithm.is_some()),
            ("root", self.root.is_some()),
            ("account", self.account.is_some()),
            ("container", self.container.is_some()),
            ("sas_version", self.sas_version.is_some()),
            ("cookie_domain", self.cookie_domain.is_some()),
        ]
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKey {
    pub(super) access_key_id: Option<String>,
    pub(super) secret_access_key: Option<String>,
    pub(super) secret_access_key_env: Option<String>,
    pub(super) secret_access_key_file: Option<String>,
    pub(super) session_token: Option<String>,
    pub(super) session_token_env: Option<String>,
    pub(super) session_token_file: Option<String>,
    pub(super) expires_at: Option<String>,
    pub(super) key_pair_id: Option<String>,
    pub(super) private_key_file: Option<String>,
    pub(super) key_id: Option<String>,
    pub(super) secret: Option<String>,
    pub(super) secret_env: Option<String>,
    pub(super) secret_file: Option<String>,
    pub(super) source: Option<String>,
    pub(super) profile: Option<String>,
    pub(super) assume_role: Option<String>,
    pub(super) service_account_file: Option<String>,
    pub(super) access_id: Option<String>,
    pub(super) account_key: Option<String>,
    pub(super) account_key_env: Option<String>,
    pub(super) account_key_file: Option<String>,
}

impl RawKey {
    /// Every field of a key, by name, and whether each is set.
    pub(super) fn all_fields(&self) -> Vec<(&'static str, bool)> {
        let mut all = Vec::with_capacity(24);
        all.extend(self.s3_fields());
        all.extend(self.cloudfront_fields());
        all.extend(self.local_fields());
        all.extend([
            ("service_account_file", self.service_account_file.is_some()),
            ("access_id", self.access_id.is_some()),
            ("account_key", self.account_key.is_some()),
            ("account_key_env", self.account_key_env.is_some()),
            ("account_key_file", self.account_key_file.is_some()),
        ]);
        all
    }

    /// The fields of an S3 key, by name, and whether each is set.
    pub(super) fn s3_fields(&self) -> [(&'static str, bool); 11] {
        [
            ("access_key_id", self.access_key_id.is_some()),
            ("secret_access_key", self.secret_access_key.is_some()),
            (
                "secret_access_key_env",
                self.secret_access_key_env.is_some(),
            ),
            (
                "secret_access_key_file",
                self.secret_access_key_file.is_some(),
            ),
            ("session_token", self.session_token.is_some()),
            ("session_token_env", self.session_token_env.is_some()),
            ("session_token_file", self.session_token_file.is_some()),
            ("expires_at", self.expires_at.is_some()),
            ("source", self.source.is_some()),
            ("profile", self.profile.is_some()),
            ("assume_role", self.assume_role.is_some()),
        ]
    }

    /// The fields of a CloudFront key.
    pub(super) fn cloudfront_fields(&self) -> [(&'static str, bool); 2] {
        [
            ("key_pair_id", self.key_pair_id.is_some()),
            ("private_key_file", self.private_key_file.is_some()),
        ]
    }

    /// The fields of a local origin's key.
    pub(super) fn local_fields(&self) -> [(&'static str, bool); 4] {
        [
            ("key_id", self.key_id.is_some()),
            ("secret", self.secret.is_some()),
            ("secret_env", self.secret_env.is_some()),
            ("secret_file", self.secret_file.is_some()),
        ]
    }
}

impl std::fmt::Debug for RawKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawKey(**redacted**)")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub(super) prefix: Option<String>,
    pub(super) host: Option<String>,
    pub(super) origin: Option<String>,
    pub(super) mode: Option<String>,
    pub(super) access: Option<String>,
    pub(super) stale_grace: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub(super) org_claim: Option<String>,
    pub(super) cookie: Option<String>,
    pub(super) jwt_hs256_secret: Option<String>,
    pub(super) jwt_hs256_secret_env: Option<String>,
    pub(super) jwt_hs256_secret_file: Option<String>,
    #[serde(default)]
    pub(super) jwt_rs256_public_key_files: Vec<String>,
    pub(super) jwks_url: Option<String>,
    pub(super) jwks_refresh: Option<String>,
    pub(super) issuer: Option<String>,
    pub(super) audience: Option<String>,
    #[serde(default)]
    pub(super) api_keys: Vec<RawApiKey>,
}

impl std::fmt::Debug for RawAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawAuth(**redacted**)")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawApiKey {
    pub(super) sha256: Option<String>,
    pub(super) kind: Option<String>,
    pub(super) org: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    pub(super) per_second: Option<f64>,
    pub(super) burst: Option<u32>,
    pub(super) ipv6_prefix: Option<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCompat {
    pub(super) content_sign_origin: Option<String>,
    pub(super) files_origin: Option<String>,
    pub(super) files_key_prefix: Option<String>,
    pub(super) presign_origin: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOriginClient {
    pub(super) connect_timeout: Option<String>,
    pub(super) response_timeout: Option<String>,
    pub(super) ca_file: Option<String>,
    pub(super) web_roots: Option<bool>,
}
