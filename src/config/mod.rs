//! `config.toml`: raw serde structs that reject unknown keys, turned into a validated, typed
//! [`Config`]. Every key, secret, PEM file and directory is read and checked here, before
//! any port is bound. Errors name the key path and the fix and never print a secret.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sign::signer::{Layout, OriginSigner};

mod check;
mod kinds;
mod print;
mod raw;

use check::*;
use kinds::validate_origin;
use raw::*;

// ---------------------------------------------------------------------------------------
// Typed config. The policy values it builds live with their policy: `Route`, `Mode` and
// `Access` in `route`; `Auth` and API keys in `auth`; `Origin` in `origins`.
// ---------------------------------------------------------------------------------------

use crate::auth::{ApiKey, ApiKeyKind, Auth};
use crate::origins::Origin;
use crate::route::{Access, Mode, Route};

/// How a config is checked.
#[derive(Debug, Clone, Copy, Default)]
pub struct Check {
    /// `check --no-env`: an unset `<key>_env` variable is not an error (CI validates a
    /// config without the deployment's secrets). A config parsed so is for checking only.
    pub no_env: bool,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// `[server]`.
    pub server: Server,
    /// `[cache]`.
    pub cache: Cache,
    /// `[[origins]]`, in order.
    pub origins: Vec<Origin>,
    /// `[[routes]]`, in order.
    pub routes: Vec<Route>,
    /// `[auth]`.
    pub auth: Auth,
    /// `[rate_limit]`.
    pub rate_limit: RateLimit,
    /// `[compat]`: indices into `origins`.
    pub compat: Compat,
    /// `[origin_client]`.
    pub origin_client: OriginClient,
    /// `[cors]`.
    pub cors: Cors,
    /// `[fleet]`: shared state in Redis, when set.
    pub fleet: Option<Fleet>,
    /// `[audit] path`: the audit log (`-` for stdout), when set.
    pub audit: Option<PathBuf>,
    /// Things that work but are probably not meant (`check` prints them; the server logs
    /// them at start-up).
    pub warnings: Vec<ConfigError>,
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct Server {
    /// Plain HTTP listener (h1 + h2c).
    pub listen: SocketAddr,
    /// How clients reach the proxy, without a trailing slash.
    pub public_url: String,
    /// TLS listener, certificate and key (all or none).
    pub tls: Option<Tls>,
    /// Peers whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Client addresses `/metrics` answers (through `trusted_proxies`); by default loopback
    /// only, so the numbers never reach the internet by accident.
    pub metrics_allow: Vec<ipnet::IpNet>,
    /// How long in-flight requests get on SIGTERM, once the listeners are closed.
    pub shutdown_grace: Duration,
    /// On SIGTERM, how long `/readyz` answers 503 while connections are still accepted, so
    /// load balancers stop sending before the listeners close.
    pub drain_delay: Duration,
    /// How long a client may take to send a request head (and, on a new connection, to
    /// start one): the slowloris bound.
    pub header_read_timeout: Duration,
    /// How long a connection with nothing in flight is kept open.
    pub idle_timeout: Duration,
    /// How long a response may wait for its client to take more bytes before the
    /// connection is cut (HTTP/1.1) or closed with GOAWAY (HTTP/2); nginx's `send_timeout`.
    pub send_timeout: Duration,
    /// Largest request head accepted, bytes (HTTP/1.1 answers 431 beyond it).
    pub max_header_size: usize,
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Worker threads of the runtime serving connections (`0` in the file: one per core).
    pub workers: usize,
}

/// TLS listener settings.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Address.
    pub listen: SocketAddr,
    /// PEM certificate chain file.
    pub cert: PathBuf,
    /// PEM private key file.
    pub key: PathBuf,
}

/// `[cache]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cache {
    /// Upper bound on cached URLs.
    pub max_entries: u64,
    /// Upper bound on the bytes they hold (keys, overrides, URLs).
    pub max_bytes: u64,
    /// Time bucket, seconds.
    pub bucket: u64,
}

/// `[rate_limit]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained rate per principal.
    pub per_second: f64,
    /// Bucket size.
    pub burst: u32,
    /// Anonymous and failed-login buckets hold an IPv6 client's whole network of this
    /// prefix length (one host usually holds a /64).
    pub ipv6_prefix: u8,
}

/// `[compat]`.
#[derive(Debug, Clone)]
pub struct Compat {
    /// Origin for `/orgs/{org}/content/sign`.
    pub content_sign_origin: Option<usize>,
    /// Origin for `/v1/files/{id}/signed-url`.
    pub files_origin: Option<usize>,
    /// Prefix of file ids.
    pub files_key_prefix: String,
    /// Origin for `/generate-presigned-url`.
    pub presign_origin: Option<usize>,
}

/// `[fleet]`: where a fleet of replicas shares revocations (and rate limits).
#[derive(Debug, Clone)]
pub struct Fleet {
    /// `redis://` or `rediss://` URL (it may hold a password: a secret).
    pub redis_url: crate::secret::Secret,
    /// Every Redis key edgesign writes starts with this.
    pub key_prefix: String,
    /// Revocations reach every replica within this (pub/sub, and a re-read this often).
    pub sync_interval: Duration,
    /// What needs Redis when Redis is down: allowed on local state, or refused (`503`).
    pub on_redis_error: OnRedisError,
}

impl Fleet {
    /// Whether `other` names the same store and keys (the same revocations).
    pub fn same_store(&self, other: &Fleet) -> bool {
        self.redis_url.expose() == other.redis_url.expose() && self.key_prefix == other.key_prefix
    }
}

impl PartialEq for Fleet {
    fn eq(&self, other: &Fleet) -> bool {
        self.same_store(other)
            && self.sync_interval == other.sync_interval
            && self.on_redis_error == other.on_redis_error
    }
}

/// `fleet.on_redis_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRedisError {
    /// Local state only (the default).
    Allow,
    /// `503 unavailable` for what needs the fleet.
    Deny,
}

/// `[cors]`: browser origins that may call the JSON signing APIs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cors {
    /// Exact origins (`https://app.example.com`), compared with the `Origin` header.
    pub allow_origins: Vec<String>,
}

/// `[origin_client]`.
#[derive(Debug, Clone)]
pub struct OriginClient {
    /// CA certificates from `ca_file` (PEM), trusted for HTTPS origins.
    pub ca_roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    /// Whether the public web roots are trusted too (`web_roots`, default true; false
    /// trusts `ca_file` alone).
    pub web_roots: bool,
    /// TCP (+TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Time until response headers.
    pub response_timeout: Duration,
}

/// One problem in a config, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `origins[1].keys[0].private_key_file`.
    pub path: String,
    /// What is wrong and how to fix it; never a secret.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl std::fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads and validates `path`; relative file names inside resolve against its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        Config::load_with(path, Check::default())
    }

    /// [`Config::load`], with `check`'s options.
    pub fn load_with(path: &Path, opts: Check) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                path: path.display().to_string(),
                message: format!("cannot read the config file ({e})"),
            }])
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        Config::parse_with(&text, base, &|k| std::env::var(k).ok(), opts)
    }

    /// Parses and validates config text. Never echoes the text: a syntax error is reported by
    /// line and column with the parser's message only, since the line may hold a secret.
    pub fn parse(text: &str, base_dir: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigErrors> {
        Config::parse_with(text, base_dir, env, Check::default())
    }

    /// [`Config::parse`], with `check`'s options.
    pub fn parse_with(
        text: &str,
        base_dir: &Path,
        env: EnvLookup<'_>,
        opts: Check,
    ) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let before = &text[..s.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("line {line}, column {col}")
                })
                .unwrap_or_else(|| "config".to_owned());
            ConfigErrors(vec![ConfigError {
                path: at,
                message: e.message().trim().to_owned(),
            }])
        })?;
        let mut c = Checker {
            errors: Vec::new(),
            base_dir,
            env,
            no_env: opts.no_env,
            warnings: Vec::new(),
        };
        let config = validate(raw, &mut c);
        if c.errors.is_empty() {
            config
                .map(|mut config| {
                    config.warnings = std::mem::take(&mut c.warnings);
                    config
                })
                .ok_or_else(|| ConfigErrors(vec![]))
        } else {
            Err(ConfigErrors(c.errors))
        }
    }

    /// The origin called `name`.
    pub fn origin(&self, name: &str) -> Option<&Origin> {
        crate::origins::by_name(&self.origins, name).map(|(_, o)| o)
    }

    /// The signers of every origin, in config order.
    pub fn signers(&self) -> impl Iterator<Item = &OriginSigner> {
        self.origins.iter().map(|o| &o.signer)
    }
}

fn validate(raw: RawConfig, c: &mut Checker<'_>) -> Option<Config> {
    let public_url_given = raw.server.public_url.is_some();
    let server = validate_server(raw.server, c);
    let bucket = c
        .duration("cache.bucket", raw.cache.bucket.as_deref(), "15m")
        .as_secs();
    if bucket == 0 {
        c.err("cache.bucket", "must be at least 1s");
    }
    let max_entries = raw.cache.max_entries.unwrap_or(100_000);
    if max_entries == 0 {
        c.err("cache.max_entries", "must be at least 1");
    }
    let max_bytes = match &raw.cache.max_bytes {
        None => DEFAULT_CACHE_BYTES,
        Some(raw) => parse_size(raw).unwrap_or_else(|| {
            c.err(
                "cache.max_bytes",
                format!("{raw:?} is not a size like \"256MiB\""),
            );
            DEFAULT_CACHE_BYTES
        }),
    };
    if max_bytes < MIN_CACHE_BYTES {
        c.err(
            "cache.max_bytes",
            format!("{max_bytes} bytes is too small; give the cache at least 1MiB"),
        );
    }
    let cache = Cache {
        max_entries,
        max_bytes: max_bytes.max(MIN_CACHE_BYTES),
        bucket: bucket.max(1),
    };

    if raw.origins.is_empty() {
        c.err("origins", "at least one [[origins]] entry is required");
    }
    let mut origins = Vec::new();
    let mut names = HashSet::new();
    for (i, o) in raw.origins.into_iter().enumerate() {
        let path = format!("origins[{i}]");
        if let Some(n) = &o.name
            && !names.insert(n.clone())
        {
            c.err(
                format!("{path}.name"),
                format!("origin {n:?} is defined twice"),
            );
        }
        if let Some(origin) = validate_origin(&path, o, &server, cache.bucket, c) {
            origins.push(origin);
        }
    }
    let index_of = |name: &str| origins.iter().position(|o: &Origin| o.signer.name == name);

    let mut routes = Vec::new();
    let mut seen = HashSet::new();
    for (i, r) in raw.routes.into_iter().enumerate() {
        let path = format!("routes[{i}]");
        let prefix = match r.prefix {
            Some(p) if p.starts_with('/') && !p.contains(['?', '#']) => p,
            Some(p) => {
                c.err(
                    format!("{path}.prefix"),
                    format!("{p:?} must start with \"/\" and hold no ? or #"),
                );
                continue;
            }
            None => {
                c.err(
                    format!("{path}.prefix"),
                    "missing; e.g. prefix = \"/files/\"",
                );
                continue;
            }
        };
        if prefix.starts_with(crate::sign::native::PATH_PREFIX) {
            c.err(
                format!("{path}.prefix"),
                "/_origin/ is reserved for local origins",
            );
        }
        let host = match r.host.as_deref() {
            None => None,
            Some(h) => match parse_route_host(h) {
                Some(h) => Some(h),
                None => {
                    c.err(
                        format!("{path}.host"),
                        format!("{h:?} is not a host name or host:port"),
                    );
                    None
                }
            },
        };
        if !seen.insert((host.clone(), prefix.clone())) {
            c.err(
                format!("{path}.prefix"),
                "another route has the same host and prefix",
            );
        }
        let origin = match r.origin.as_deref() {
            Some(name) => match index_of(name) {
                Some(idx) => idx,
                None => {
                    c.err(
                        format!("{path}.origin"),
                        format!("no origin is named {name:?}"),
                    );
                    continue;
                }
            },
            None => {
                c.err(
                    format!("{path}.origin"),
                    "missing; name one of the [[origins]]",
                );
                continue;
            }
        };
        let mode = match r.mode.as_deref().unwrap_or("redirect") {
            "redirect" => Mode::Redirect,
            "stream" => Mode::Stream,
            "cookie" => Mode::Cookie,
            other => {
                c.err(
                    format!("{path}.mode"),
                    format!("{other:?} is not redirect, stream or cookie"),
                );
                Mode::Redirect
            }
        };
        if mode == Mode::Cookie {
            check_cookie_route(&path, &origins[origin], host.is_some(), c);
        }
        let access = match r.access.as_deref().unwrap_or("authenticated") {
            "public" => Access::Public,
            "authenticated" => Access::Authenticated,
            "org" => Access::Org,
            other => {
                c.err(
                    format!("{path}.access"),
                    format!("{other:?} is not public, authenticated or org"),
                );
                Access::Authenticated
            }
        };
        let stale_grace = c.duration(
            &format!("{path}.stale_grace"),
            r.stale_grace.as_deref(),
            "0s",
        );
        // A cookie route without a host redirects to the distribution too; on a host route it
        // sends the client back to the same URL, which then carries the cookies.
        if mode == Mode::Redirect || (mode == Mode::Cookie && host.is_none()) {
            check_no_self_redirect(&path, &origins[origin], &server, c);
            // A route that takes over the origin's own hostname would redirect to itself.
            if mode == Mode::Redirect
                && let Some((name, _)) = &host
                && origins[origin]
                    .signer
                    .layout()
                    .connect_target()
                    .0
                    .eq_ignore_ascii_case(name)
            {
                c.err(
                        format!("{path}.mode"),
                        format!("this route serves the origin's own host {name:?}; a redirect would come straight back, so use mode = \"stream\""),
                    );
            }
        }
        routes.push(Route {
            prefix,
            host,
            origin,
            mode,
            access,
            stale_grace: stale_grace.as_secs(),
        });
    }

    let auth = validate_auth(raw.auth, c);
    let per_second = raw.rate_limit.per_second.unwrap_or(50.0);
    if !(per_second.is_finite() && per_second > 0.0) {
        c.err("rate_limit.per_second", "must be a number above 0");
    }
    let burst = raw.rate_limit.burst.unwrap_or(100);
    if burst == 0 {
        c.err("rate_limit.burst", "must be at least 1");
    }
    let ipv6_prefix = raw.rate_limit.ipv6_prefix.unwrap_or(64);
    if !(32..=128).contains(&ipv6_prefix) {
        c.err(
            "rate_limit.ipv6_prefix",
            format!("{ipv6_prefix} must be between 32 and 128 (64: one bucket per /64)"),
        );
    }
    let compat_origin = |key: &str, name: Option<String>, c: &mut Checker<'_>| {
        let name = name?;
        let idx = index_of(&name);
        if idx.is_none() {
            c.err(
                format!("compat.{key}"),
                format!("no origin is named {name:?}"),
            );
        }
        idx
    };
    let compat = Compat {
        content_sign_origin: compat_origin(
            "content_sign_origin",
            raw.compat.content_sign_origin,
            c,
        ),
        files_origin: compat_origin("files_origin", raw.compat.files_origin, c),
        files_key_prefix: raw.compat.files_key_prefix.unwrap_or_default(),
        presign_origin: compat_origin("presign_origin", raw.compat.presign_origin, c),
    };
    let cors = cors(c, raw.cors);
    let fleet = raw.fleet.map(|f| fleet(c, f));
    let audit = raw.audit.map(|a| match a.path.as_deref() {
        Some("-") => PathBuf::from("-"),
        Some(p) if !p.is_empty() => {
            let path = c.resolve(p);
            if path
                .parent()
                .is_some_and(|d| !d.as_os_str().is_empty() && !d.is_dir())
            {
                c.err("audit.path", format!("{p:?}: its directory does not exist"));
            }
            path
        }
        _ => {
            c.err(
                "audit.path",
                "missing: a file to append to, or \"-\" for stdout",
            );
            PathBuf::new()
        }
    });
    let origin_client = OriginClient {
        connect_timeout: c.duration(
            "origin_client.connect_timeout",
            raw.origin_client.connect_timeout.as_deref(),
            "2s",
        ),
        response_timeout: c.duration(
            "origin_client.response_timeout",
            raw.origin_client.response_timeout.as_deref(),
            "30s",
        ),
        ca_roots: ca_roots(c, raw.origin_client.ca_file.as_deref()),
        web_roots: raw.origin_client.web_roots.unwrap_or(true),
    };
    if !origin_client.web_roots && origin_client.ca_roots.is_empty() {
        c.err(
            "origin_client.web_roots",
            "is false but no ca_file is set: no HTTPS origin could be trusted",
        );
    }
    if origin_client.connect_timeout.is_zero() {
        c.err("origin_client.connect_timeout", "must be above 0");
    }
    if origin_client.response_timeout.is_zero() {
        c.err("origin_client.response_timeout", "must be above 0");
    }
    if !public_url_given
        && server.listen.ip().is_unspecified()
        && origins
            .iter()
            .any(|o| matches!(o.signer.kind, crate::sign::signer::Kind::Local(_)))
    {
        c.warn(
            "server.public_url",
            format!(
                "not set, so links to local origins name http://{}, which no client can reach; set it to the address clients use",
                server.listen
            ),
        );
    }
    Some(Config {
        server,
        cache,
        origins,
        routes,
        auth,
        rate_limit: RateLimit {
            per_second,
            burst,
            ipv6_prefix: ipv6_prefix.clamp(32, 128),
        },
        compat,
        origin_client,
        cors,
        fleet,
        audit,
        warnings: Vec::new(),
    })
}

fn fleet(c: &mut Checker<'_>, f: RawFleet) -> Fleet {
    use redis::IntoConnectionInfo;
    let redis_url = c
        .secret(
            "fleet",
            "redis_url",
            SecretFrom {
                inline: f.redis_url.as_ref(),
                env: f.redis_url_env.as_ref(),
                file: f.redis_url_file.as_ref(),
            },
            true,
        )
        .unwrap_or_else(|| crate::secret::Secret::new("redis://127.0.0.1:6379/0"));
    let url = redis_url.expose();
    let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
    if !scheme_ok || url.into_connection_info().is_err() {
        // Never echo the URL: it may hold a password.
        c.err(
            "fleet.redis_url",
            "is not a redis:// or rediss:// URL like \"redis://127.0.0.1:6379/0\"",
        );
    }
    let key_prefix = f.key_prefix.unwrap_or_else(|| "edgesign:".to_owned());
    if key_prefix.is_empty() || key_prefix.len() > 64 || key_prefix.contains(char::is_whitespace) {
        c.err(
            "fleet.key_prefix",
            "must be 1 to 64 characters without spaces",
        );
    }
    let sync_interval = c.duration("fleet.sync_interval", f.sync_interval.as_deref(), "1s");
    if sync_interval < Duration::from_millis(100) || sync_interval > Duration::from_secs(60) {
        c.err("fleet.sync_interval", "must be between 100ms and 60s");
    }
    let on_redis_error = match f.on_redis_error.as_deref() {
        None | Some("allow") => OnRedisError::Allow,
        Some("deny") => OnRedisError::Deny,
        Some(other) => {
            c.err(
                "fleet.on_redis_error",
                format!("{other:?} is not \"allow\" or \"deny\""),
            );
            OnRedisError::Allow
        }
    };
    Fleet {
        redis_url,
        key_prefix,
        sync_interval,
        on_redis_error,
    }
}

/// `[cors] allow_origins`: each a browser origin, `scheme://host[:port]` exactly as browsers
/// send it (lower case, no path, no trailing slash). `*` is refused: the signing APIs take
/// credentials, and a wildcard would hand them to every site.
fn cors(c: &mut Checker<'_>, raw: RawCors) -> Cors {
    for (i, o) in raw.allow_origins.iter().enumerate() {
        let path = format!("cors.allow_origins[{i}]");
        if o == "*" {
            c.err(
                path,
                "\"*\" is not allowed: the signing APIs take credentials; list each origin",
            );
            continue;
        }
        let ok = Layout::new(o, "").is_ok()
            && !o.ends_with('/')
            && o.to_ascii_lowercase() == *o
            && (o.starts_with("https://") || o.starts_with("http://"));
        if !ok {
            c.err(
                path,
                format!(
                    "{o:?} is not an origin like \"https://app.example.com\" (lower case, no path)"
                ),
            );
        }
    }
    Cors {
        allow_origins: raw.allow_origins,
    }
}

/// The CA certificates of `origin_client.ca_file`, each checked as a trust anchor.
fn ca_roots(
    c: &mut Checker<'_>,
    file: Option<&str>,
) -> Vec<rustls_pki_types::CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    let Some(file) = file else {
        return Vec::new();
    };
    let key = "origin_client.ca_file";
    let Some(pem) = c.read_file(key, file) else {
        return Vec::new();
    };
    let certs: Result<Vec<_>, _> =
        rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    match certs {
        Ok(certs) if certs.is_empty() => {
            c.err(key, format!("{file:?} holds no PEM certificate"));
            Vec::new()
        }
        // Each is checked as a trust anchor when the origin client is built, before a port
        // is bound (and by `check`).
        Ok(certs) => certs,
        Err(e) => {
            c.err(
                key,
                format!("{file:?} is not a PEM certificate bundle ({e})"),
            );
            Vec::new()
        }
    }
}

fn parse_route_host(h: &str) -> Option<(String, Option<u16>)> {
    let text = format!("http://{h}/");
    let url = crate::sign::url::RawUrl::parse(&text).ok()?;
    (url.authority == h).then(|| (url.host.to_ascii_lowercase(), url.port))
}

fn validate_server(s: RawServer, c: &mut Checker<'_>) -> Server {
    let fallback: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080));
    let listen_raw = s.listen.as_deref().unwrap_or("127.0.0.1:8080");
    let listen = listen_raw.parse::<SocketAddr>().unwrap_or_else(|_| {
        c.err(
            "server.listen",
            format!("{listen_raw:?} is not an address like \"127.0.0.1:8080\""),
        );
        fallback
    });
    let public_url = s.public_url.unwrap_or_else(|| format!("http://{listen}"));
    let public_url = public_url.trim_end_matches('/').to_owned();
    if Layout::new(&public_url, "").is_err() {
        c.err(
            "server.public_url",
            format!("{public_url:?} must be http(s)://host[:port] with no path"),
        );
    }
    let tls = match (s.tls_listen, s.tls_cert, s.tls_key) {
        (None, None, None) => None,
        (Some(l), Some(cert), Some(key)) => {
            let listen = l.parse::<SocketAddr>().unwrap_or_else(|_| {
                c.err(
                    "server.tls_listen",
                    format!("{l:?} is not an address like \"127.0.0.1:8443\""),
                );
                fallback
            });
            if let Some(pem) = c.read_file("server.tls_cert", &cert)
                && !pem.contains("-----BEGIN CERTIFICATE-----")
            {
                c.err(
                    "server.tls_cert",
                    format!("{cert:?} holds no PEM certificate"),
                );
            }
            if let Some(pem) = c.read_file("server.tls_key", &key)
                && !pem.contains("PRIVATE KEY-----")
            {
                c.err(
                    "server.tls_key",
                    format!("{key:?} holds no PEM private key"),
                );
            }
            Some(Tls {
                listen,
                cert: c.resolve(&cert),
                key: c.resolve(&key),
            })
        }
        _ => {
            c.err(
                "server.tls_listen",
                "tls_listen, tls_cert and tls_key go together: set all three or none",
            );
            None
        }
    };
    let trusted_proxies = networks(c, "server.trusted_proxies", s.trusted_proxies);
    let metrics_allow = match s.metrics_allow {
        Some(list) => networks(c, "server.metrics_allow", Some(list)),
        None => LOOPBACK.iter().filter_map(|n| n.parse().ok()).collect(),
    };
    let shutdown_grace = c.duration("server.shutdown_grace", s.shutdown_grace.as_deref(), "30s");
    let drain_delay = c.duration("server.drain_delay", s.drain_delay.as_deref(), "0s");
    let header_read_timeout = c.duration(
        "server.header_read_timeout",
        s.header_read_timeout.as_deref(),
        "10s",
    );
    if header_read_timeout.is_zero() {
        c.err("server.header_read_timeout", "must be at least 1ms");
    }
    let idle_timeout = c.duration("server.idle_timeout", s.idle_timeout.as_deref(), "60s");
    if idle_timeout.is_zero() {
        c.err("server.idle_timeout", "must be at least 1ms");
    }
    let send_timeout = c.duration("server.send_timeout", s.send_timeout.as_deref(), "60s");
    if send_timeout < Duration::from_secs(1) {
        c.err(
            "server.send_timeout",
            "must be at least 1s (connections are checked about that often)",
        );
    }
    let max_header_size = s.max_header_size.unwrap_or(16 * 1024);
    if !(MIN_HEADER_SIZE..=MAX_HEADER_SIZE).contains(&max_header_size) {
        c.err(
            "server.max_header_size",
            format!(
                "{max_header_size} must be between {MIN_HEADER_SIZE} and {MAX_HEADER_SIZE} bytes"
            ),
        );
    }
    let max_connections = s.max_connections.unwrap_or(10_000);
    if !(1..=MAX_CONNECTIONS).contains(&max_connections) {
        c.err(
            "server.max_connections",
            format!("{max_connections} must be between 1 and {MAX_CONNECTIONS}"),
        );
    }
    let workers = match s.workers.unwrap_or(0) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n if n > MAX_WORKERS => {
            c.err(
                "server.workers",
                format!("{n} is more than {MAX_WORKERS}; 0 means one per core"),
            );
            1
        }
        n => n as usize,
    };
    Server {
        listen,
        public_url,
        tls,
        trusted_proxies,
        metrics_allow,
        shutdown_grace,
        drain_delay,
        workers,
        header_read_timeout,
        idle_timeout,
        send_timeout,
        max_header_size: max_header_size.clamp(MIN_HEADER_SIZE, MAX_HEADER_SIZE) as usize,
        max_connections: max_connections.clamp(1, MAX_CONNECTIONS) as usize,
    }
}

/// `cache.max_bytes` by default.
const DEFAULT_CACHE_BYTES: u64 = 256 << 20;
/// The smallest `cache.max_bytes`.
const MIN_CACHE_BYTES: u64 = 1 << 20;

/// Where `/metrics` answers by default: this host only. Private networks would be wrong as
/// a default: behind a load balancer that is not in `trusted_proxies`, every internet
/// client arrives from the balancer's private address.
const LOOPBACK: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// A list of IPs or CIDRs at `path`, each bad entry an error naming its index.
fn networks(c: &mut Checker<'_>, path: &str, list: Option<Vec<String>>) -> Vec<ipnet::IpNet> {
    let mut out = Vec::new();
    for (i, p) in list.unwrap_or_default().iter().enumerate() {
        match p
            .parse::<ipnet::IpNet>()
            .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        {
            Ok(n) => out.push(n),
            Err(_) => c.err(
                format!("{path}[{i}]"),
                format!("{p:?} is not an IP or CIDR"),
            ),
        }
    }
    out
}

fn validate_auth(a: RawAuth, c: &mut Checker<'_>) -> Auth {
    let jwt_hs256_secret = c.secret(
        "auth",
        "jwt_hs256_secret",
        SecretFrom {
            inline: a.jwt_hs256_secret.as_ref(),
            env: a.jwt_hs256_secret_env.as_ref(),
            file: a.jwt_hs256_secret_file.as_ref(),
        },
        false,
    );
    if jwt_hs256_secret
        .as_ref()
        .is_some_and(|s| s.expose().len() < 32)
    {
        c.err(
            "auth.jwt_hs256_secret",
            "is shorter than 32 bytes; HS256 needs at least 256 bits of key",
        );
    }
    let mut jwt_rs256_public_keys = Vec::new();
    for (i, f) in a.jwt_rs256_public_key_files.iter().enumerate() {
        let p = format!("auth.jwt_rs256_public_key_files[{i}]");
        if let Some(pem) = c.read_file(&p, f) {
            use rsa::pkcs1::DecodeRsaPublicKey;
            use rsa::pkcs8::DecodePublicKey;
            match rsa::RsaPublicKey::from_public_key_pem(&pem)
                .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(&pem))
            {
                Ok(k) => jwt_rs256_public_keys.push(k),
                Err(_) => c.err(p, format!("{f:?} is not a PEM RSA public key")),
            }
        }
    }
    let jwks = a.jwks_url.as_deref().map(|url| {
        let ok = (url.starts_with("https://") || url.starts_with("http://"))
            && url.parse::<http::Uri>().is_ok_and(|u| u.host().is_some());
        if !ok {
            c.err(
                "auth.jwks_url",
                format!("{url:?} is not an http(s) URL like \"https://auth.example.com/.well-known/jwks.json\""),
            );
        }
        let refresh = c.duration("auth.jwks_refresh", a.jwks_refresh.as_deref(), "5m");
        if refresh < Duration::from_secs(1) {
            c.err("auth.jwks_refresh", "must be at least 1s");
        }
        crate::auth::JwksSource {
            url: url.to_owned(),
            refresh,
        }
    });
    if a.jwks_refresh.is_some() && a.jwks_url.is_none() {
        c.err("auth.jwks_refresh", "is set but auth.jwks_url is not");
    }
    let mut api_keys = Vec::new();
    for (i, k) in a.api_keys.iter().enumerate() {
        let p = format!("auth.api_keys[{i}]");
        let sha = k.sha256.as_deref().unwrap_or("");
        let mut bytes = [0u8; 32];
        if sha.len() != 64 || hex::decode_to_slice(sha, &mut bytes).is_err() {
            c.err(
                format!("{p}.sha256"),
                "must be 64 hex digits; compute it with `edgesign hash-key <key>`",
            );
            continue;
        }
        let kind = match k.kind.as_deref() {
            Some("secret") => ApiKeyKind::Secret,
            Some("public") => ApiKeyKind::Public,
            other => {
                c.err(
                    format!("{p}.kind"),
                    format!("{:?} is not secret or public", other.unwrap_or("")),
                );
                continue;
            }
        };
        if let Some(org) = &k.org
            && !crate::auth::jwt::valid_org(org)
        {
            c.err(
                    format!("{p}.org"),
                    format!("{org:?} is not an org name: use letters, digits, \".\", \"_\" and \"-\" (not starting with \".\"), or leave org out for an admin key"),
                );
            continue;
        }
        api_keys.push(ApiKey {
            sha256: bytes,
            kind,
            org: k.org.clone(),
        });
    }
    Auth {
        org_claim: a.org_claim.unwrap_or_else(|| "org".to_owned()),
        cookie: a.cookie.unwrap_or_else(|| "edgesign_session".to_owned()),
        jwt_hs256_secret,
        jwks,
        jwt_rs256_public_keys,
        issuer: a.issuer,
        audience: a.audience,
        api_keys,
    }
}
