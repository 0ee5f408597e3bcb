//! `config.toml`: raw serde structs that reject unknown keys, turned into a validated, typed
//! [`Config`]. Every key, secret, PEM file and directory is read and checked here, before
//! any port is bound. Errors name the key path and the fix and never print a secret.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;
use crate::sign::cloudfront::{self, HashAlgorithm};
use crate::sign::native::NativeKey;
use crate::sign::signer::{self, CloudFront, CloudFrontKey, Kind, Layout, Local, OriginSigner, S3};
use crate::sign::sigv4::{self, Credentials};

// ---------------------------------------------------------------------------------------
// Raw structs: exactly the keys of DESIGN.md §8, nothing else.
// ---------------------------------------------------------------------------------------

/// Smallest `server.max_header_size` (hyper's read buffer cannot be smaller).
const MIN_HEADER_SIZE: u64 = 8 * 1024;
/// Largest `server.max_header_size`.
const MAX_HEADER_SIZE: u64 = 1024 * 1024;
/// Largest `server.workers`.
const MAX_WORKERS: u64 = 1024;
/// Largest `server.max_connections` (the semaphore's limit is far above; this is sanity).
const MAX_CONNECTIONS: u64 = 1 << 20;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    cache: RawCache,
    #[serde(default)]
    origins: Vec<RawOrigin>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    #[serde(default)]
    auth: RawAuth,
    #[serde(default)]
    rate_limit: RawRateLimit,
    #[serde(default)]
    compat: RawCompat,
    #[serde(default)]
    origin_client: RawOriginClient,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    public_url: Option<String>,
    tls_listen: Option<String>,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    metrics_allow: Option<Vec<String>>,
    shutdown_grace: Option<String>,
    drain_delay: Option<String>,
    header_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    send_timeout: Option<String>,
    max_header_size: Option<u64>,
    max_connections: Option<u64>,
    workers: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCache {
    max_entries: Option<u64>,
    max_bytes: Option<RawSize>,
    bucket: Option<String>,
}

/// A size: bytes as a number, or text with a unit (`"256MiB"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

/// `"256MiB"`, `"1GiB"`, `"64KiB"`, `"1000000"` (bytes; `KB`/`MB`/`GB` are powers of ten).
fn parse_size(raw: &RawSize) -> Option<u64> {
    let text = match raw {
        RawSize::Bytes(n) => return Some(*n),
        RawSize::Text(t) => t.trim(),
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(scale)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrigin {
    name: Option<String>,
    kind: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    bucket: Option<String>,
    path_style: Option<bool>,
    ttl: Option<String>,
    #[serde(default)]
    public_prefixes: Vec<String>,
    domain: Option<String>,
    hash_algorithm: Option<String>,
    root: Option<String>,
    #[serde(default)]
    keys: Vec<RawKey>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    secret_access_key_env: Option<String>,
    session_token: Option<String>,
    session_token_env: Option<String>,
    expires_at: Option<String>,
    key_pair_id: Option<String>,
    private_key_file: Option<String>,
    key_id: Option<String>,
    secret: Option<String>,
    secret_env: Option<String>,
}

impl std::fmt::Debug for RawKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawKey(**redacted**)")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    prefix: Option<String>,
    host: Option<String>,
    origin: Option<String>,
    mode: Option<String>,
    access: Option<String>,
    stale_grace: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    org_claim: Option<String>,
    cookie: Option<String>,
    jwt_hs256_secret: Option<String>,
    jwt_hs256_secret_env: Option<String>,
    #[serde(default)]
    jwt_rs256_public_key_files: Vec<String>,
    issuer: Option<String>,
    audience: Option<String>,
    #[serde(default)]
    api_keys: Vec<RawApiKey>,
}

impl std::fmt::Debug for RawAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawAuth(**redacted**)")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiKey {
    sha256: Option<String>,
    kind: Option<String>,
    org: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    per_second: Option<f64>,
    burst: Option<u32>,
    ipv6_prefix: Option<u8>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompat {
    content_sign_origin: Option<String>,
    files_origin: Option<String>,
    files_key_prefix: Option<String>,
    presign_origin: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOriginClient {
    connect_timeout: Option<String>,
    response_timeout: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Typed config. The policy values it builds live with their policy: `Route`, `Mode` and
// `Access` in `route`; `Auth` and API keys in `auth`; `Origin` in `origins`.
// ---------------------------------------------------------------------------------------

use crate::auth::{ApiKey, ApiKeyKind, Auth};
use crate::origins::Origin;
use crate::route::{Access, Mode, Route};

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

/// `[origin_client]`.
#[derive(Debug, Clone, Copy)]
pub struct OriginClient {
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

/// Where the config reads environment variables (injected so tests need not mutate the
/// process environment).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

struct Checker<'a> {
    errors: Vec<ConfigError>,
    base_dir: &'a Path,
    env: EnvLookup<'a>,
}

impl Checker<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn duration(&mut self, path: &str, raw: Option<&str>, default: &str) -> Duration {
        let raw = raw.unwrap_or(default);
        match humantime::parse_duration(raw) {
            Ok(d) => d,
            Err(_) => {
                self.err(
                    path,
                    format!("{raw:?} is not a duration; write e.g. \"30s\", \"15m\", \"1h\""),
                );
                humantime::parse_duration(default).unwrap_or_default()
            }
        }
    }

    fn resolve(&self, file: &str) -> PathBuf {
        let p = Path::new(file);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    fn read_file(&mut self, path: &str, file: &str) -> Option<String> {
        let full = self.resolve(file);
        match std::fs::read_to_string(&full) {
            Ok(s) => Some(s),
            Err(e) => {
                let why = match e.kind() {
                    std::io::ErrorKind::NotFound => "no such file".to_owned(),
                    std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
                    _ => e.to_string(),
                };
                self.err(path, format!("cannot read {file:?} ({why})"));
                None
            }
        }
    }

    /// Exactly one of an inline secret or the name of an environment variable holding it.
    fn secret(
        &mut self,
        path: &str,
        key: &str,
        inline: Option<&String>,
        env_name: Option<&String>,
        required: bool,
    ) -> Option<Secret> {
        match (inline, env_name) {
            (Some(_), Some(_)) => {
                self.err(
                    format!("{path}.{key}"),
                    format!("set either {key} or {key}_env, not both"),
                );
                None
            }
            (Some(v), None) if v.is_empty() => {
                self.err(format!("{path}.{key}"), "is empty");
                None
            }
            (Some(v), None) => Some(Secret::new(v.clone())),
            (None, Some(var)) => match (self.env)(var) {
                Some(v) if !v.is_empty() => Some(Secret::new(v)),
                _ => {
                    self.err(
                        format!("{path}.{key}_env"),
                        format!("environment variable {var:?} is not set or empty; export it or use {key}"),
                    );
                    None
                }
            },
            (None, None) if required => {
                self.err(
                    format!("{path}.{key}"),
                    format!("missing; set {key} or {key}_env"),
                );
                None
            }
            (None, None) => None,
        }
    }
}

fn parse_rfc3339(s: &str) -> Option<u64> {
    humantime::parse_rfc3339(s)
        .ok()
        .map(crate::clock::unix_secs)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn forbid(c: &mut Checker<'_>, path: &str, kind: &str, fields: &[(&str, bool)]) {
    for (name, present) in fields {
        if *present {
            c.err(
                format!("{path}.{name}"),
                format!("is not used by kind = \"{kind}\"; remove it"),
            );
        }
    }
}

impl Config {
    /// Reads and validates `path`; relative file names inside resolve against its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
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
        Config::parse(&text, base, &|k| std::env::var(k).ok())
    }

    /// Parses and validates config text. Never echoes the text: a syntax error is reported by
    /// line and column with the parser's message only, since the line may hold a secret.
    pub fn parse(text: &str, base_dir: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigErrors> {
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
        };
        let config = validate(raw, &mut c);
        if c.errors.is_empty() {
            config.ok_or_else(|| ConfigErrors(vec![]))
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
        if let Some(n) = &o.name {
            if !names.insert(n.clone()) {
                c.err(
                    format!("{path}.name"),
                    format!("origin {n:?} is defined twice"),
                );
            }
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
            other => {
                c.err(
                    format!("{path}.mode"),
                    format!("{other:?} is not redirect or stream"),
                );
                Mode::Redirect
            }
        };
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
        if mode == Mode::Redirect {
            check_no_self_redirect(&path, &origins[origin], &server, c);
            // A route that takes over the origin's own hostname would redirect to itself.
            if let Some((name, _)) = &host {
                if origins[origin]
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
    };
    if origin_client.connect_timeout.is_zero() {
        c.err("origin_client.connect_timeout", "must be above 0");
    }
    if origin_client.response_timeout.is_zero() {
        c.err("origin_client.response_timeout", "must be above 0");
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
    })
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
            if let Some(pem) = c.read_file("server.tls_cert", &cert) {
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    c.err(
                        "server.tls_cert",
                        format!("{cert:?} holds no PEM certificate"),
                    );
                }
            }
            if let Some(pem) = c.read_file("server.tls_key", &key) {
                if !pem.contains("PRIVATE KEY-----") {
                    c.err(
                        "server.tls_key",
                        format!("{key:?} holds no PEM private key"),
                    );
                }
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

fn validate_origin(
    path: &str,
    o: RawOrigin,
    server: &Server,
    bucket: u64,
    c: &mut Checker<'_>,
) -> Option<Origin> {
    let name = match o.name.clone() {
        Some(n) if valid_name(&n) => n,
        Some(n) => {
            c.err(
                format!("{path}.name"),
                format!("{n:?} may hold only letters, digits, '-', '_' and '.'"),
            );
            return None;
        }
        None => {
            c.err(format!("{path}.name"), "missing; every origin needs a name");
            return None;
        }
    };
    let ttl = c
        .duration(&format!("{path}.ttl"), o.ttl.as_deref(), "1h")
        .as_secs();
    if ttl < 2 * bucket {
        c.err(
            format!("{path}.ttl"),
            format!(
                "{ttl}s is shorter than 2 × cache.bucket ({}s); raise ttl or shrink the bucket",
                2 * bucket
            ),
        );
    }
    if o.keys.is_empty() {
        c.err(
            format!("{path}.keys"),
            "at least one [[origins.keys]] entry is required",
        );
    }
    let kind = o.kind.as_deref().unwrap_or("");
    let signer_kind = match kind {
        "s3" => validate_s3(path, &o, ttl, c).map(Kind::S3),
        "cloudfront" => validate_cloudfront(path, &o, c).map(Kind::CloudFront),
        "local" => validate_local(path, &name, &o, server, c).map(Kind::Local),
        other => {
            c.err(
                format!("{path}.kind"),
                format!("{other:?} is not s3, cloudfront or local"),
            );
            None
        }
    }?;
    Some(Origin {
        signer: OriginSigner {
            name,
            ttl,
            kind: signer_kind,
        },
        public_prefixes: o.public_prefixes,
    })
}

fn validate_s3(path: &str, o: &RawOrigin, ttl: u64, c: &mut Checker<'_>) -> Option<S3> {
    forbid(
        c,
        path,
        "s3",
        &[
            ("domain", o.domain.is_some()),
            ("hash_algorithm", o.hash_algorithm.is_some()),
            ("root", o.root.is_some()),
        ],
    );
    if ttl > sigv4::MAX_EXPIRES {
        c.err(
            format!("{path}.ttl"),
            format!("{ttl}s exceeds S3's 7-day maximum (604800s)"),
        );
    }
    let region = match o.region.as_deref() {
        Some(r)
            if !r.is_empty()
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            r.to_owned()
        }
        Some(r) => {
            c.err(
                format!("{path}.region"),
                format!("{r:?} is not a region like \"us-east-1\""),
            );
            return None;
        }
        None => {
            c.err(
                format!("{path}.region"),
                "missing; S3 signatures are scoped to a region",
            );
            return None;
        }
    };
    let bucket = match o.bucket.as_deref() {
        Some(b) if !b.is_empty() && !b.contains(['/', '?', '#', ' ']) && b.is_ascii() => {
            b.to_owned()
        }
        Some(b) => {
            c.err(
                format!("{path}.bucket"),
                format!("{b:?} is not a bucket name"),
            );
            return None;
        }
        None => {
            c.err(format!("{path}.bucket"), "missing");
            return None;
        }
    };
    let layout = match signer::s3_layout(
        o.endpoint.as_deref(),
        &region,
        &bucket,
        o.path_style.unwrap_or(false),
    ) {
        Ok(l) => l,
        Err(e) => {
            c.err(format!("{path}.endpoint"), e);
            return None;
        }
    };
    let mut keys = Vec::new();
    for (j, k) in o.keys.iter().enumerate() {
        let kp = format!("{path}.keys[{j}]");
        forbid(
            c,
            &kp,
            "s3",
            &[
                ("key_pair_id", k.key_pair_id.is_some()),
                ("private_key_file", k.private_key_file.is_some()),
                ("key_id", k.key_id.is_some()),
                ("secret", k.secret.is_some()),
                ("secret_env", k.secret_env.is_some()),
            ],
        );
        let Some(ak) = k
            .access_key_id
            .clone()
            .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric()))
        else {
            c.err(format!("{kp}.access_key_id"), "missing or not alphanumeric");
            continue;
        };
        let secret = c.secret(
            &kp,
            "secret_access_key",
            k.secret_access_key.as_ref(),
            k.secret_access_key_env.as_ref(),
            true,
        );
        let token = c.secret(
            &kp,
            "session_token",
            k.session_token.as_ref(),
            k.session_token_env.as_ref(),
            false,
        );
        let expires_at = match k.expires_at.as_deref() {
            None => None,
            Some(s) => match parse_rfc3339(s) {
                Some(t) => Some(t),
                None => {
                    c.err(
                        format!("{kp}.expires_at"),
                        format!("{s:?} is not an RFC 3339 instant like \"2026-12-01T00:00:00Z\""),
                    );
                    None
                }
            },
        };
        if let Some(secret) = secret {
            keys.push(Credentials::new(ak, secret, token, expires_at));
        }
    }
    Some(S3 {
        layout,
        region,
        bucket,
        keys,
    })
}

fn validate_cloudfront(path: &str, o: &RawOrigin, c: &mut Checker<'_>) -> Option<CloudFront> {
    forbid(
        c,
        path,
        "cloudfront",
        &[
            ("region", o.region.is_some()),
            ("bucket", o.bucket.is_some()),
            ("path_style", o.path_style.is_some()),
            ("root", o.root.is_some()),
        ],
    );
    // `domain` is the name in every URL (Resource, Location, Host); `endpoint` only where
    // edgesign connects to fetch.
    let layout = match o.domain.as_deref() {
        Some(d) if !d.is_empty() && !d.contains(['/', '?', '#', '@']) => {
            match Layout::new(&format!("https://{d}"), "") {
                Ok(l) => l,
                Err(_) => {
                    c.err(
                        format!("{path}.domain"),
                        format!("{d:?} must be the distribution's host name, e.g. \"d111111abcdef8.cloudfront.net\""),
                    );
                    return None;
                }
            }
        }
        Some(d) => {
            c.err(
                format!("{path}.domain"),
                format!("{d:?} must be a bare host name (URLs are https://<domain>/…); endpoint says where edgesign connects"),
            );
            return None;
        }
        None => {
            c.err(
                format!("{path}.domain"),
                "missing; set the distribution's domain name, the name in every URL (endpoint only says where edgesign connects to fetch)",
            );
            return None;
        }
    };
    let endpoint = match o.endpoint.as_deref() {
        None => None,
        Some(e) => match Layout::new(e.trim_end_matches('/'), "") {
            Ok(l) => Some(l),
            Err(why) => {
                c.err(format!("{path}.endpoint"), why);
                return None;
            }
        },
    };
    let hash = match o.hash_algorithm.as_deref() {
        None => HashAlgorithm::Sha1,
        Some(h) => HashAlgorithm::parse(h).unwrap_or_else(|| {
            c.err(
                format!("{path}.hash_algorithm"),
                format!("{h:?} is not SHA1 or SHA256"),
            );
            HashAlgorithm::Sha1
        }),
    };
    let mut keys = Vec::new();
    for (j, k) in o.keys.iter().enumerate() {
        let kp = format!("{path}.keys[{j}]");
        forbid(
            c,
            &kp,
            "cloudfront",
            &[
                ("access_key_id", k.access_key_id.is_some()),
                ("secret_access_key", k.secret_access_key.is_some()),
                ("key_id", k.key_id.is_some()),
                ("secret", k.secret.is_some()),
            ],
        );
        let Some(id) = k
            .key_pair_id
            .clone()
            .filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric()))
        else {
            c.err(format!("{kp}.key_pair_id"), "missing or not alphanumeric");
            continue;
        };
        let Some(file) = k.private_key_file.as_deref() else {
            c.err(
                format!("{kp}.private_key_file"),
                "missing; point it at the PEM private key",
            );
            continue;
        };
        let Some(pem) = c.read_file(&format!("{kp}.private_key_file"), file) else {
            continue;
        };
        match cloudfront::PrivateKey::from_pem(&pem) {
            Ok(private) => {
                let public = private.public_key();
                keys.push(CloudFrontKey {
                    key_pair_id: id,
                    private,
                    public,
                });
            }
            Err(e) => c.err(format!("{kp}.private_key_file"), format!("{file:?}: {e}")),
        }
    }
    Some(CloudFront {
        layout,
        endpoint,
        hash,
        keys,
    })
}

fn validate_local(
    path: &str,
    name: &str,
    o: &RawOrigin,
    server: &Server,
    c: &mut Checker<'_>,
) -> Option<Local> {
    forbid(
        c,
        path,
        "local",
        &[
            ("endpoint", o.endpoint.is_some()),
            ("region", o.region.is_some()),
            ("bucket", o.bucket.is_some()),
            ("domain", o.domain.is_some()),
            ("hash_algorithm", o.hash_algorithm.is_some()),
        ],
    );
    let Some(root) = o.root.as_deref() else {
        c.err(
            format!("{path}.root"),
            "missing; name the directory to serve",
        );
        return None;
    };
    let full = c.resolve(root);
    let root = match std::fs::canonicalize(&full) {
        Ok(p) if p.is_dir() => p,
        _ => {
            c.err(
                format!("{path}.root"),
                format!("{root:?} is not a readable directory"),
            );
            return None;
        }
    };
    let layout = Layout::new(&server.public_url, &format!("/_origin/{name}")).ok()?;
    let mut keys = Vec::new();
    for (j, k) in o.keys.iter().enumerate() {
        let kp = format!("{path}.keys[{j}]");
        forbid(
            c,
            &kp,
            "local",
            &[
                ("access_key_id", k.access_key_id.is_some()),
                ("secret_access_key", k.secret_access_key.is_some()),
                ("key_pair_id", k.key_pair_id.is_some()),
                ("private_key_file", k.private_key_file.is_some()),
            ],
        );
        let Some(id) = k.key_id.clone().filter(|i| valid_name(i)) else {
            c.err(
                format!("{kp}.key_id"),
                "missing or not made of letters, digits, '-', '_', '.'",
            );
            continue;
        };
        if let Some(secret) = c.secret(
            &kp,
            "secret",
            k.secret.as_ref(),
            k.secret_env.as_ref(),
            true,
        ) {
            if secret.expose().len() < 16 {
                c.err(
                    format!("{kp}.secret"),
                    "is shorter than 16 bytes; use a long random value (openssl rand -base64 32)",
                );
            }
            keys.push(NativeKey { key_id: id, secret });
        }
    }
    Some(Local { layout, root, keys })
}

fn check_no_self_redirect(path: &str, origin: &Origin, server: &Server, c: &mut Checker<'_>) {
    if matches!(origin.signer.kind, Kind::Local(_)) {
        return; // local links point at /_origin/, which the proxy serves itself.
    }
    let (host, port) = origin.signer.layout().connect_target();
    let mut listeners = vec![server.listen];
    listeners.extend(server.tls.as_ref().map(|t| t.listen));
    let to_listener = listeners
        .iter()
        .any(|l| l.port() == port && host_reaches(host, l.ip()));
    let to_public_url = Layout::new(&server.public_url, "").is_ok_and(|p| {
        let (own, own_port) = p.connect_target();
        own_port == port
            && (own.eq_ignore_ascii_case(host)
                || host_addresses(own)
                    .iter()
                    .any(|ip| host_addresses(host).contains(ip)))
    });
    if to_listener || to_public_url {
        c.err(
            format!("{path}.origin"),
            format!(
                "origin {:?} points back at this proxy, so a redirect would loop; point it at the real store or CDN",
                origin.signer.name
            ),
        );
    }
}

/// The addresses a host of a URL names without DNS: `localhost` (and `*.localhost`, RFC
/// 6761 §6.3) is loopback; IP literals in any spelling a resolver accepts (`127.1`,
/// `0x7f.0.0.1`, `2130706433`, `[::ffff:127.0.0.1]`), in canonical form.
fn host_addresses(host: &str) -> Vec<std::net::IpAddr> {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") {
        return vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ];
    }
    if let Ok(ip) = host.trim_matches(['[', ']']).parse::<IpAddr>() {
        return vec![ip.to_canonical()];
    }
    inet_aton(&host).map(IpAddr::V4).into_iter().collect()
}

/// IPv4 in the forms `inet_aton(3)` accepts: one to four parts, each decimal, octal (`0`
/// prefix) or hex (`0x`), the last part filling the remaining bytes.
fn inet_aton(text: &str) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<u64> = text
        .split('.')
        .map(|p| {
            if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
                u64::from_str_radix(hex, 16).ok()
            } else if p.len() > 1 && p.starts_with('0') {
                u64::from_str_radix(&p[1..], 8).ok()
            } else if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                p.parse().ok()
            } else {
                None
            }
        })
        .collect::<Option<_>>()?;
    let (last, head) = parts.split_last()?;
    if head.len() > 3 || head.iter().any(|p| *p > 255) {
        return None;
    }
    let tail_bits = 8 * (4 - head.len() as u32);
    if tail_bits < 64 && *last >= 1u64 << tail_bits {
        return None;
    }
    let mut value = *last;
    for (i, p) in head.iter().enumerate() {
        value |= p << (24 - 8 * i as u32);
    }
    u32::try_from(value).ok().map(std::net::Ipv4Addr::from)
}

/// Whether connecting to `host` would reach a socket listening on `listen_ip`. A wildcard
/// listen (`0.0.0.0`, `::`) takes every local address: loopback, the unspecified address
/// and any address of this machine's interfaces (what binding to it would accept).
fn host_reaches(host: &str, listen_ip: std::net::IpAddr) -> bool {
    let listen_ip = listen_ip.to_canonical();
    host_addresses(host).into_iter().any(|ip| {
        if listen_ip.is_unspecified() {
            ip.is_loopback()
                || ip.is_unspecified()
                || std::net::UdpSocket::bind(std::net::SocketAddr::new(ip, 0)).is_ok()
        } else {
            ip == listen_ip
        }
    })
}

fn validate_auth(a: RawAuth, c: &mut Checker<'_>) -> Auth {
    let jwt_hs256_secret = c.secret(
        "auth",
        "jwt_hs256_secret",
        a.jwt_hs256_secret.as_ref(),
        a.jwt_hs256_secret_env.as_ref(),
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
        if let Some(org) = &k.org {
            if !crate::auth::jwt::valid_org(org) {
                c.err(
                    format!("{p}.org"),
                    format!("{org:?} is not an org name: use letters, digits, \".\", \"_\" and \"-\" (not starting with \".\"), or leave org out for an admin key"),
                );
                continue;
            }
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
        jwt_rs256_public_keys,
        issuer: a.issuer,
        audience: a.audience,
        api_keys,
    }
}
