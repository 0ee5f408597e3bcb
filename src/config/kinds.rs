//! `[[origins]]` by kind (s3, cloudfront, local): keys and layout validated into an [`Origin`].

use crate::sign::cloudfront::{self, HashAlgorithm};
use crate::sign::native::NativeKey;
use crate::sign::signer::{
    self, Azure, CloudFront, CloudFrontKey, Gcs, Kind, Layout, Local, OriginSigner, S3,
};
use crate::sign::sigv4::{self, Credentials};
use crate::sign::{azure, gcs};

use crate::origins::CredentialSource;

use super::check::*;
use super::raw::*;
use super::*;

pub(super) fn validate_origin(
    path: &str,
    o: RawOrigin,
    server: &Server,
    bucket: u64,
    c: &mut Checker<'_>,
) -> Option<Origin> {
    let name = match o.name.clone() {
        Some(n) if valid_name(&n) => n,
        Some(n) => {
            c.err(
                format!("{path}.name"),
                format!("{n:?} may hold only letters, digits, '-', '_' and '.'"),
            );
            return None;
        }
        None => {
            c.err(format!("{path}.name"), "missing; every origin needs a name");
            return None;
        }
    };
    let ttl = c
        .duration(&format!("{path}.ttl"), o.ttl.as_deref(), "1h")
        .as_secs();
    if ttl < 2 * bucket {
        c.err(
            format!("{path}.ttl"),
            format!(
                "{ttl}s is shorter than 2 × cache.bucket ({}s); raise ttl or shrink the bucket",
                2 * bucket
            ),
        );
    }
    if o.keys.is_empty() {
        c.err(
            format!("{path}.keys"),
            "at least one [[origins.keys]] entry is required",
        );
    }
    let kind = o.kind.as_deref().unwrap_or("");
    let mut credentials = None;
    let signer_kind = match kind {
        "s3" => validate_s3(path, &o, ttl, c).map(|(s3, source)| {
            credentials = source;
            Kind::S3(s3)
        }),
        "cloudfront" => validate_cloudfront(path, &o, c).map(Kind::CloudFront),
        "local" => validate_local(path, &name, &o, server, c).map(Kind::Local),
        "gcs" => validate_gcs(path, &o, ttl, c).map(Kind::Gcs),
        "azure" => validate_azure(path, &o, c).map(Kind::Azure),
        other => {
            c.err(
                format!("{path}.kind"),
                format!("{other:?} is not s3, cloudfront, gcs, azure or local"),
            );
            None
        }
    }?;
    Some(Origin {
        signer: OriginSigner {
            name,
            ttl,
            kind: signer_kind,
        },
        public_prefixes: o.public_prefixes,
        credentials,
    })
}

/// The fields of an S3 key.
const S3_KEY_FIELDS: [&str; 11] = [
    "access_key_id",
    "secret_access_key",
    "secret_access_key_env",
    "secret_access_key_file",
    "session_token",
    "session_token_env",
    "session_token_file",
    "expires_at",
    "source",
    "profile",
    "assume_role",
];

/// An S3 origin, and where its credentials come from when the SDK's resolver provides them.
pub(super) fn validate_s3(
    path: &str,
    o: &RawOrigin,
    ttl: u64,
    c: &mut Checker<'_>,
) -> Option<(S3, Option<CredentialSource>)> {
    forbid_except(
        c,
        path,
        "s3",
        &o.kind_fields(),
        &["endpoint", "region", "bucket", "path_style"],
    );
    if ttl > sigv4::MAX_EXPIRES {
        c.err(
            format!("{path}.ttl"),
            format!("{ttl}s exceeds S3's 7-day maximum (604800s)"),
        );
    }
    let region = match o.region.as_deref() {
        Some(r)
            if !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            r.to_owned()
        }
        Some(r) => {
            c.err(
                format!("{path}.region"),
                format!("{r:?} is not a region like \"us-east-1\""),
            );
            return None;
        }
        None => {
            c.err(
                format!("{path}.region"),
                "missing; S3 signatures are scoped to a region",
            );
            return None;
        }
    };
    let bucket = bucket_name(path, o.bucket.as_deref(), c)?;
    let layout = endpoint(
        path,
        signer::s3_layout(
            o.endpoint.as_deref(),
            &region,
            &bucket,
            o.path_style.unwrap_or(false),
        ),
        c,
    )?;
    let mut keys = Vec::new();
    let mut source = None;
    for (j, k) in o.keys.iter().enumerate() {
        let kp = key_path(path, j, k, "s3", &S3_KEY_FIELDS, c);
        if k.source.is_some() || k.assume_role.is_some() || k.profile.is_some() {
            if j > 0 {
                c.err(
                    format!("{kp}.source"),
                    "a key whose credentials the SDK provides signs, so it must be the first key; later keys only verify",
                );
            }
            source = credential_source(&kp, k, c);
            continue;
        }
        let Some(ak) = k
            .access_key_id
            .clone()
            .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric()))
        else {
            c.err(format!("{kp}.access_key_id"), "missing or not alphanumeric");
            continue;
        };
        let secret = c.secret(
            &kp,
            "secret_access_key",
            SecretFrom {
                inline: k.secret_access_key.as_ref(),
                env: k.secret_access_key_env.as_ref(),
                file: k.secret_access_key_file.as_ref(),
            },
            true,
        );
        let token = c.secret(
            &kp,
            "session_token",
            SecretFrom {
                inline: k.session_token.as_ref(),
                env: k.session_token_env.as_ref(),
                file: k.session_token_file.as_ref(),
            },
            false,
        );
        let expires_at = match k.expires_at.as_deref() {
            None => None,
            Some(s) => match parse_rfc3339(s) {
                Some(t) => Some(t),
                None => {
                    c.err(
                        format!("{kp}.expires_at"),
                        format!("{s:?} is not an RFC 3339 instant like \"2026-12-01T00:00:00Z\""),
                    );
                    None
                }
            },
        };
        if let Some(secret) = secret {
            keys.push(Credentials::new(ak, secret, token, expires_at));
        }
    }
    Some((
        S3 {
            layout,
            region,
            bucket,
            keys,
        },
        source,
    ))
}

/// `source = "default" | "profile"` (with `profile`), and `assume_role` on top: the AWS
/// SDK's own resolver, in place of keys written in the config.
fn credential_source(kp: &str, k: &RawKey, c: &mut Checker<'_>) -> Option<CredentialSource> {
    let credential_fields = ["source", "profile", "assume_role"];
    for (name, set) in k.s3_fields() {
        if set && !credential_fields.contains(&name) {
            c.err(
                format!("{kp}.{name}"),
                "is not used with source: the SDK's resolver provides the credentials; remove it",
            );
        }
    }
    let profile = match (k.source.as_deref(), k.profile.as_deref()) {
        (Some("default"), None) => None,
        (Some("default"), Some(_)) => {
            c.err(
                format!("{kp}.profile"),
                "names a profile, so write source = \"profile\"",
            );
            return None;
        }
        (Some("profile"), Some(p)) if !p.is_empty() => Some(p.to_owned()),
        (Some("profile"), _) => {
            c.err(
                format!("{kp}.profile"),
                "missing: source = \"profile\" needs profile = \"<name in ~/.aws/config>\"",
            );
            return None;
        }
        (None, _) => {
            c.err(
                format!("{kp}.source"),
                "missing: profile and assume_role sit on top of source = \"default\" or \"profile\"",
            );
            return None;
        }
        (Some(other), _) => {
            c.err(
                format!("{kp}.source"),
                format!("{other:?} is not \"default\" or \"profile\""),
            );
            return None;
        }
    };
    let assume_role = match k.assume_role.as_deref() {
        None => None,
        Some(arn)
            if arn.starts_with("arn:")
                && arn
                    .split(':')
                    .nth(5)
                    .is_some_and(|r| r.starts_with("role/"))
                && !arn.contains(char::is_whitespace) =>
        {
            Some(arn.to_owned())
        }
        Some(arn) => {
            c.err(
                format!("{kp}.assume_role"),
                format!("{arn:?} is not a role ARN like \"arn:aws:iam::123456789012:role/name\""),
            );
            return None;
        }
    };
    Some(CredentialSource {
        profile,
        assume_role,
    })
}

pub(super) fn validate_cloudfront(
    path: &str,
    o: &RawOrigin,
    c: &mut Checker<'_>,
) -> Option<CloudFront> {
    forbid_except(
        c,
        path,
        "cloudfront",
        &o.kind_fields(),
        &["endpoint", "domain", "hash_algorithm", "cookie_domain"],
    );
    // `domain` is the name in every URL (Resource, Location, Host); `endpoint` only where
    // edgesign connects to fetch.
    let layout = match o.domain.as_deref() {
        Some(d) if !d.is_empty() && !d.contains(['/', '?', '#', '@']) => {
            match Layout::new(&format!("https://{d}"), "") {
                Ok(l) => l,
                Err(_) => {
                    c.err(
                        format!("{path}.domain"),
                        format!("{d:?} must be the distribution's host name, e.g. \"d111111abcdef8.cloudfront.net\""),
                    );
                    return None;
                }
            }
        }
        Some(d) => {
            c.err(
                format!("{path}.domain"),
                format!("{d:?} must be a bare host name (URLs are https://<domain>/…); endpoint says where edgesign connects"),
            );
            return None;
        }
        None => {
            c.err(
                format!("{path}.domain"),
                "missing; set the distribution's domain name, the name in every URL (endpoint only says where edgesign connects to fetch)",
            );
            return None;
        }
    };
    let cookie_domain = o
        .cookie_domain
        .as_deref()
        .and_then(|d| cookie_domain(path, d, &layout.signing_host, c));
    let endpoint = match o.endpoint.as_deref() {
        None => None,
        Some(e) => match Layout::new(e.trim_end_matches('/'), "") {
            Ok(l) => Some(l),
            Err(why) => {
                c.err(format!("{path}.endpoint"), why);
                return None;
            }
        },
    };
    let hash = match o.hash_algorithm.as_deref() {
        None => HashAlgorithm::Sha1,
        Some(h) => HashAlgorithm::parse(h).unwrap_or_else(|| {
            c.err(
                format!("{path}.hash_algorithm"),
                format!("{h:?} is not SHA1 or SHA256"),
            );
            HashAlgorithm::Sha1
        }),
    };
    let mut keys = Vec::new();
    for (j, k) in o.keys.iter().enumerate() {
        let kp = key_path(
            path,
            j,
            k,
            "cloudfront",
            &["key_pair_id", "private_key_file"],
            c,
        );
        let Some(id) = k
            .key_pair_id
            .clone()
            .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric()))
        else {
            c.err(format!("{kp}.key_pair_id"), "missing or not alphanumeric");
            continue;
        };
        let Some(file) = k.private_key_file.as_deref() else {
            c.err(
                format!("{kp}.private_key_file"),
                "missing; point it at the PEM private key",
            );
            continue;
        };
        let Some(pem) = c.read_file(&format!("{kp}.private_key_file"), file) else {
            continue;
        };
        match cloudfront::PrivateKey::from_pem(&pem) {
            Ok(private) => {
                let public = private.public_key();
                keys.push(CloudFrontKey {
                    key_pair_id: id,
                    private,
                    public,
                });
            }
            Err(e) => c.err(format!("{kp}.private_key_file"), format!("{file:?}: {e}")),
        }
    }
    Some(CloudFront {
        layout,
        endpoint,
        hash,
        keys,
        cookie_domain,
    })
}

pub(super) fn validate_local(
    path: &str,
    name: &str,
    o: &RawOrigin,
    server: &Server,
    c: &mut Checker<'_>,
) -> Option<Local> {
    forbid_except(c, path, "local", &o.kind_fields(), &["root"]);
    let Some(root) = o.root.as_deref() else {
        c.err(
            format!("{path}.root"),
            "missing; name the directory to serve",
        );
        return None;
    };
    let full = c.resolve(root);
    let root = match std::fs::canonicalize(&full) {
        Ok(p) if p.is_dir() => p,
        _ => {
            c.err(
                format!("{path}.root"),
                format!("{root:?} is not a readable directory"),
            );
            return None;
        }
    };
    let layout = Layout::new(&server.public_url, &format!("/_origin/{name}")).ok()?;
    let mut keys = Vec::new();
    for (j, k) in o.keys.iter().enumerate() {
        let kp = key_path(
            path,
            j,
            k,
            "local",
            &["key_id", "secret", "secret_env", "secret_file"],
            c,
        );
        let Some(id) = k.key_id.clone().filter(|i| valid_name(i)) else {
            c.err(
                format!("{kp}.key_id"),
                "missing or not made of letters, digits, '-', '_', '.'",
            );
            continue;
        };
        if let Some(secret) = key_secret(&kp, k, c) {
            if secret.expose().len() < 16 {
                c.err(
                    format!("{kp}.secret"),
                    "is shorter than 16 bytes; use a long random value (openssl rand -base64 32)",
                );
            }
            keys.push(NativeKey { key_id: id, secret });
        }
    }
    Some(Local { layout, root, keys })
}

/// `cookie_domain`: a domain name (a leading `.` allowed, as browsers ignore it) that the
/// distribution's name `host` is under, else the cookies never reach the distribution.
fn cookie_domain(path: &str, d: &str, host: &str, c: &mut Checker<'_>) -> Option<String> {
    let bare = d.strip_prefix('.').unwrap_or(d).to_ascii_lowercase();
    let valid = bare.contains('.')
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !valid {
        c.err(
            format!("{path}.cookie_domain"),
            format!("{d:?} is not a domain with at least two labels, like \".example.com\""),
        );
        return None;
    }
    let host = host.to_ascii_lowercase();
    if host != bare && !host.ends_with(&format!(".{bare}")) {
        c.err(
            format!("{path}.cookie_domain"),
            format!("the distribution's name {host:?} is not under {d:?}, so browsers would never send it the cookies; use its alternate domain name (a CNAME under {d:?}) as domain"),
        );
        return None;
    }
    Some(d.to_owned())
}

/// A key's `secret` (or `secret_env`, `secret_file`), required.
fn key_secret(kp: &str, k: &RawKey, c: &mut Checker<'_>) -> Option<crate::secret::Secret> {
    c.secret(
        kp,
        "secret",
        SecretFrom {
            inline: k.secret.as_ref(),
            env: k.secret_env.as_ref(),
            file: k.secret_file.as_ref(),
        },
        true,
    )
}

/// The path of `origins[i].keys[j]` (`kp` below), after refusing the fields a key of `kind`
/// does not use.
fn key_path(
    path: &str,
    j: usize,
    k: &RawKey,
    kind: &str,
    used: &[&str],
    c: &mut Checker<'_>,
) -> String {
    let kp = format!("{path}.keys[{j}]");
    forbid_except(c, &kp, kind, &k.all_fields(), used);
    kp
}

/// The origin's URL layout, or `None` with an error on its `endpoint`.
fn endpoint(path: &str, made: Result<Layout, String>, c: &mut Checker<'_>) -> Option<Layout> {
    made.map_err(|e| c.err(format!("{path}.endpoint"), e)).ok()
}

/// A bucket name as it appears in a URL path or host: ASCII, no `/`, `?`, `#`, `%` or space
/// (S3 and GCS alike).
fn bucket_name(path: &str, bucket: Option<&str>, c: &mut Checker<'_>) -> Option<String> {
    match bucket {
        Some(b) if !b.is_empty() && !b.contains(['/', '?', '#', ' ', '%']) && b.is_ascii() => {
            Some(b.to_owned())
        }
        Some(b) => {
            c.err(
                format!("{path}.bucket"),
                format!("{b:?} is not a bucket name"),
            );
            None
        }
        None => {
            c.err(format!("{path}.bucket"), "missing");
            None
        }
    }
}

/// A Google Cloud Storage bucket: path style by default, service-account (RSA) or HMAC keys.
pub(super) fn validate_gcs(
    path: &str,
    o: &RawOrigin,
    ttl: u64,
    c: &mut Checker<'_>,
) -> Option<Gcs> {
    forbid_except(
        c,
        path,
        "gcs",
        &o.kind_fields(),
        &["endpoint", "bucket", "path_style"],
    );
    if ttl > gcs::MAX_EXPIRES {
        c.err(
            format!("{path}.ttl"),
            format!("{ttl}s exceeds GCS's 7-day maximum (604800s)"),
        );
    }
    let bucket = bucket_name(path, o.bucket.as_deref(), c)?;
    let layout = endpoint(
        path,
        signer::gcs_layout(o.endpoint.as_deref(), &bucket, o.path_style.unwrap_or(true)),
        c,
    )?;
    let mut keys = Vec::new();
    for (j, k) in o.keys.iter().enumerate() {
        let kp = key_path(
            path,
            j,
            k,
            "gcs",
            &[
                "service_account_file",
                "access_id",
                "secret",
                "secret_env",
                "secret_file",
            ],
            c,
        );
        let hmac = k.access_id.is_some()
            || k.secret.is_some()
            || k.secret_env.is_some()
            || k.secret_file.is_some();
        match (k.service_account_file.as_deref(), hmac) {
            (Some(_), true) => c.err(
                format!("{kp}.service_account_file"),
                "a key is a service account (service_account_file) or an HMAC key (access_id and secret), not both",
            ),
            (Some(file), false) => {
                let field = format!("{kp}.service_account_file");
                let Some(json) = c.read_file(&field, file) else {
                    continue;
                };
                match gcs::Key::service_account(&json) {
                    Ok(key) => keys.push(key),
                    Err(e) => c.err(field, format!("{file:?}: {e}")),
                }
            }
            (None, true) => {
                let Some(id) = k
                    .access_id
                    .clone()
                    .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric()))
                else {
                    c.err(
                        format!("{kp}.access_id"),
                        "missing or not alphanumeric (an HMAC key's access ID, \"GOOG1…\")",
                    );
                    continue;
                };
                if let Some(secret) = key_secret(&kp, k, c) {
                    keys.push(gcs::Key::hmac(id, secret));
                }
            }
            (None, false) => c.err(
                format!("{kp}.service_account_file"),
                "missing; point it at a service account's JSON key, or give an HMAC key (access_id and secret)",
            ),
        }
    }
    Some(Gcs {
        layout,
        bucket,
        keys,
    })
}

/// An Azure Blob container, signed with account keys (service SAS).
pub(super) fn validate_azure(path: &str, o: &RawOrigin, c: &mut Checker<'_>) -> Option<Azure> {
    forbid_except(
        c,
        path,
        "azure",
        &o.kind_fields(),
        &["endpoint", "account", "container", "sas_version"],
    );
    let account = match o.account.as_deref() {
        Some(a)
            if (3..=24).contains(&a.len())
                && a.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
        {
            a.to_owned()
        }
        Some(a) => {
            c.err(
                format!("{path}.account"),
                format!(
                    "{a:?} is not a storage account name (3 to 24 lower-case letters and digits)"
                ),
            );
            return None;
        }
        None => {
            c.err(
                format!("{path}.account"),
                "missing; name the storage account",
            );
            return None;
        }
    };
    let container = match o.container.as_deref() {
        Some(k)
            if (3..=63).contains(&k.len())
                && k.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !k.starts_with('-')
                && !k.ends_with('-')
                && !k.contains("--")
                || k == "$root"
                || k == "$web" =>
        {
            k.to_owned()
        }
        Some(k) => {
            c.err(
                format!("{path}.container"),
                format!("{k:?} is not a container name (3 to 63 lower-case letters, digits and single hyphens)"),
            );
            return None;
        }
        None => {
            c.err(format!("{path}.container"), "missing");
            return None;
        }
    };
    let sas_version = match o.sas_version.as_deref() {
        None => azure::DEFAULT_VERSION.to_owned(),
        Some(v) if azure::supports_version(v) => v.to_owned(),
        Some(v) => {
            c.err(
                format!("{path}.sas_version"),
                format!(
                    "{v:?} is not a SAS version edgesign signs; use one from {} to {} (default {})",
                    azure::OLDEST_VERSION,
                    azure::NEWEST_VERSION,
                    azure::DEFAULT_VERSION
                ),
            );
            azure::DEFAULT_VERSION.to_owned()
        }
    };
    let layout = endpoint(
        path,
        signer::azure_layout(o.endpoint.as_deref(), &account, &container),
        c,
    )?;
    let mut keys = Vec::new();
    for (j, k) in o.keys.iter().enumerate() {
        let kp = key_path(
            path,
            j,
            k,
            "azure",
            &["account_key", "account_key_env", "account_key_file"],
            c,
        );
        let Some(secret) = c.secret(
            &kp,
            "account_key",
            SecretFrom {
                inline: k.account_key.as_ref(),
                env: k.account_key_env.as_ref(),
                file: k.account_key_file.as_ref(),
            },
            true,
        ) else {
            continue;
        };
        match azure::AccountKey::from_base64(secret.expose()) {
            Ok(key) => keys.push(key),
            Err(_) => c.err(
                format!("{kp}.account_key"),
                "is not base64; paste the key as the portal or `az storage account keys list` shows it",
            ),
        }
    }
    Some(Azure {
        layout,
        account,
        container,
        sas_version,
        keys,
    })
}
