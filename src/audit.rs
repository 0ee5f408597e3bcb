//! Shell leaf: the audit log (`[audit] path`), one JSON line per access decision: every URL
//! handed out (stable link or API, cache hit or miss), every stale URL rescued, every signed
//! URL served as it was, every signed URL refused, every revoked request. Each line is one
//! `write` to a file opened for appending (or to stdout with `"-"`); a reload opens the path
//! again, so logrotate's rename-then-`SIGHUP` works. Nothing in a line is a credential: the
//! principal is `key:<first 12 hex of the key's SHA-256>`, `jwt:<sub>` or `anonymous`, and a
//! signature appears only as the first 16 hex digits of its SHA-256 (`sig_digest`).

use std::io::Write;
use std::path::Path;

use sha2::Digest;

/// Where the lines go.
#[derive(Debug)]
pub struct AuditLog {
    out: Out,
}

#[derive(Debug)]
enum Out {
    Stdout,
    File(std::fs::File),
}

/// What was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A fresh URL handed out.
    Minted,
    /// A stale URL re-signed.
    Rescued,
    /// A genuine, valid signed URL served as it was.
    Served,
    /// A signed URL refused (forged, expired without credentials, not valid yet).
    Refused,
    /// Refused by a revocation.
    Revoked,
}

impl Decision {
    fn as_str(self) -> &'static str {
        match self {
            Decision::Minted => "minted",
            Decision::Rescued => "rescued",
            Decision::Served => "served",
            Decision::Refused => "refused",
            Decision::Revoked => "revoked",
        }
    }
}

/// One decision, as the handlers know it.
#[derive(Debug)]
pub struct Event<'a> {
    /// The request's id.
    pub request_id: &'a str,
    /// The client's address (through trusted proxies).
    pub client: std::net::IpAddr,
    /// `key:<12 hex>`, `jwt:<sub>` or `anonymous`.
    pub principal: String,
    /// The caller's org.
    pub org: Option<&'a str>,
    /// Origin name.
    pub origin: &'a str,
    /// The object key, decoded.
    pub key: String,
    /// `sigv4`, `cloudfront`, `native`.
    pub scheme: &'a str,
    /// What was decided.
    pub decision: Decision,
    /// When the URL handed out or served expires (Unix seconds).
    pub expires_at: Option<u64>,
    /// The URL whose signature is digested (the one handed out, or the one presented).
    pub url: Option<&'a str>,
}

/// The signature of a signed URL as it appears in it: SigV4's `X-Amz-Signature`,
/// CloudFront's `Signature`, edgesign's `signature`.
fn signature_of(url: &str) -> Option<&str> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|seg| {
        let (name, value) = seg.split_once('=')?;
        matches!(name, "X-Amz-Signature" | "Signature" | "signature").then_some(value)
    })
}

/// How a caller is named in the audit log: never a key or a token.
pub fn principal_label(auth: &crate::auth::Auth, p: &crate::auth::Principal) -> String {
    use crate::auth::Principal;
    match p {
        Principal::Anonymous => "anonymous".to_owned(),
        Principal::ApiKey { index, .. } => auth.api_keys.get(*index).map_or_else(
            || "key:?".to_owned(),
            |k| format!("key:{}", &hex::encode(k.sha256)[..12]),
        ),
        Principal::Jwt { subject, .. } => format!("jwt:{}", subject.as_deref().unwrap_or("")),
    }
}

/// The first 16 hex digits of the SHA-256 of `sig`.
pub fn digest(sig: &str) -> String {
    hex::encode(&sha2::Sha256::digest(sig.as_bytes())[..8])
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

impl AuditLog {
    /// Opens `path` for appending (creating it), or stdout for `"-"`. Fails naming the key.
    pub fn open(path: &Path) -> Result<AuditLog, String> {
        if path == Path::new("-") {
            return Ok(AuditLog { out: Out::Stdout });
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(|f| AuditLog { out: Out::File(f) })
            .map_err(|e| {
                format!(
                    "audit.path: cannot open {} for appending ({e})",
                    path.display()
                )
            })
    }

    /// Writes one line for `event`. A failed write is logged, never the request's failure.
    pub fn record(&self, event: &Event<'_>) {
        let line = serde_json::json!({
            "ts": humantime::format_rfc3339_millis(crate::clock::now()).to_string(),
            "request_id": event.request_id,
            "client": event.client.to_string(),
            "principal": event.principal,
            "org": event.org,
            "origin": event.origin,
            "key": event.key,
            "scheme": event.scheme,
            "decision": event.decision.as_str(),
            "expires_at": event.expires_at.map(rfc3339),
            "sig_digest": event.url.and_then(signature_of).map(digest),
        });
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        let written = match &self.out {
            Out::File(f) => (&*f).write_all(&bytes),
            Out::Stdout => std::io::stdout().lock().write_all(&bytes),
        };
        if let Err(e) = written {
            tracing::warn!(target: "edgesign::audit", error = %e, "cannot write the audit log");
        }
    }
}
