//! Shell leaf: the audit log (`[audit] path`), one JSON line per access decision: every URL
//! handed out (stable link or API, cache hit or miss), every stale URL rescued, every signed
//! URL served as it was, every signed URL refused, every revoked request. Nothing in a line
//! is a credential: the principal is `key:<first 12 hex of the key's SHA-256>`, `jwt:<sub>` or
//! `anonymous`, and a signature appears only as the first 16 hex digits of its SHA-256
//! (`sig_digest`).
//!
//! The request path only queues the decision (a bounded channel of [`QUEUE`] lines); a thread
//! of its own formats and appends them, each `write` holding whole lines. When the queue is
//! full (a disk slower than the traffic), the line is **dropped and counted**
//! (`edgesign_audit_lines_total{result="dropped"}`), never waited for: an audit log that
//! blocks would turn a slow or full disk into an outage of every request, and a count that
//! an alert watches says exactly how many decisions went unrecorded. A reload opens the path
//! again (a new writer; the old one drains into the old file), so logrotate's
//! rename-then-`SIGHUP` works. At exit, [`finish`] has every writer write what is queued
//! before the process ends.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::Digest;

use crate::metrics::Metrics;

/// Lines the writer may be behind by before lines are dropped.
pub const QUEUE: usize = 65_536;

/// How long the writer rests after a write: a line reaches the file within about this.
const REST: Duration = Duration::from_millis(5);

/// How often an idle writer looks whether [`finish`] asked it to stop.
const WAKE: Duration = Duration::from_millis(100);

/// Writers started and not yet known to have ended (a reload starts one), for [`finish`].
static WRITERS: Mutex<Vec<Writer>> = Mutex::new(Vec::new());

/// One writer thread, and the flag that asks it to write what is queued and stop.
struct Writer {
    thread: JoinHandle<()>,
    closing: Arc<AtomicBool>,
}

/// At exit, once nothing records any more: has every writer write what is queued, and waits
/// for them, up to `within`. Without it, lines still queued when `main` returns are lost
/// (the writer is a thread of its own, which the process's exit ends wherever it is).
/// Returns whether every writer finished in time.
pub fn finish(within: Duration) -> bool {
    let writers = std::mem::take(&mut *WRITERS.lock().unwrap_or_else(PoisonError::into_inner));
    for w in &writers {
        w.closing.store(true, Ordering::Release);
    }
    let deadline = crate::clock::instant() + within;
    let mut all = true;
    for w in writers {
        while !w.thread.is_finished() && crate::clock::instant() < deadline {
            std::thread::sleep(REST);
        }
        if w.thread.is_finished() {
            let _ = w.thread.join();
        } else {
            all = false;
        }
    }
    all
}

/// Where the lines go: a queue to the writer thread.
#[derive(Debug)]
pub struct AuditLog {
    queue: SyncSender<Line>,
    metrics: Arc<Metrics>,
}

enum Out {
    Stdout,
    File(std::fs::File),
}

/// One decision, owned, on its way to the writer.
struct Line {
    ts: std::time::SystemTime,
    request_id: String,
    client: std::net::IpAddr,
    principal: String,
    org: Option<String>,
    origin: String,
    key: String,
    scheme: &'static str,
    decision: Decision,
    expires_at: Option<u64>,
    /// The signature (digested by the writer; never written).
    signature: Option<String>,
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
    /// `sigv4`, `cloudfront`, `gcs`, `azure`, `native`.
    pub scheme: &'static str,
    /// What was decided.
    pub decision: Decision,
    /// When the URL handed out or served expires (Unix seconds).
    pub expires_at: Option<u64>,
    /// The URL whose signature is digested (the one handed out, or the one presented).
    pub url: Option<&'a str>,
}

/// The signature of a signed URL as it appears in it: SigV4's `X-Amz-Signature`,
/// CloudFront's `Signature` (a cookie set's `CloudFront-Signature`), GCS's `X-Goog-Signature`
/// (any case), Azure's `sig`, edgesign's `signature`.
fn signature_of(url: &str) -> Option<&str> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|seg| {
        let (name, value) = seg.split_once('=')?;
        (matches!(
            name,
            "X-Amz-Signature" | "Signature" | "signature" | "sig" | "CloudFront-Signature"
        ) || name.eq_ignore_ascii_case("x-goog-signature"))
        .then_some(value)
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

/// RFC 3339 of any instant a URL may claim (years past 9999 read as 9999-12-31T23:59:59Z:
/// a hostile expiry never stops the writer).
fn rfc3339(unix: u64) -> String {
    crate::sign::encoding::rfc3339(unix)
}

impl AuditLog {
    /// Opens `path` for appending (creating it), or stdout for `"-"`, and starts its writer.
    /// Fails naming the key.
    pub fn open(path: &Path, metrics: Arc<Metrics>) -> Result<AuditLog, String> {
        let out = if path == Path::new("-") {
            Out::Stdout
        } else {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(Out::File)
                .map_err(|e| {
                    format!(
                        "audit.path: cannot open {} for appending ({e})",
                        path.display()
                    )
                })?
        };
        let (queue, lines) = std::sync::mpsc::sync_channel(QUEUE);
        let counts = metrics.clone();
        let closing = Arc::new(AtomicBool::new(false));
        let asked = closing.clone();
        let thread = std::thread::Builder::new()
            .name("edgesign-audit".to_owned())
            .spawn(move || write_lines(&lines, out, &counts, &asked))
            .map_err(|e| format!("audit.path: cannot start the audit writer ({e})"))?;
        let mut writers = WRITERS.lock().unwrap_or_else(PoisonError::into_inner);
        writers.retain(|w| !w.thread.is_finished());
        writers.push(Writer { thread, closing });
        Ok(AuditLog { queue, metrics })
    }

    /// Queues one line for `event`; never waits. A full queue drops the line and counts it.
    pub fn record(&self, event: &Event<'_>) {
        let line = Line {
            ts: crate::clock::now(),
            request_id: event.request_id.to_owned(),
            client: event.client,
            principal: event.principal.clone(),
            org: event.org.map(str::to_owned),
            origin: event.origin.to_owned(),
            key: event.key.clone(),
            scheme: event.scheme,
            decision: event.decision,
            expires_at: event.expires_at,
            signature: event.url.and_then(signature_of).map(str::to_owned),
        };
        match self.queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.metrics.audit_lines("dropped", 1),
            Err(TrySendError::Disconnected(_)) => self.metrics.audit_lines("failed", 1),
        }
    }
}

impl Line {
    fn append_to(&self, buf: &mut Vec<u8>) {
        /// The line as written, field by field in this order.
        #[derive(serde::Serialize)]
        struct Json<'a> {
            ts: String,
            request_id: &'a str,
            client: std::net::IpAddr,
            principal: &'a str,
            org: Option<&'a str>,
            origin: &'a str,
            key: &'a str,
            scheme: &'a str,
            decision: &'a str,
            expires_at: Option<String>,
            sig_digest: Option<String>,
        }
        let json = Json {
            ts: humantime::format_rfc3339_millis(self.ts).to_string(),
            request_id: &self.request_id,
            client: self.client,
            principal: &self.principal,
            org: self.org.as_deref(),
            origin: &self.origin,
            key: &self.key,
            scheme: self.scheme,
            decision: self.decision.as_str(),
            expires_at: self.expires_at.map(rfc3339),
            sig_digest: self.signature.as_deref().map(digest),
        };
        // Writing JSON into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *buf, &json);
        buf.push(b'\n');
    }
}

/// The writer: takes what is queued (up to 256 KiB at a time), appends it in one `write`,
/// until every sender is gone, or until `closing` is set and nothing is queued. After a
/// write it rests [`REST`], so that under load lines gather into batches and a request
/// queueing one does not wake a thread each time.
fn write_lines(lines: &Receiver<Line>, out: Out, metrics: &Metrics, closing: &AtomicBool) {
    let mut buf = Vec::with_capacity(256 * 1024);
    let mut warned: Option<std::time::Instant> = None;
    // A write that failed part-way may have left half a line: the next batch starts on a
    // line of its own.
    let mut torn = false;
    loop {
        let first = if closing.load(Ordering::Acquire) {
            match lines.try_recv() {
                Ok(line) => line,
                Err(_) => break,
            }
        } else {
            match lines.recv_timeout(WAKE) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        };
        buf.clear();
        if torn {
            buf.push(b'\n');
        }
        first.append_to(&mut buf);
        let mut n = 1;
        while buf.len() < 256 * 1024 {
            let Ok(next) = lines.try_recv() else { break };
            next.append_to(&mut buf);
            n += 1;
        }
        let written = match &out {
            Out::File(f) => (&*f).write_all(&buf),
            Out::Stdout => std::io::stdout().lock().write_all(&buf),
        };
        match written {
            Ok(()) => {
                torn = false;
                metrics.audit_lines("written", n);
                if !closing.load(Ordering::Acquire) {
                    std::thread::sleep(REST);
                }
            }
            Err(e) => {
                torn = true;
                metrics.audit_lines("failed", n);
                // At most one warning every 10 s: a full disk fails every write.
                let now = crate::clock::instant();
                if warned.is_none_or(|w| now.duration_since(w).as_secs() >= 10) {
                    warned = Some(now);
                    tracing::warn!(target: "edgesign::audit", error = %e, lines = n, "cannot write the audit log");
                }
            }
        }
    }
    // Lines queued after a closing writer found the queue empty (requests still running
    // when `shutdown_grace` ran out): not written, so counted as failed, not lost unseen.
    let left = lines.try_iter().count();
    if left > 0 {
        metrics.audit_lines("failed", left as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::signature_of;

    #[test]
    #[allow(clippy::unwrap_used, reason = "a test")]
    fn finish_writes_every_queued_line_before_returning() {
        use super::{AuditLog, Decision, Event, QUEUE};
        let dir =
            std::env::temp_dir().join(format!("edgesign-audit-finish-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.log");
        let _ = std::fs::remove_file(&path);
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
        let log = AuditLog::open(&path, metrics).unwrap();
        // More than one batch of 256 KiB, queued faster than the writer writes them.
        let n = QUEUE / 4;
        for i in 0..n {
            log.record(&Event {
                request_id: &format!("req-{i}"),
                client: std::net::Ipv4Addr::LOCALHOST.into(),
                principal: "anonymous".into(),
                org: None,
                origin: "demo",
                key: format!("objects/{i}.bin"),
                scheme: "s3",
                decision: Decision::Minted,
                expires_at: Some(1_800_000_000),
                url: None,
            });
        }
        // The log stays open (a request could still hold the app): finish must not wait
        // for it to be dropped.
        assert!(super::finish(std::time::Duration::from_secs(30)));
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written.lines().count(), n);
        assert!(
            written
                .lines()
                .last()
                .unwrap()
                .contains(&format!("\"req-{}\"", n - 1))
        );
        drop(log);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_signature_of_every_scheme_is_found() {
        for (url, sig) in [
            (
                "https://b.s3.amazonaws.com/k?X-Amz-Date=1&X-Amz-Signature=abc",
                "abc",
            ),
            (
                "https://d.cloudfront.net/k?Expires=1&Signature=a~b&Key-Pair-Id=K",
                "a~b",
            ),
            (
                "https://storage.googleapis.com/b/k?X-Goog-Date=1&X-Goog-Signature=0f",
                "0f",
            ),
            (
                "https://storage.googleapis.com/b/k?x-goog-signature=0e&x-goog-date=1",
                "0e",
            ),
            (
                "https://a.blob.core.windows.net/c/k?se=x&sp=r&sig=s%2Fg%3D",
                "s%2Fg%3D",
            ),
            (
                "http://127.0.0.1/_origin/demo/k?expires=1&key_id=d&signature=n-s",
                "n-s",
            ),
        ] {
            assert_eq!(signature_of(url), Some(sig), "{url}");
        }
        assert_eq!(signature_of("https://h/k?X-Amz-Date=1"), None);
    }
}
