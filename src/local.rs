//! Serving a `local` origin's directory: the CDN of the `local` kind. The proxy calls this
//! only after a genuine, unexpired native signature (or a stable link in stream mode).
//!
//! Nothing outside the root is ever opened: the key is percent-decoded once and split on `/`;
//! empty, `.` and `..` segments, backslashes and NUL are refused; and the opened path,
//! symlinks resolved, must still lie under the (canonical) root.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::Error;
use crate::respond::Body;
use crate::sign::Method;
use crate::sign::encoding::percent_decode;

/// The file a raw key names under `root`, or `NotFound` for anything that is not a plain
/// relative path to a regular file inside it.
pub async fn resolve(root: &Path, raw_key: &str) -> Result<PathBuf, Error> {
    let decoded = percent_decode(raw_key);
    let key = std::str::from_utf8(&decoded).map_err(|_| Error::NotFound)?;
    if key.is_empty() || key.contains(['\\', '\0']) {
        return Err(Error::NotFound);
    }
    let mut path = root.to_path_buf();
    for seg in key.split('/') {
        if seg.is_empty() || seg == "." || seg == ".." {
            return Err(Error::NotFound);
        }
        path.push(seg);
    }
    let real = tokio::fs::canonicalize(&path)
        .await
        .map_err(|_| Error::NotFound)?;
    if !real.starts_with(root) {
        return Err(Error::NotFound);
    }
    let meta = tokio::fs::metadata(&real)
        .await
        .map_err(|_| Error::NotFound)?;
    if !meta.is_file() {
        return Err(Error::NotFound);
    }
    Ok(real)
}

fn etag(len: u64, mtime: u64) -> String {
    format!("\"{mtime:x}-{len:x}\"")
}

fn etag_matches(list: &str, tag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == tag)
}

fn header_str<'h>(h: &'h HeaderMap, name: &header::HeaderName) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// A single byte range of a `len`-byte file (RFC 9110 §14.1.2). `Ok(None)`: serve it all
/// (no or unsupported Range); `Err(())`: unsatisfiable.
fn byte_range(range: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = range.and_then(|r| r.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multipart ranges: answer with the whole file
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (start, end) = match (a.trim(), b.trim()) {
        ("", "") => return Ok(None),
        ("", n) => {
            let n: u64 = n.parse().map_err(|_| ())?;
            if n == 0 || len == 0 {
                return Err(());
            }
            (len.saturating_sub(n), len - 1)
        }
        (s, e) => {
            let s: u64 = s.parse().map_err(|_| ())?;
            let e: u64 = if e.is_empty() {
                len.saturating_sub(1)
            } else {
                e.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))
            };
            if s >= len || e < s {
                return Err(());
            }
            (s, e)
        }
    };
    Ok(Some((start, end)))
}

fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// Serves `path` with `Range`, conditional requests (`If-Match`, `If-Unmodified-Since`,
/// `If-None-Match`, `If-Modified-Since`) and `HEAD`, streaming the body.
pub async fn serve(path: &Path, method: Method, req: &HeaderMap) -> Result<Response<Body>, Error> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|_| Error::NotFound)?;
    let meta = file.metadata().await.map_err(|_| Error::NotFound)?;
    let len = meta.len();
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let mtime = modified
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let tag = etag(len, mtime);
    let last_modified = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(mtime));
    let since = |name| {
        header_str(req, name)
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .map(|t: SystemTime| {
                t.duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            })
    };

    let mut builder = Response::builder()
        .header(header::ETAG, &tag)
        .header(header::LAST_MODIFIED, &last_modified)
        .header(header::ACCEPT_RANGES, "bytes");
    // RFC 9110 §13.2.2: If-Match, then If-Unmodified-Since, then If-None-Match, then
    // If-Modified-Since.
    let precondition_failed = match header_str(req, &header::IF_MATCH) {
        Some(list) => !etag_matches(list, &tag),
        None => since(&header::IF_UNMODIFIED_SINCE).is_some_and(|t| mtime > t),
    };
    if precondition_failed {
        return Err(Error::PreconditionFailed);
    }
    let not_modified = match header_str(req, &header::IF_NONE_MATCH) {
        Some(list) => etag_matches(list, &tag),
        None => since(&header::IF_MODIFIED_SINCE).is_some_and(|t| mtime <= t),
    };
    if not_modified {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(empty())
            .map_err(|e| Error::Internal(e.to_string()));
    }
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    builder = builder.header(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime.as_ref())
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    let (status, start, count) = match byte_range(header_str(req, &header::RANGE), len) {
        Ok(None) => (StatusCode::OK, 0, len),
        Ok(Some((s, e))) => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {s}-{e}/{len}"));
            (StatusCode::PARTIAL_CONTENT, s, e - s + 1)
        }
        Err(()) => {
            return Err(Error::RangeNotSatisfiable {
                content_range: Some(format!("bytes */{len}")),
            });
        }
    };
    builder = builder.status(status).header(header::CONTENT_LENGTH, count);
    if method == Method::Head {
        return builder
            .body(empty())
            .map_err(|e| Error::Internal(e.to_string()));
    }
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(|e| Error::Internal(format!("seek: {e}")))?;
    let stream = tokio_util::io::ReaderStream::with_capacity(file.take(count), 64 * 1024)
        .map_ok(Frame::data)
        .map_err(|e| -> crate::respond::BoxError { Box::new(e) });
    builder
        .body(StreamBody::new(stream).boxed_unsync())
        .map_err(|e| Error::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(byte_range(Some("bytes=0-99"), 1000), Ok(Some((0, 99))));
        assert_eq!(byte_range(Some("bytes=990-"), 1000), Ok(Some((990, 999))));
        assert_eq!(byte_range(Some("bytes=-10"), 1000), Ok(Some((990, 999))));
        assert_eq!(byte_range(Some("bytes=0-5000"), 1000), Ok(Some((0, 999))));
        assert_eq!(byte_range(Some("bytes=1000-"), 1000), Err(()));
        assert_eq!(byte_range(Some("bytes=0-1,5-6"), 1000), Ok(None));
        assert_eq!(byte_range(Some("items=0-1"), 1000), Ok(None));
        assert_eq!(byte_range(None, 1000), Ok(None));
    }
}
