//! Shell leaf: the signing credentials of S3 origins whose keys come from the AWS SDK's own
//! resolver (`[[origins.keys]] source`), not from the config. `aws-config` does the work:
//! the default chain (environment, profile, web identity, ECS container, IMDSv2), a named
//! profile, and `AssumeRole` on top. Nothing here speaks IMDS or STS by hand.
//!
//! Each such origin has a [`Cell`]: the credentials in hand (newest first; the ones they
//! replaced are kept while they live, so URLs minted with them still verify), an epoch that
//! moves on every rotation (part of the signature cache key, so a rotation mints afresh
//! at once), and a refresh task that asks the provider again at half of the remaining
//! lifetime (at most every 15 minutes, at least 5 seconds apart) and backs off on failure.
//! URLs never outlive their credentials: the signer caps `expires_at` at their expiry.
//!
//! A cell survives a reload whose source, profile, role and region are unchanged, so a
//! SIGHUP neither drops credentials nor asks the provider again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::origins::CredentialSource;
use crate::secret::Secret;
use crate::sign::signer::Kind;
use crate::sign::sigv4::Credentials;

/// Refresh at least this often, whatever the credentials' lifetime.
const MAX_REFRESH: Duration = Duration::from_secs(15 * 60);
/// And never more often than this.
const MIN_REFRESH: Duration = Duration::from_secs(5);
/// Credentials that replaced others keep this many predecessors for verification.
const KEPT: usize = 3;

/// One origin's provided credentials.
pub struct Cell {
    origin: String,
    source: CredentialSource,
    region: String,
    /// `origin_client.ca_file` (PEM) and `web_roots`, for the SDK's own HTTPS (STS, SSO).
    trust: Trust,
    /// Newest first; empty until the provider first answers.
    current: ArcSwap<Vec<Credentials>>,
    epoch: AtomicU64,
    started: AtomicBool,
}

impl std::fmt::Debug for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cell")
            .field("origin", &self.origin)
            .field("source", &self.source)
            .field("epoch", &self.epoch.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Cell {
    /// Takes in fresh credentials from the provider; a rotation (a new access key or
    /// secret) moves the epoch.
    fn store(&self, fresh: Credentials) {
        let old = self.current.load();
        let same = old.first().is_some_and(|c| {
            c.access_key_id == fresh.access_key_id && c.secret.expose() == fresh.secret.expose()
        });
        let mut next = Vec::with_capacity(KEPT + 1);
        next.push(fresh);
        if same {
            // The same key with a later expiry (or the same one again): keep the rest.
            next.extend(old.iter().skip(1).map(clone_credentials));
        } else {
            next.extend(old.iter().take(KEPT).map(clone_credentials));
            self.epoch.fetch_add(1, Ordering::Relaxed);
        }
        self.current.store(Arc::new(next));
    }

    /// Seconds until the newest credentials expire (`None`: they do not, or there are none).
    fn remaining(&self, now: u64) -> Option<i64> {
        let current = self.current.load();
        let expires_at = current.first()?.expires_at?;
        Some(i64::try_from(expires_at).unwrap_or(i64::MAX) - i64::try_from(now).unwrap_or(0))
    }

    /// Whether credentials are held that are still valid at `now`.
    fn valid(&self, now: u64) -> bool {
        self.current
            .load()
            .first()
            .is_some_and(|c| c.expires_at.is_none_or(|e| e > now))
    }
}

fn clone_credentials(c: &Credentials) -> Credentials {
    Credentials::new(
        c.access_key_id.clone(),
        Secret::new(c.secret.expose()),
        c.session_token.as_ref().map(|t| Secret::new(t.expose())),
        c.expires_at,
    )
}

/// What the SDK's HTTPS client trusts: the system's roots unless `web_roots = false`, and
/// the CA certificates of `origin_client.ca_file`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Trust {
    system_roots: bool,
    extra_pem: Vec<String>,
}

impl Trust {
    fn of(config: &Config) -> Trust {
        use base64::Engine as _;
        let pem = |der: &[u8]| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(der);
            let lines: Vec<&str> = b64
                .as_bytes()
                .chunks(64)
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect();
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                lines.join("\n")
            )
        };
        Trust {
            system_roots: config.origin_client.web_roots,
            extra_pem: config
                .origin_client
                .ca_roots
                .iter()
                .map(|c| pem(c.as_ref()))
                .collect(),
        }
    }
}

/// The provided credentials of one config's origins, by origin index.
#[derive(Debug)]
pub struct Live {
    cells: Vec<Option<Arc<Cell>>>,
}

/// What the hot path holds while it signs: the credentials in hand for one origin.
pub type Held = Arc<Vec<Credentials>>;

impl Live {
    /// The cells of `config`'s origins; those of `previous` whose source, role and region
    /// are unchanged carry over with their credentials and refresh task.
    pub fn new(config: &Config, previous: Option<&Live>) -> Self {
        let trust = Trust::of(config);
        let cells = config
            .origins
            .iter()
            .map(|o| {
                let source = o.credentials.as_ref()?;
                let Kind::S3(s3) = &o.signer.kind else {
                    return None;
                };
                let reused = previous.and_then(|p| {
                    p.cells.iter().flatten().find(|c| {
                        c.origin == o.signer.name
                            && &c.source == source
                            && c.region == s3.region
                            && c.trust == trust
                    })
                });
                Some(reused.cloned().unwrap_or_else(|| {
                    Arc::new(Cell {
                        origin: o.signer.name.clone(),
                        source: source.clone(),
                        region: s3.region.clone(),
                        trust: trust.clone(),
                        current: ArcSwap::from_pointee(Vec::new()),
                        epoch: AtomicU64::new(0),
                        started: AtomicBool::new(false),
                    })
                }))
            })
            .collect();
        Live { cells }
    }

    /// Starts the refresh task of every cell not yet running, on the current runtime.
    pub fn start(&self, metrics: &Arc<Metrics>) {
        for cell in self.cells.iter().flatten() {
            if !cell.started.swap(true, Ordering::SeqCst) {
                let (weak, metrics) = (Arc::downgrade(cell), metrics.clone());
                let (source, region) = (cell.source.clone(), cell.region.clone());
                let trust = cell.trust.clone();
                tokio::spawn(async move {
                    let provider = provider(&source, &region, &trust).await;
                    refresh(weak, provider, metrics).await;
                });
            }
        }
    }

    /// Whether `origin` signs with provided credentials.
    pub fn provides(&self, origin: usize) -> bool {
        matches!(self.cells.get(origin), Some(Some(_)))
    }

    /// The credentials in hand for `origin` (empty for an origin with keys in the config).
    /// `Err` names the origin whose provider has not answered yet, or whose credentials
    /// have expired.
    pub fn held(&self, origin: usize, now: u64) -> Result<Option<Held>, crate::Error> {
        let Some(Some(cell)) = self.cells.get(origin) else {
            return Ok(None);
        };
        if !cell.valid(now) {
            return Err(crate::Error::NoCredentials(format!(
                "origin {} holds no valid credentials from its source",
                cell.origin
            )));
        }
        Ok(Some(cell.current.load_full()))
    }

    /// The credentials known for `origin`, valid or not (for verifying URLs minted with
    /// them; expiry is judged from the URL).
    pub fn known(&self, origin: usize) -> Option<Held> {
        match self.cells.get(origin) {
            Some(Some(cell)) => Some(cell.current.load_full()),
            _ => None,
        }
    }

    /// The rotation count of `origin`'s credentials (0 for keys in the config).
    pub fn epoch(&self, origin: usize) -> u64 {
        match self.cells.get(origin) {
            Some(Some(cell)) => cell.epoch.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// The origins whose credentials are missing or expired at `now` (`/readyz` is 503
    /// while any is).
    pub fn unready(&self, now: u64) -> Vec<&str> {
        self.cells
            .iter()
            .flatten()
            .filter(|c| !c.valid(now))
            .map(|c| c.origin.as_str())
            .collect()
    }

    /// Sets `edgesign_credentials_expiry_seconds` for every origin whose provided
    /// credentials expire, and 0 for one that holds none yet (so that an alert on credentials
    /// about to expire fires for credentials that never came, too).
    pub fn export(&self, metrics: &Metrics, now: u64) {
        for cell in self.cells.iter().flatten() {
            let held = !cell.current.load().is_empty();
            match cell.remaining(now) {
                Some(left) => metrics.set_credentials_expiry(&cell.origin, left),
                None if !held => metrics.set_credentials_expiry(&cell.origin, 0),
                None => {}
            }
        }
    }
}

/// Asks `source`'s provider once (for `edgesign sign` on the command line).
pub async fn fetch_once(
    config: &Config,
    source: &CredentialSource,
    region: &str,
) -> Result<Credentials, String> {
    let got = provider(source, region, &Trust::of(config))
        .await
        .provide_credentials()
        .await
        .map_err(|e| aws_smithy_types::error::display::DisplayErrorContext(&e).to_string())?;
    Ok(Credentials::new(
        got.access_key_id(),
        Secret::new(got.secret_access_key()),
        got.session_token().map(Secret::new),
        got.expiry().map(crate::clock::unix_secs),
    ))
}

/// The SDK's provider for `source`: the default chain or a profile, with `AssumeRole` on
/// top when set. HTTPS (STS, SSO) goes over rustls with ring, like every other client here.
async fn provider(
    source: &CredentialSource,
    region: &str,
    trust: &Trust,
) -> SharedCredentialsProvider {
    use aws_config::BehaviorVersion;
    use aws_config::default_provider::credentials::DefaultCredentialsChain;
    use aws_config::provider_config::ProviderConfig;
    use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
    use aws_types::region::Region;

    let mut store = tls::TrustStore::empty().with_native_roots(trust.system_roots);
    for pem in &trust.extra_pem {
        store = store.with_pem_certificate(pem.as_bytes());
    }
    let builder = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    let http = match tls::TlsContext::builder().with_trust_store(store).build() {
        Ok(ctx) => builder.tls_context(ctx).build_https(),
        Err(e) => {
            tracing::warn!(target: "edgesign::credentials", error = %e, "the SDK's TLS settings are unusable; using its defaults");
            builder.build_https()
        }
    };
    let region = Region::new(region.to_owned());
    let conf = ProviderConfig::default()
        .with_http_client(http.clone())
        .with_region(Some(region.clone()));
    let base = match &source.profile {
        None => SharedCredentialsProvider::new(
            DefaultCredentialsChain::builder()
                .configure(conf)
                .region(region.clone())
                .build()
                .await,
        ),
        Some(profile) => SharedCredentialsProvider::new(
            aws_config::profile::ProfileFileCredentialsProvider::builder()
                .configure(&conf)
                .profile_name(profile)
                .build(),
        ),
    };
    let Some(role) = &source.assume_role else {
        return base;
    };
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(region.clone())
        .credentials_provider(base)
        .load()
        .await;
    SharedCredentialsProvider::new(
        aws_config::sts::AssumeRoleProvider::builder(role.clone())
            .session_name("edgesign")
            .region(region)
            .configure(&sdk)
            .build()
            .await,
    )
}

/// Asks `provider` for credentials for as long as the cell lives: at half of their
/// remaining lifetime, at most [`MAX_REFRESH`] apart; after a failure, again after 1 s,
/// 2 s, … up to a minute.
async fn refresh(cell: Weak<Cell>, provider: SharedCredentialsProvider, metrics: Arc<Metrics>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        let answer = provider.provide_credentials().await;
        let Some(c) = cell.upgrade() else { return };
        let now = crate::clock::unix_secs(crate::clock::now());
        let wait = match answer {
            Ok(got) => {
                backoff = Duration::from_secs(1);
                let expires_at = got.expiry().map(crate::clock::unix_secs);
                let fresh = Credentials::new(
                    got.access_key_id(),
                    Secret::new(got.secret_access_key()),
                    got.session_token().map(Secret::new),
                    expires_at,
                );
                let rotated = c
                    .current
                    .load()
                    .first()
                    .is_none_or(|old| old.access_key_id != fresh.access_key_id);
                c.store(fresh);
                if rotated {
                    tracing::info!(
                        target: "edgesign::credentials",
                        origin = %c.origin,
                        access_key_id = %got.access_key_id(),
                        expires_in_s = expires_at.map(|e| e.saturating_sub(now)),
                        "signing credentials obtained"
                    );
                }
                match expires_at {
                    Some(e) => Duration::from_secs(e.saturating_sub(now) / 2),
                    None => MAX_REFRESH,
                }
                .clamp(MIN_REFRESH, MAX_REFRESH)
            }
            Err(e) => {
                tracing::warn!(
                    target: "edgesign::credentials",
                    origin = %c.origin,
                    error = %aws_smithy_types::error::display::DisplayErrorContext(&e),
                    retry_in_s = backoff.as_secs(),
                    "cannot obtain signing credentials"
                );
                let wait = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(60));
                // Credentials still in hand keep serving until they expire.
                match c.remaining(now) {
                    Some(left) if left > 0 => wait.min(Duration::from_secs(left as u64)),
                    _ => wait,
                }
            }
        };
        if let Some(left) = c.remaining(now) {
            metrics.set_credentials_expiry(&c.origin, left);
        }
        drop(c);
        tokio::time::sleep(wait).await;
    }
}
