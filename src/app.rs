//! State floor: [`App`], everything one config serves with — the config, the minter, the
//! origin client, the rate limiter and the process's metrics — and [`Cx`], what is known of
//! a request once it is admitted. It holds state only: the handlers are `proxy` and `api`.

use std::sync::Arc;

use crate::audit::{AuditLog, Decision, Event};
use crate::auth::Principal;
use crate::cache::SignatureCache;
use crate::clock::Clock;
use crate::config::Config;
use crate::fleet::Fleet;
use crate::fleet::budget::Budget;
use crate::keyset::KeySet;
use crate::limit::Limiter;
use crate::metrics::Metrics;
use crate::minter::Minter;
use crate::origin::OriginClient;

/// What is known about a request once it is admitted.
#[derive(Debug)]
pub struct Cx {
    /// Who is calling.
    pub principal: Principal,
    /// The request instant (Unix seconds).
    pub now: u64,
    /// The client's address (through trusted proxies).
    pub ip: std::net::IpAddr,
}

/// Shared state of the service.
#[derive(Debug)]
pub struct App {
    /// The validated config.
    pub config: Arc<Config>,
    /// Mints and caches URLs.
    pub minter: Minter,
    /// Pooled client to the origins.
    pub origin: OriginClient,
    /// Token buckets per principal (anonymous callers: per client address).
    pub limiter: Arc<Limiter>,
    /// With `[fleet]`: the same budget for the whole fleet, behind `limiter`.
    pub budget: Option<Arc<Budget>>,
    /// Process-wide metrics (they outlive reloads).
    pub metrics: Arc<Metrics>,
    /// Where requests read the time (the system clock but in tests).
    pub clock: Clock,
    /// RS256 keys from `auth.jwks_url`, by `kid`.
    pub keys: KeySet,
    /// Revocations (in Redis with `[fleet]`, else in this process).
    pub fleet: Fleet,
    /// The audit log (`[audit]`), opened afresh by every reload (logrotate).
    pub audit: Option<AuditLog>,
}

impl App {
    /// A ready service for `config`, with metrics of its own. Fails (naming the key) when
    /// the origin client cannot be built.
    pub fn new(config: Config) -> Result<Arc<Self>, String> {
        Self::with_metrics(config, Arc::new(Metrics::new()))
    }

    /// A ready service for `config` counting into `metrics`.
    pub fn with_metrics(config: Config, metrics: Arc<Metrics>) -> Result<Arc<Self>, String> {
        Self::with_clock(config, metrics, Clock::system())
    }

    /// A ready service for `config` reading the time from `clock`.
    pub fn with_clock(
        config: Config,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Result<Arc<Self>, String> {
        let limiter = Arc::new(Limiter::new(&config.rate_limit));
        let config = Arc::new(config);
        let minter = Minter::new(config.clone(), metrics.clone());
        let keys = KeySet::new(config.auth.jwks.as_ref(), None);
        let fleet = Fleet::new(config.fleet.as_ref(), None);
        let budget = fleet.budget(&config.rate_limit).map(Arc::new);
        Self::assemble(
            config,
            metrics,
            (limiter, budget),
            minter,
            clock,
            keys,
            fleet,
        )
    }

    /// The service for a reloaded `config`: same metrics; the rate limiter's buckets carry
    /// over when `[rate_limit]` is unchanged, and the signature cache by
    /// [`Minter::reloaded`]'s rule.
    pub fn reloaded(&self, config: Config) -> Result<Arc<Self>, String> {
        let limiter = if config.rate_limit == self.config.rate_limit {
            self.limiter.clone()
        } else {
            Arc::new(Limiter::new(&config.rate_limit))
        };
        let config = Arc::new(config);
        let minter = self.minter.reloaded(config.clone(), self.clock.unix_secs());
        let keys = KeySet::new(config.auth.jwks.as_ref(), Some(&self.keys));
        let fleet = Fleet::new(config.fleet.as_ref(), Some(&self.fleet));
        // Leases carry over like the buckets: a reload does not hand out a second budget.
        let budget = match &self.budget {
            Some(b) if config.rate_limit == self.config.rate_limit && fleet.same(&self.fleet) => {
                Some(b.clone())
            }
            _ => fleet.budget(&config.rate_limit).map(Arc::new),
        };
        Self::assemble(
            config,
            self.metrics.clone(),
            (limiter, budget),
            minter,
            self.clock.clone(),
            keys,
            fleet,
        )
    }

    fn assemble(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        (limiter, budget): (Arc<Limiter>, Option<Arc<Budget>>),
        minter: Minter,
        clock: Clock,
        keys: KeySet,
        fleet: Fleet,
    ) -> Result<Arc<Self>, String> {
        let origin = OriginClient::new(&config.origin_client, metrics.clone())?;
        let audit = config
            .audit
            .as_deref()
            .map(|p| AuditLog::open(p, metrics.clone()))
            .transpose()?;
        let origins: Vec<(&str, &'static str)> = config
            .signers()
            .map(|s| (s.name.as_str(), s.scheme_name()))
            .collect();
        let mut listeners = vec!["http"];
        if config.server.tls.is_some() {
            listeners.push("https");
        }
        metrics.prime(&origins, &listeners, config.hash());
        Ok(Arc::new(App {
            config,
            minter,
            origin,
            limiter,
            budget,
            metrics,
            clock,
            keys,
            fleet,
            audit,
        }))
    }

    /// Starts the background work of this config that is not running yet: credential
    /// refresh for origins whose keys the AWS SDK provides, and the JWKS refresh.
    pub fn start(&self) {
        self.minter.live.start(&self.metrics);
        self.keys.start(&self.origin);
        self.fleet.start(&self.metrics);
    }

    /// Writes an audit line (with `[audit]`) for a decision on `raw_key` of `origin_idx`.
    #[allow(clippy::too_many_arguments, reason = "one audit line's fields")]
    pub fn audit(
        &self,
        cx: (&crate::auth::Principal, std::net::IpAddr),
        origin_idx: usize,
        raw_key: &str,
        decision: Decision,
        expires_at: Option<u64>,
        url: Option<&str>,
    ) {
        let Some(log) = &self.audit else { return };
        let (principal, client) = cx;
        let signer = &self.config.origins[origin_idx].signer;
        let (id, _) = crate::notes::current();
        log.record(&Event {
            request_id: id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("-"),
            client,
            principal: crate::audit::principal_label(&self.config.auth, principal),
            org: principal.org(),
            origin: &signer.name,
            key: String::from_utf8_lossy(&crate::sign::encoding::percent_decode(raw_key))
                .into_owned(),
            scheme: signer.scheme_name(),
            decision,
            expires_at,
            url,
        });
    }

    /// `403 revoked` when a revocation covers `raw_key` of the origin `origin_idx`.
    pub fn check_revoked(
        &self,
        origin_idx: usize,
        raw_key: &str,
        now: u64,
    ) -> Result<(), crate::Error> {
        let set = self.fleet.revocations();
        if set.is_empty() {
            return Ok(());
        }
        let key = crate::auth::keypath::judge(raw_key)?;
        let origin = &self.config.origins[origin_idx].signer.name;
        match set.of_key(origin, &key, now) {
            Some(_) => Err(crate::Error::Revoked),
            None => Ok(()),
        }
    }

    /// Origins (or `jwks`) whose keys are missing: `/readyz` answers 503 while any is.
    pub fn unready(&self) -> Vec<&str> {
        let mut missing = self.minter.live.unready(self.clock.unix_secs());
        if self.keys.missing() {
            missing.push("auth.jwks_url");
        }
        missing
    }

    /// Brings the gauges read at scrape time up to date: credential expiry (provided, and
    /// static keys with `expires_at`) and readiness.
    pub fn export_gauges(&self, draining: bool) {
        let now = self.clock.unix_secs();
        self.minter.live.export(&self.metrics, now);
        for o in &self.config.origins {
            if let crate::sign::signer::Kind::S3(s3) = &o.signer.kind
                && o.credentials.is_none()
                && let Some(expires_at) = s3.keys.first().and_then(|k| k.expires_at)
            {
                let left =
                    i64::try_from(expires_at).unwrap_or(i64::MAX) - i64::try_from(now).unwrap_or(0);
                self.metrics.set_credentials_expiry(&o.signer.name, left);
            }
        }
        self.metrics
            .set_ready(!draining && self.unready().is_empty());
    }

    /// The signature cache (counts for tests and metrics).
    pub fn cache(&self) -> &SignatureCache {
        &self.minter.cache
    }
}
