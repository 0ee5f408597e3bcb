//! `[[origins]]` by kind (s3, cloudfront, local): keys and layout validated into an [`Origin`].

use crate::sign::cloudfront::{self, HashAlgorithm};
use crate::sign::native::NativeKey;
use crate::sign::signer::{self, CloudFront, CloudFrontKey, Kind, Layout, Local, OriginSigner, S3};
use crate::sign::sigv4::{self, Credentials};

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
        other => {
            c.err(
                format!("{path}.kind"),
                format!("{other:?} is not s3, cloudfront or local"),
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

/// An S3 origin, and where its credentials come from when the SDK's resolver provides them.
pub(super) fn validate_s3(
    path: &str,
    o: &RawOrigin,
    ttl: u64,
    c: &mut Checker<'_>,
) -> Option<(S3, Option<CredentialSource>)> {
    forbid(
        c,
        path,
        "s3",
        &[
            ("domain", o.domain.is_some()),
            ("hash_algorithm", o.hash_algorithm.is_some()),
            ("root", o.root.is_some()),
        ],
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
    let bucket = match o.bucket.as_deref() {
        Some(b) if !b.is_empty() && !b.contains(['/', '?', '#', ' ']) && b.is_ascii() => {
            b.to_owned()
        }
        Some(b) => {
            c.err(
                format!("{path}.bucket"),
                format!("{b:?} is not a bucket name"),
            );
            return None;
        }
        None => {
            c.err(format!("{path}.bucket"), "missing");
            return None;
        }
    };
    let layout = match signer::s3_layout(
        o.endpoint.as_deref(),
        &region,
        &bucket,
        o.path_style.unwrap_or(false),
    ) {
        Ok(l) => l,
        Err(e) => {
            c.err(format!("{path}.endpoint"), e);
            return None;
        }
    };
    let mut keys = Vec::new();
    let mut source = None;
    for (j, k) in o.keys.iter().enumerate() {
        let kp = format!("{path}.keys[{j}]");
        forbid(
            c,
            &kp,
            "s3",
            &[&k.cloudfront_fields()[..], &k.local_fields()[..]].concat(),
        );
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
    forbid(
        c,
        path,
        "cloudfront",
        &[
            ("region", o.region.is_some()),
            ("bucket", o.bucket.is_some()),
            ("path_style", o.path_style.is_some()),
            ("root", o.root.is_some()),
        ],
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
        let kp = format!("{path}.keys[{j}]");
        forbid(
            c,
            &kp,
            "cloudfront",
            &[&k.s3_fields()[..], &k.local_fields()[..]].concat(),
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
    })
}

pub(super) fn validate_local(
    path: &str,
    name: &str,
    o: &RawOrigin,
    server: &Server,
    c: &mut Checker<'_>,
) -> Option<Local> {
    forbid(
        c,
        path,
        "local",
        &[
            ("endpoint", o.endpoint.is_some()),
            ("region", o.region.is_some()),
            ("bucket", o.bucket.is_some()),
            ("domain", o.domain.is_some()),
            ("hash_algorithm", o.hash_algorithm.is_some()),
        ],
    );
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
        let kp = format!("{path}.keys[{j}]");
        forbid(
            c,
            &kp,
            "local",
            &[&k.s3_fields()[..], &k.cloudfront_fields()[..]].concat(),
        );
        let Some(id) = k.key_id.clone().filter(|i| valid_name(i)) else {
            c.err(
                format!("{kp}.key_id"),
                "missing or not made of letters, digits, '-', '_', '.'",
            );
            continue;
        };
        if let Some(secret) = c.secret(
            &kp,
            "secret",
            SecretFrom {
                inline: k.secret.as_ref(),
                env: k.secret_env.as_ref(),
                file: k.secret_file.as_ref(),
            },
            true,
        ) {
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
