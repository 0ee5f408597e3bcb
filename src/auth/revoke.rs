//! Revocations: an object key, a key prefix (each of one origin), or a principal (an API
//! key's SHA-256, or a JWT `sub`), refused with `403 revoked` until the revocation expires or
//! is deleted. Pure: the set, its lookups and who may revoke what; where revocations are kept
//! (this process, or Redis for a fleet) is the shell's `fleet`.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::keypath::{self, Judged};
use super::{ApiKeyKind, Auth, Principal};
use crate::Error;

/// Longest `reason` kept.
pub const MAX_REASON: usize = 500;

/// What is revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One object of one origin (the key as stored, e.g. `acme/report.pdf`).
    Key {
        /// Origin name.
        origin: String,
        /// Object key.
        key: String,
    },
    /// Every object under a prefix of one origin.
    Prefix {
        /// Origin name.
        origin: String,
        /// Key prefix.
        prefix: String,
    },
    /// Everything a principal asks: an API key's SHA-256 (hex) or a JWT `sub`.
    Principal(String),
}

/// One revocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Its id (`rev_` and 16 hex digits).
    pub id: String,
    /// What it revokes.
    pub target: Target,
    /// Why, as the revoker wrote it.
    pub reason: Option<String>,
    /// When it was made (Unix seconds).
    pub created_at: u64,
    /// When it lapses (Unix seconds), or never.
    pub expires_at: Option<u64>,
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix))
        .to_string()
}

impl Revocation {
    /// Whether it still holds at `now`.
    pub fn live(&self, now: u64) -> bool {
        self.expires_at.is_none_or(|e| e > now)
    }

    /// The JSON of `GET /v1/revocations`.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "reason": self.reason,
            "created_at": rfc3339(self.created_at),
            "expires_at": self.expires_at.map(rfc3339),
        });
        match &self.target {
            Target::Key { origin, key } => {
                v["origin"] = json!(origin);
                v["key"] = json!(key);
            }
            Target::Prefix { origin, prefix } => {
                v["origin"] = json!(origin);
                v["prefix"] = json!(prefix);
            }
            Target::Principal(p) => v["principal"] = json!(p),
        }
        v
    }

    /// How it is stored (Redis hash values): the same JSON with Unix times.
    pub fn to_stored(&self) -> String {
        let mut v = self.to_json();
        v["created_at"] = json!(self.created_at);
        v["expires_at"] = json!(self.expires_at);
        v.to_string()
    }

    /// Reads [`Revocation::to_stored`]'s form back.
    pub fn from_stored(text: &str) -> Option<Revocation> {
        let v: Value = serde_json::from_str(text).ok()?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let target = match (s("origin"), s("key"), s("prefix"), s("principal")) {
            (Some(origin), Some(key), None, None) => Target::Key { origin, key },
            (Some(origin), None, Some(prefix), None) => Target::Prefix { origin, prefix },
            (None, None, None, Some(p)) => Target::Principal(p),
            _ => return None,
        };
        Some(Revocation {
            id: s("id")?,
            target,
            reason: s("reason"),
            created_at: v.get("created_at")?.as_u64()?,
            expires_at: v.get("expires_at").and_then(Value::as_u64),
        })
    }
}

/// The revocations in force, indexed for the hot path: a request asks a hash lookup per form
/// of its key, and one per distinct prefix length of its origin's revoked prefixes (not a
/// scan of the prefixes: 10,000 of them cost what a few lengths cost). Several revocations may cover one
/// target (each with its own expiry): every one is kept and any live one counts.
#[derive(Debug, Default)]
pub struct RevocationSet {
    all: Vec<Revocation>,
    /// Origin → object key → revocations.
    keys: HashMap<String, HashMap<Vec<u8>, Vec<usize>>>,
    /// Origin → its revoked prefixes.
    prefixes: HashMap<String, Prefixes>,
    principals: HashMap<String, Vec<usize>>,
}

/// The revoked prefixes of one origin: by prefix, and the distinct lengths to try.
#[derive(Debug, Default)]
struct Prefixes {
    by: HashMap<Vec<u8>, Vec<usize>>,
    /// Ascending, without repeats.
    lengths: Vec<usize>,
}

impl Prefixes {
    fn add(&mut self, prefix: &[u8], at: usize) {
        self.by.entry(prefix.to_vec()).or_default().push(at);
        if let Err(i) = self.lengths.binary_search(&prefix.len()) {
            self.lengths.insert(i, prefix.len());
        }
    }

    /// The revocations whose prefix starts `form`, shortest prefix first.
    fn covering<'p>(&'p self, form: &'p [u8]) -> impl Iterator<Item = usize> + 'p {
        self.lengths
            .iter()
            .take_while(move |&&n| n <= form.len())
            .filter_map(move |&n| self.by.get(&form[..n]))
            .flatten()
            .copied()
    }
}

/// A key or prefix as a store that folds slashes reads it: `\` as `/`, repeated `/` merged,
/// no leading `/`. `None` when that is the key itself.
pub fn folded(form: &[u8]) -> Option<Vec<u8>> {
    let needs =
        form.first() == Some(&b'/') || form.contains(&b'\\') || form.windows(2).any(|w| w == b"//");
    if !needs {
        return None;
    }
    let mut out = Vec::with_capacity(form.len());
    for &b in form {
        let b = if b == b'\\' { b'/' } else { b };
        if b == b'/' && (out.is_empty() || out.last() == Some(&b'/')) {
            continue;
        }
        out.push(b);
    }
    Some(out)
}

impl RevocationSet {
    /// The set of `list`, without those lapsed at `now` and without repeated ids.
    pub fn new(list: Vec<Revocation>, now: u64) -> Self {
        let mut set = RevocationSet::default();
        let mut seen = std::collections::HashSet::new();
        for r in list.into_iter().filter(|r| r.live(now)) {
            if !seen.insert(r.id.clone()) {
                continue;
            }
            let at = set.all.len();
            match &r.target {
                Target::Key { origin, key } => set
                    .keys
                    .entry(origin.clone())
                    .or_default()
                    .entry(key.as_bytes().to_vec())
                    .or_default()
                    .push(at),
                Target::Prefix { origin, prefix } => set
                    .prefixes
                    .entry(origin.clone())
                    .or_default()
                    .add(prefix.as_bytes(), at),
                Target::Principal(p) => set.principals.entry(p.clone()).or_default().push(at),
            }
            set.all.push(r);
        }
        set
    }

    /// Whether nothing is revoked (the hot path then asks nothing more).
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Every revocation in the set.
    pub fn all(&self) -> &[Revocation] {
        &self.all
    }

    fn live_one<'s>(&'s self, at: &[usize], now: u64) -> Option<&'s Revocation> {
        at.iter().map(|i| &self.all[*i]).find(|r| r.live(now))
    }

    /// The revocation covering `key` of `origin` at `now`, in any form the key may take
    /// (decoded, dot segments resolved, slashes folded).
    pub fn of_key(&self, origin: &str, key: &Judged<'_>, now: u64) -> Option<&Revocation> {
        let keys = self.keys.get(origin);
        let prefixes = self.prefixes.get(origin);
        if keys.is_none() && prefixes.is_none() {
            return None;
        }
        let check = |form: &[u8]| {
            if let Some(r) = keys
                .and_then(|k| k.get(form))
                .and_then(|at| self.live_one(at, now))
            {
                return Some(r);
            }
            prefixes?
                .covering(form)
                .map(|at| &self.all[at])
                .find(|r| r.live(now))
        };
        key.forms()
            .find_map(|form| check(form).or_else(|| folded(form).and_then(|f| check(&f))))
    }

    /// A revocation of `origin` that a wildcard policy over `prefix` (judged) would reach: a
    /// revoked key or prefix under it, or a revoked prefix above it. A wildcard re-signed for
    /// one key opens every key it covers, so it is renewed only when none is revoked.
    pub fn under_wildcard(
        &self,
        origin: &str,
        prefix: &Judged<'_>,
        now: u64,
    ) -> Option<&Revocation> {
        let forms: Vec<Vec<u8>> = prefix
            .forms()
            .flat_map(|f| [Some(f.to_vec()), folded(f)])
            .flatten()
            .collect();
        self.all.iter().filter(|r| r.live(now)).find(|r| {
            let revoked = match &r.target {
                Target::Key { origin: o, key } if o == origin => key.as_bytes(),
                Target::Prefix { origin: o, prefix } if o == origin => prefix.as_bytes(),
                _ => return false,
            };
            forms
                .iter()
                .any(|w| revoked.starts_with(w) || w.starts_with(revoked))
        })
    }

    /// The revocation of `principal` at `now`.
    pub fn of_principal(
        &self,
        auth: &Auth,
        principal: &Principal,
        now: u64,
    ) -> Option<&Revocation> {
        if self.principals.is_empty() {
            return None;
        }
        let id = principal_id(auth, principal)?;
        self.principals
            .get(&id)
            .and_then(|at| self.live_one(at, now))
    }
}

/// How a principal is named in a revocation: an API key by the SHA-256 of the key (hex, as in
/// the config), a JWT by its `sub`.
pub fn principal_id(auth: &Auth, principal: &Principal) -> Option<String> {
    match principal {
        Principal::Anonymous => None,
        Principal::ApiKey { index, .. } => auth.api_keys.get(*index).map(|k| hex::encode(k.sha256)),
        Principal::Jwt { subject, .. } => subject.clone(),
    }
}

/// Whether `caller` may make, see or delete a revocation of `target`: an admin (a secret key
/// without an org) anything; an org caller keys and prefixes inside `{org}/`, and the API
/// keys of its own org. Public keys and anonymous callers nothing.
pub fn may_revoke(auth: &Auth, caller: &Principal, target: &Target) -> Result<(), Error> {
    if !caller.is_authenticated() {
        return Err(Error::Unauthorized("credentials required"));
    }
    if matches!(
        caller,
        Principal::ApiKey {
            kind: ApiKeyKind::Public,
            ..
        }
    ) {
        return Err(Error::Forbidden("public keys cannot revoke"));
    }
    if caller.is_admin() {
        return Ok(());
    }
    let Some(org) = caller.org() else {
        return Err(Error::Forbidden(
            "only an admin key or an org caller may revoke",
        ));
    };
    let dir = format!("{org}/");
    let inside = match target {
        Target::Key { key, .. } => keypath::judge(key)?.all_start_with(dir.as_bytes()),
        Target::Prefix { prefix, .. } => {
            prefix.starts_with(&dir) && keypath::judge(prefix)?.all_start_with(dir.as_bytes())
        }
        Target::Principal(p) => auth
            .api_keys
            .iter()
            .any(|k| hex::encode(k.sha256) == *p && k.org.as_deref() == Some(org)),
    };
    if inside {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "the revocation reaches outside the caller's org",
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a test")]
mod tests {
    use super::*;

    fn rev(id: &str, target: Target, expires_at: Option<u64>) -> Revocation {
        Revocation {
            id: id.into(),
            target,
            reason: None,
            created_at: 100,
            expires_at,
        }
    }

    #[test]
    fn prefixes_of_many_lengths_are_found_by_length_not_by_scan() {
        let prefixes = ["acme/x", "acme/leaked/", "b/", "acme/leaked/deep/"];
        let set = RevocationSet::new(
            prefixes
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    rev(
                        &format!("p{i}"),
                        Target::Prefix {
                            origin: "docs".into(),
                            prefix: (*p).into(),
                        },
                        None,
                    )
                })
                .collect(),
            0,
        );
        let judged = |k: &'static str| keypath::judge(k).unwrap();
        let hit = |k: &'static str| set.of_key("docs", &judged(k), 1).map(|r| r.id.clone());
        // Byte for byte: acme/x covers acme/xyz; the shortest covering prefix answers.
        assert_eq!(hit("acme/xyz.txt").as_deref(), Some("p0"));
        assert_eq!(hit("acme/leaked/deep/a").as_deref(), Some("p1"));
        assert_eq!(hit("b/c").as_deref(), Some("p2"));
        assert_eq!(hit("acme/leake"), None);
        assert_eq!(hit("acme/y"), None);
        assert_eq!(hit("bb/c"), None);
    }

    #[test]
    fn keys_prefixes_and_every_form_of_a_key() {
        let set = RevocationSet::new(
            vec![
                rev(
                    "a",
                    Target::Key {
                        origin: "docs".into(),
                        key: "acme/secret.pdf".into(),
                    },
                    None,
                ),
                rev(
                    "b",
                    Target::Prefix {
                        origin: "docs".into(),
                        prefix: "acme/leaked/".into(),
                    },
                    Some(200),
                ),
                rev(
                    "c",
                    Target::Key {
                        origin: "docs".into(),
                        key: "acme/old.pdf".into(),
                    },
                    Some(150),
                ),
            ],
            160,
        );
        let judged = |k: &'static str| keypath::judge(k).unwrap();
        assert_eq!(set.all().len(), 2, "the lapsed one is gone");
        assert!(
            set.of_key("docs", &judged("acme/secret.pdf"), 160)
                .is_some()
        );
        // Another spelling of the same object is the same object.
        assert!(
            set.of_key("docs", &judged("acme/x/../secret.pdf"), 160)
                .is_some()
        );
        assert!(
            set.of_key("docs", &judged("acme%2Fsecret.pdf"), 160)
                .is_some()
        );
        assert!(
            set.of_key("docs", &judged("acme/leaked/a/b.txt"), 160)
                .is_some()
        );
        assert!(
            set.of_key("docs", &judged("acme/leaked/a/b.txt"), 200)
                .is_none(),
            "lapsed"
        );
        assert!(
            set.of_key("other", &judged("acme/secret.pdf"), 160)
                .is_none()
        );
        assert!(
            set.of_key("docs", &judged("acme/secret.pdf.bak"), 160)
                .is_none()
        );
        // A lapsed revocation of the same key or a wider prefix does not hide a live one.
        let layered = RevocationSet::new(
            vec![
                rev(
                    "old",
                    Target::Prefix {
                        origin: "docs".into(),
                        prefix: "acme/".into(),
                    },
                    Some(150),
                ),
                rev(
                    "live",
                    Target::Prefix {
                        origin: "docs".into(),
                        prefix: "acme/leaked/".into(),
                    },
                    None,
                ),
                rev(
                    "k1",
                    Target::Key {
                        origin: "docs".into(),
                        key: "acme/k".into(),
                    },
                    Some(150),
                ),
                rev(
                    "k2",
                    Target::Key {
                        origin: "docs".into(),
                        key: "acme/k".into(),
                    },
                    None,
                ),
            ],
            100,
        );
        assert!(
            layered
                .of_key("docs", &judged("acme/leaked/x"), 160)
                .is_some()
        );
        assert!(layered.of_key("docs", &judged("acme/k"), 160).is_some());
        // Slashes a store folds: `acme//leaked/x`, a leading `/`.
        assert!(
            layered
                .of_key("docs", &judged("acme//leaked/x"), 160)
                .is_some()
        );
        assert!(
            layered
                .of_key("docs", &judged("/acme/leaked/x"), 160)
                .is_some()
        );
        // A wildcard over `acme/` reaches the revoked prefix; one over `globex/` does not.
        let wild = |p: &'static str| keypath::judge_wildcard_prefix(p).unwrap();
        assert!(
            layered
                .under_wildcard("docs", &wild("acme/"), 160)
                .is_some()
        );
        assert!(
            layered
                .under_wildcard("docs", &wild("acme/leaked/sub/"), 160)
                .is_some()
        );
        assert!(
            layered
                .under_wildcard("docs", &wild("globex/"), 160)
                .is_none()
        );
        let stored = set.all()[0].to_stored();
        assert_eq!(
            Revocation::from_stored(&stored).as_ref(),
            Some(&set.all()[0])
        );
    }
}
