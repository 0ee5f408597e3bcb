//! A cached URL as the cache holds it: its difference from a reference URL of the same origin.
//!
//! Two URLs minted for one origin in one time bucket differ in two places: the object's path
//! and the signature. The scheme, host, bucket, credential, date, expiry and the names of the
//! query parameters are the same bytes. So an entry keeps only what differs, against a
//! reference URL that many entries share (one allocation, counted once):
//!
//! ```text
//! url = reference[..head] + literal[..mid] + reference[run..run + run_len]
//!     + literal[mid..] + reference[reference.len() - tail..]
//! ```
//!
//! `head` is the common prefix, the run is the longest common stretch from each URL's query
//! (`?`), and `tail` is what both end with after it (CloudFront's `&Key-Pair-Id=…`). A
//! query literal in lowercase hex (a SigV4 or GCS signature) is kept as the bytes it spells.
//! A SigV4 URL of 311 bytes is then its path's differing tail and 32 bytes of signature, in
//! one allocation with its expiry and the spans. The split is
//! found byte by byte, so it is exact for any URL, whatever the scheme; a URL that shares
//! little with the reference is simply a longer literal (and becomes the next reference, see
//! [`Packed::worth_a_new_reference`]).
//!
//! Pure: no IO, no clock.

use std::sync::Arc;

/// One URL, stored as its difference from `reference`. See the module's note. Cloning
/// shares both allocations.
#[derive(Debug, Clone)]
pub struct Packed {
    /// A thin pointer (`Arc<String>`, not `Arc<str>`): moka keeps a `Packed` in each of
    /// its nodes, and 8 bytes less per node is a smaller allocation.
    reference: Arc<String>,
    /// One allocation: the header (expiry, then the five spans, then flags; see
    /// [`HEADER`]), then the differing bytes: the path's (`mid` of them) and the query's.
    record: Arc<[u8]>,
}

/// Expiry (Unix seconds, u64), `head`, `mid`, `run`, `run_len`, `tail` (u16 each), flags.
const HEADER: usize = 8 + 5 * 2 + 1;

/// Flag: the query's differing bytes are lowercase hex (a SigV4 or GCS signature), stored
/// as the bytes they spell, at half the length.
const HEX: u8 = 1;

impl Packed {
    /// `url` as its difference from `reference`.
    pub fn new(url: &str, reference: Arc<String>, expires_at: u64) -> Packed {
        let (u, r) = (url.as_bytes(), reference.as_bytes());
        // Spans are 16 bits: a URL or reference over 64 KiB is kept whole.
        if u.len() > usize::from(u16::MAX) || r.len() > usize::from(u16::MAX) {
            return Packed::whole(url, expires_at);
        }
        let head = common_prefix(u, r);
        // The query of each, from the first `?` at or after the shared head.
        let q = find_query(u, head);
        let qr = find_query(r, head);
        let run_len = common_prefix(&u[q..], &r[qr..]);
        let (rest, rest_r) = (&u[q + run_len..], &r[qr + run_len..]);
        let tail = common_suffix(rest, rest_r);
        let spans = [head, q - head, qr, run_len, tail];
        Packed::build(
            reference,
            expires_at,
            spans,
            &u[head..q],
            &rest[..rest.len() - tail],
        )
    }

    /// `url` kept whole (nothing shared).
    fn whole(url: &str, expires_at: u64) -> Packed {
        Packed::build(Arc::default(), expires_at, [0; 5], b"", url.as_bytes())
    }

    fn build(
        reference: Arc<String>,
        expires_at: u64,
        spans: [usize; 5],
        path: &[u8],
        query: &[u8],
    ) -> Packed {
        let hex = query.len() >= 16
            && query.len().is_multiple_of(2)
            && query.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let query_len = if hex { query.len() / 2 } else { query.len() };
        let mut record = Vec::with_capacity(HEADER + path.len() + query_len);
        record.extend_from_slice(&expires_at.to_le_bytes());
        for span in spans {
            record.extend_from_slice(&u16::try_from(span).unwrap_or(u16::MAX).to_le_bytes());
        }
        record.push(if hex { HEX } else { 0 });
        record.extend_from_slice(path);
        if hex {
            record.extend(
                query
                    .chunks_exact(2)
                    .map(|d| nibble(d[0]) << 4 | nibble(d[1])),
            );
        } else {
            record.extend_from_slice(query);
        }
        Packed {
            reference,
            record: Arc::from(record),
        }
    }

    /// Unix seconds when the URL stops working.
    pub fn expires_at(&self) -> u64 {
        let mut at = [0u8; 8];
        at.copy_from_slice(&self.record[..8]);
        u64::from_le_bytes(at)
    }

    /// The `i`th span of the header: `head`, `mid`, `run`, `run_len`, `tail`.
    fn span(&self, i: usize) -> usize {
        usize::from(u16::from_le_bytes([
            self.record[8 + 2 * i],
            self.record[9 + 2 * i],
        ]))
    }

    fn hex(&self) -> bool {
        self.record[HEADER - 1] & HEX != 0
    }

    /// The URL, rebuilt, in a string of exactly its length.
    pub fn url(&self) -> String {
        let r = self.reference.as_bytes();
        let [head, mid, run, run_len, tail] = [0, 1, 2, 3, 4].map(|i| self.span(i));
        let (path, query) = self.record[HEADER..].split_at(mid);
        let mut url = Vec::with_capacity(self.len());
        url.extend_from_slice(&r[..head]);
        url.extend_from_slice(path);
        url.extend_from_slice(&r[run..run + run_len]);
        if self.hex() {
            for &b in query {
                url.extend_from_slice(&[
                    HEX_DIGITS[usize::from(b >> 4)],
                    HEX_DIGITS[usize::from(b & 15)],
                ]);
            }
        } else {
            url.extend_from_slice(query);
        }
        url.extend_from_slice(&r[r.len() - tail..]);
        // Every piece was cut on a character boundary of a `str`.
        String::from_utf8(url)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The URL's length in bytes.
    pub fn len(&self) -> usize {
        let query = self.record.len() - HEADER - self.span(1);
        let query = if self.hex() { query * 2 } else { query };
        self.span(0) + self.span(1) + self.span(3) + self.span(4) + query
    }

    /// Whether the URL is empty (only an empty URL is).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes this entry owns: its record, not the shared reference.
    pub fn owned_bytes(&self) -> usize {
        self.record.len()
    }

    /// Whether this URL shares so little with its reference (under half its bytes) that it
    /// should be the reference of the URLs minted after it.
    pub fn worth_a_new_reference(&self) -> bool {
        self.span(0) + self.span(3) + self.span(4) < self.len() / 2
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The value of a lowercase hex digit.
fn nibble(d: u8) -> u8 {
    match d {
        b'a'..=b'f' => d - b'a' + 10,
        _ => d.wrapping_sub(b'0'),
    }
}

/// Where `s`'s query starts at or after `from` (its `?`), or its end.
fn find_query(s: &[u8], from: usize) -> usize {
    s[from..]
        .iter()
        .position(|&b| b == b'?')
        .map_or(s.len(), |i| from + i)
}

/// Bytes `a` and `b` start with alike, ending on a UTF-8 character boundary of both.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let mut n = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    while n > 0 && (is_continuation(a.get(n)) || is_continuation(b.get(n))) {
        n -= 1;
    }
    n
}

/// Bytes `a` and `b` end with alike, starting on a UTF-8 character boundary of both.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    let mut n = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    while n > 0 && is_continuation(a.get(a.len() - n)) {
        n -= 1;
    }
    n
}

fn is_continuation(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b & 0xC0 == 0x80)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SIGV4: &str = "https://s3.example.com/bucket/keys/1.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256\
        &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261203%2Fus-east-1%2Fs3%2Faws4_request\
        &X-Amz-Date=20261203T000000Z&X-Amz-Expires=4500&X-Amz-SignedHeaders=host\
        &X-Amz-Signature=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn a_sigv4_url_keeps_only_its_path_and_signature() {
        let other = SIGV4
            .replace("keys/1.bin", "keys/23456.bin")
            .replace(&"a".repeat(64), &"b".repeat(64));
        let p = Packed::new(&other, Arc::new(SIGV4.to_string()), 7);
        assert_eq!(p.url(), other);
        assert_eq!(p.len(), other.len());
        // The path's tail, and the signature's 64 hex digits as 32 bytes.
        assert_eq!(p.owned_bytes(), HEADER + "23456.bin".len() + 32);
        assert_eq!(p.expires_at(), 7);
        assert!(!p.worth_a_new_reference());
    }

    #[test]
    fn a_cloudfront_url_shares_its_key_pair_id_tail() {
        let reference = "https://d1.cloudfront.net/a.txt?Expires=100&Signature=AAAA~~&Key-Pair-Id=K2JCJMDEHXQW5F";
        let url = "https://d1.cloudfront.net/bb.txt?Expires=100&Signature=BBBBBB&Key-Pair-Id=K2JCJMDEHXQW5F";
        let p = Packed::new(url, Arc::new(reference.to_string()), 7);
        assert_eq!(p.url(), url);
        assert_eq!(p.owned_bytes(), HEADER + "bb.txt".len() + "BBBBBB".len());
    }

    #[test]
    fn a_url_unlike_its_reference_is_kept_and_says_so() {
        let url = "https://elsewhere.example/x?sig=1";
        let p = Packed::new(url, Arc::new(SIGV4.to_string()), 7);
        assert_eq!(p.url(), url);
        assert!(p.worth_a_new_reference());
        let own = Packed::new(url, Arc::new(url.to_string()), 7);
        assert_eq!((own.url().as_str(), own.owned_bytes()), (url, HEADER));
        let huge = format!("https://o/{}", "k".repeat(70_000));
        let whole = Packed::new(&huge, Arc::new(SIGV4.to_string()), 7);
        assert_eq!((whole.url(), whole.expires_at()), (huge, 7));
    }

    proptest! {
        /// Exact for any pair of strings, multi-byte characters, `?`s and all.
        #[test]
        fn any_url_is_rebuilt_exactly(
            url in "[a-fA?é/&=0-9]{0,60}",
            reference in "[a-fA?é/&=0-9]{0,60}",
            expires_at in any::<u64>(),
        ) {
            let p = Packed::new(&url, Arc::new(reference.clone()), expires_at);
            prop_assert_eq!(p.url(), url.clone());
            prop_assert_eq!(p.len(), url.len());
            prop_assert_eq!(p.expires_at(), expires_at);
            prop_assert!(p.owned_bytes() <= HEADER + url.len());
        }
    }
}
