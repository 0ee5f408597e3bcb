//! Shell leaf: the JWKS document of `auth.jwks_url`, fetched with the origin client (so
//! `origin_client.ca_file` covers a private identity provider), kept by `kid`, fetched
//! again every `auth.jwks_refresh` and, at most every [`UNKNOWN_KID_EVERY`], when a token
//! names a `kid` the set does not hold. A failed fetch keeps the set in hand; `/readyz` is 503
//! until a first set is held. A set survives a reload whose `jwks_url` is unchanged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use crate::auth::JwksSource;
use crate::auth::jwks::JwkSet;
use crate::origin::OriginClient;

/// Fetches triggered by unknown `kid`s are at least this far apart, so that tokens with
/// made-up `kid`s cannot turn edgesign into a load generator against the provider.
pub const UNKNOWN_KID_EVERY: Duration = Duration::from_secs(5);
/// Largest JWKS document read.
const MAX_BYTES: usize = 256 * 1024;

static EMPTY: LazyLock<JwkSet> = LazyLock::new(JwkSet::default);

/// The key set of one config (or none without `jwks_url`).
#[derive(Debug)]
pub struct KeySet {
    shared: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    source: JwksSource,
    current: ArcSwapOption<JwkSet>,
    /// When the last fetch for an unknown `kid` started (the timed ones do not count).
    last: tokio::sync::Mutex<Option<Instant>>,
    started: AtomicBool,
    /// The origin client of the newest config (a reload may change `ca_file`).
    client: ArcSwapOption<OriginClient>,
}

impl KeySet {
    /// The set for `source`; `previous`'s carries over when its URL and refresh are the same.
    pub fn new(source: Option<&JwksSource>, previous: Option<&KeySet>) -> Self {
        let shared = source.map(|source| {
            previous
                .and_then(|p| p.shared.as_ref())
                .filter(|s| &s.source == source)
                .cloned()
                .unwrap_or_else(|| {
                    Arc::new(Shared {
                        source: source.clone(),
                        current: ArcSwapOption::empty(),
                        last: tokio::sync::Mutex::new(None),
                        started: AtomicBool::new(false),
                        client: ArcSwapOption::empty(),
                    })
                })
        });
        KeySet { shared }
    }

    /// Runs `f` with the keys in hand (an empty set without `jwks_url` or before the first
    /// fetch).
    pub fn with<R>(&self, f: impl FnOnce(&JwkSet) -> R) -> R {
        match &self.shared {
            None => f(&EMPTY),
            Some(s) => match &*s.current.load() {
                Some(set) => f(set),
                None => f(&EMPTY),
            },
        }
    }

    /// Whether a set is expected and none is held yet (`/readyz` is 503 meanwhile).
    pub fn missing(&self) -> bool {
        self.shared
            .as_ref()
            .is_some_and(|s| s.current.load().is_none())
    }

    /// Starts the timed refresh, on the current runtime, unless it runs already; from now on
    /// it fetches with `client` (the newest config's).
    pub fn start(&self, client: &OriginClient) {
        let Some(shared) = &self.shared else { return };
        shared.client.store(Some(Arc::new(client.clone())));
        if shared.started.swap(true, Ordering::SeqCst) {
            return;
        }
        tokio::spawn(refresh_loop(Arc::downgrade(shared)));
    }

    /// A token named a `kid` the set does not hold: fetches the set again now, unless such a
    /// fetch started less than [`UNKNOWN_KID_EVERY`] ago. Says whether it fetched.
    pub async fn refresh_for_unknown_kid(&self, client: &OriginClient) -> bool {
        let Some(shared) = &self.shared else {
            return false;
        };
        let mut last = shared.last.lock().await;
        if last.is_some_and(|t| t.elapsed() < UNKNOWN_KID_EVERY) {
            return false;
        }
        *last = Some(crate::clock::instant());
        fetch(shared, client).await;
        true
    }
}

async fn fetch(shared: &Shared, client: &OriginClient) {
    let url = &shared.source.url;
    let got = client
        .get_small(url, MAX_BYTES)
        .await
        .and_then(|bytes| JwkSet::parse(&bytes));
    match got {
        Ok(set) => {
            tracing::debug!(target: "edgesign::jwks", url = %url, keys = set.len(), "JWKS fetched");
            shared.current.store(Some(Arc::new(set)));
        }
        Err(e) => tracing::warn!(
            target: "edgesign::jwks",
            url = %url,
            error = %e,
            "cannot fetch the JWKS; the keys in hand stay in use"
        ),
    }
}

/// Fetches the set now and every `refresh` (a second apart while none is held), for as
/// long as the set is in use.
async fn refresh_loop(shared: Weak<Shared>) {
    loop {
        let wait = {
            let Some(s) = shared.upgrade() else { return };
            if let Some(client) = s.client.load_full() {
                fetch(&s, &client).await;
            }
            if s.current.load().is_none() {
                Duration::from_secs(1)
            } else {
                s.source.refresh
            }
        };
        tokio::time::sleep(wait).await;
    }
}
