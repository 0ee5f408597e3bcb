//! Detection: from any URL, which scheme it carries, which object it names, when it expires,
//! its extra parameters, and — given the configured origins — whether it is genuine.
//! This is what `edgesign inspect` prints; it never panics on any input.

use serde::Serialize;

use super::Error;
use super::encoding::{percent_decode, rfc3339};
use super::signer::{OriginSigner, Scheme};
use super::url::RawUrl;
use super::{Method, azure, cloudfront, gcs, native, sigv4};

/// What a URL says about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inspection {
    /// `sigv4`, `cloudfront`, `gcs`, `azure`, `native` or `unsigned`; for a request's
    /// cookies, `cloudfront_cookies`.
    pub scheme: &'static str,
    /// Host as written in the URL.
    pub host: String,
    /// The object key, decoded for reading (lossy where not UTF-8).
    pub key: String,
    /// The object key exactly as it appears in the path.
    pub raw_key: String,
    /// The configured origin the URL belongs to, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// When the signature was made (SigV4 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signed_at: Option<String>,
    /// RFC 3339 expiry, when the URL carries one.
    pub expires_at: Option<String>,
    /// Whether that expiry has passed at the instant of inspection.
    pub expired: Option<bool>,
    /// Query parameters other than the scheme's own, raw.
    pub params: Vec<String>,
    /// Whether the signature verifies under the configured keys (only with a config).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub genuine: Option<bool>,
    /// The configured key that verified it (access key ID, `Key-Pair-Id` or `key_id`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Why it is not genuine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The GCS V4 algorithm (`GOOG4-RSA-SHA256`, `GOOG4-HMAC-SHA256`) or, for Azure, the SAS
    /// kind (`service`, `user_delegation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_kind: Option<&'static str>,
    /// CloudFront cookies: the policy's `Resource` (what they grant).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
}

/// Without a config, guess the key of an S3 URL: virtual-host style when the host names the
/// bucket (`<bucket>.s3…`), path style (first segment is the bucket) otherwise.
fn guess_s3_key<'u>(url: &RawUrl<'u>) -> &'u str {
    let path = url.path.strip_prefix('/').unwrap_or(url.path);
    let host = url.host.to_ascii_lowercase();
    let virtual_host = host.contains(".s3.") || host.contains(".s3-");
    if virtual_host {
        path
    } else {
        path.split_once('/').map_or("", |(_, key)| key)
    }
}

/// Inspects `url` at `now` (Unix seconds). With `origins`, the URL is matched to the origin
/// whose layout and scheme it fits and verified (request headers such as `range` are not
/// known here, so a URL that signs them is reported as not verifiable).
pub fn inspect(
    url: &str,
    now: u64,
    origins: Option<&[&OriginSigner]>,
) -> Result<Inspection, Error> {
    let parsed = RawUrl::parse(url)?;
    let scheme = Scheme::of_query(parsed.query);
    let mut signature_kind = None;
    let (expires_at, signed_at, params): (Option<u64>, Option<u64>, Vec<String>) = match scheme {
        Scheme::Sigv4 => {
            let p = sigv4::parse(parsed.query)?;
            let params = p.params.iter().map(|s| (*s).to_owned()).collect();
            (Some(p.expires_at()), Some(p.signed_at), params)
        }
        Scheme::CloudFront => {
            let p = cloudfront::parse(parsed.query)?;
            let expires = match (&p.policy, p.expires) {
                (Some(policy), _) => cloudfront::parse_policy(policy)
                    .ok()
                    .map(|(_, c)| c.date_less_than),
                (None, e) => e,
            };
            (
                expires,
                None,
                p.params.iter().map(|s| (*s).to_owned()).collect(),
            )
        }
        Scheme::Native => {
            let p = native::parse(parsed.query)?;
            (
                Some(p.expires),
                None,
                p.params.iter().map(|s| (*s).to_owned()).collect(),
            )
        }
        Scheme::Gcs => {
            let p = gcs::parse(parsed.query)?;
            signature_kind = Some(p.algorithm.name());
            let params = super::url::query_segments(parsed.query)
                .filter(|s| {
                    let name = s.split_once('=').map_or(*s, |(k, _)| k);
                    !gcs::AUTH_PARAMS
                        .iter()
                        .any(|n| n.eq_ignore_ascii_case(name))
                })
                .map(str::to_owned)
                .collect();
            (Some(p.expires_at()), Some(p.signed_at), params)
        }
        Scheme::Azure => {
            let p = azure::parse(parsed.query)?;
            signature_kind = Some(if p.user_delegation {
                "user_delegation"
            } else {
                "service"
            });
            let params = p.extra.iter().map(|s| (*s).to_owned()).collect();
            (Some(p.expires_at), p.starts_at, params)
        }
        Scheme::Unsigned => (
            None,
            None,
            super::url::query_segments(parsed.query)
                .map(str::to_owned)
                .collect(),
        ),
    };

    let mut origin = None;
    let mut genuine = None;
    let mut key_id = None;
    let mut reason = None;
    let mut raw_key = match scheme {
        Scheme::Sigv4 => guess_s3_key(&parsed),
        Scheme::Native => parsed
            .path
            .strip_prefix(super::native::PATH_PREFIX)
            .and_then(|rest| rest.split_once('/'))
            .map_or("", |(_, key)| key),
        _ => parsed.path.strip_prefix('/').unwrap_or(parsed.path),
    };
    if let Some(origins) = origins {
        let candidates = origins
            .iter()
            .filter(|o| scheme == Scheme::Unsigned || o.scheme() == scheme);
        let matched = candidates
            .into_iter()
            .find_map(|o| Some((o, o.key_of(&parsed)?)));
        match matched {
            Some((o, key)) => {
                origin = Some(o.name.clone());
                raw_key = key;
                if scheme != Scheme::Unsigned {
                    let verdict = o
                        .verify(&parsed, Method::Get, |_| None)
                        .or_else(|_| o.verify(&parsed, Method::Head, |_| None));
                    match verdict {
                        Ok(v) => {
                            genuine = Some(true);
                            key_id = Some(v.key_id);
                        }
                        Err(e) => {
                            genuine = Some(false);
                            reason = Some(e.to_string());
                        }
                    }
                }
            }
            None if scheme != Scheme::Unsigned => {
                genuine = Some(false);
                reason = Some("the URL belongs to no configured origin".to_owned());
            }
            None => {}
        }
    }

    Ok(Inspection {
        scheme: scheme.as_str(),
        host: parsed.host.to_owned(),
        key: String::from_utf8_lossy(&percent_decode(raw_key)).into_owned(),
        raw_key: raw_key.to_owned(),
        origin,
        signed_at: signed_at.map(rfc3339),
        expires_at: expires_at.map(rfc3339),
        expired: expires_at.map(|e| now >= e),
        params,
        genuine,
        key_id,
        reason,
        signature_kind,
        resource: None,
    })
}

/// Inspects the CloudFront signed cookies of a request for `url` (`cookie` as a `Cookie`
/// header: `CloudFront-Policy=…; CloudFront-Signature=…; CloudFront-Key-Pair-Id=…`). With
/// `origins`, they are verified by the CloudFront origin the URL belongs to: the signature,
/// and that the policy's `Resource` covers the URL.
pub fn inspect_cookies(
    url: &str,
    cookie: &str,
    now: u64,
    origins: Option<&[&OriginSigner]>,
) -> Result<Inspection, Error> {
    let parsed_url = RawUrl::parse(url)?;
    let parsed = super::cookies::parse([cookie]).ok_or(Error::InvalidSignature(
        "no CloudFront cookies (CloudFront-Signature, CloudFront-Key-Pair-Id, …)",
    ))??;
    let segments: Vec<&str> = super::url::query_segments(parsed_url.query).collect();
    let (expires_at, valid_from, resource) = match (&parsed.policy, parsed.expires) {
        (Some(policy), _) => {
            let (_, c) = cloudfront::parse_policy(policy)?;
            (c.date_less_than, c.date_greater_than, c.resource)
        }
        (None, e) => (
            e.unwrap_or_default(),
            None,
            cloudfront::resource_url(&parsed_url, &segments),
        ),
    };
    let mut report = Inspection {
        scheme: "cloudfront_cookies",
        host: parsed_url.host.to_owned(),
        key: String::new(),
        raw_key: String::new(),
        origin: None,
        signed_at: valid_from.map(rfc3339),
        expires_at: Some(rfc3339(expires_at)),
        expired: Some(now >= expires_at),
        params: segments.iter().map(|s| (*s).to_owned()).collect(),
        genuine: None,
        key_id: None,
        reason: None,
        signature_kind: Some(parsed.hash.as_str()),
        resource: Some(resource),
    };
    let mut raw_key = parsed_url.path.strip_prefix('/').unwrap_or(parsed_url.path);
    if let Some(origins) = origins {
        // Several origins may serve one distribution (one per key): the one whose key
        // verifies the cookies is theirs.
        let matched: Vec<_> = origins
            .iter()
            .filter(|o| o.scheme() == Scheme::CloudFront)
            .filter_map(|o| Some((o, o.key_of(&parsed_url)?)))
            .collect();
        let verdicts: Vec<_> = matched
            .iter()
            .map(|(o, key)| (o, *key, o.verify_cookies(&parsed_url, &parsed)))
            .collect();
        let chosen = verdicts
            .iter()
            .find(|(_, _, v)| v.is_ok())
            .or(verdicts.first());
        match chosen {
            Some((o, key, verdict)) => {
                report.origin = Some(o.name.clone());
                raw_key = key;
                match verdict {
                    Ok(v) => {
                        report.genuine = Some(true);
                        report.key_id = Some(v.key_id.clone());
                    }
                    Err(e) => {
                        report.genuine = Some(false);
                        report.reason = Some(e.to_string());
                    }
                }
            }
            None => {
                report.genuine = Some(false);
                report.reason =
                    Some("the URL belongs to no configured CloudFront origin".to_owned());
            }
        }
    }
    report.key = String::from_utf8_lossy(&percent_decode(raw_key)).into_owned();
    report.raw_key = raw_key.to_owned();
    Ok(report)
}
