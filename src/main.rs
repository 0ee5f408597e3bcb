//! The `edgesign` command line: parse, load config, act. No logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};
use edgesign::app::App;
use edgesign::clock;
use edgesign::config::{Check, Config};
use edgesign::server;
use edgesign::sign::detect;
use edgesign::sign::signer::{SignSpec, raw_key_of};
use edgesign::sign::{Method, Window};

/// mimalloc (its v2 line), not the system allocator: no header on each allocation and size
/// classes close to the sizes asked for, so a cached URL costs less memory (BENCHMARKS.md,
/// many keys).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use sha2::Digest;

/// Exit status for a config that does not validate (sysexits EX_USAGE), for every command.
const EXIT_BAD_CONFIG: u8 = 64;

/// `--version`: the crate version and the commit it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("EDGESIGN_COMMIT"),
    ")"
);

/// The config file when neither `--config` nor `EDGESIGN_CONFIG` names one.
const DEFAULT_CONFIG: &str = "config.toml";

#[derive(Parser)]
#[command(
    name = "edgesign",
    version = VERSION,
    about = "Edge reverse proxy with inline re-signing of signed URLs"
)]
struct Cli {
    /// Config file [default: config.toml]. `inspect` reads a config only when one is named
    /// here or in EDGESIGN_CONFIG, and then also says whether the URL is genuine.
    #[arg(short = 'c', long, global = true, env = "EDGESIGN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve (the default command).
    Serve,
    /// Print a fresh signed URL for KEY of an origin.
    Sign {
        /// Origin name from the config.
        #[arg(long)]
        origin: String,
        /// Object key, as stored (it is percent-encoded for the URL).
        key: String,
        /// Lifetime in seconds (default: the origin's ttl, bucketed). Above the scheme's
        /// maximum (S3: 604800) it is refused, not shortened.
        #[arg(long)]
        expires_in: Option<u64>,
        /// GET or HEAD.
        #[arg(long, default_value = "GET")]
        method: String,
        /// Sign as of this RFC 3339 instant, exactly (no bucketing): reproducible output.
        #[arg(long)]
        at: Option<String>,
    },
    /// Describe a URL as JSON: scheme, key, expiry; with a config (--config or
    /// EDGESIGN_CONFIG) also whether it is genuine and which key verified it.
    Inspect {
        /// The URL.
        url: String,
        /// A request's `Cookie` header: inspect its CloudFront signed cookies for URL
        /// (`'CloudFront-Policy=…; CloudFront-Signature=…; CloudFront-Key-Pair-Id=…'`).
        #[arg(long)]
        cookie: Option<String>,
    },
    /// Validate the config as the server would before binding a port (keys, certificates,
    /// the origin client's TLS); print every problem and exit 64 when it is bad.
    Check {
        /// Print the effective config (defaults filled in, secrets redacted).
        #[arg(long)]
        print: bool,
        /// Do not require the environment variables named by `*_env` keys (CI without the
        /// deployment's secrets).
        #[arg(long)]
        no_env: bool,
    },
    /// Print the SHA-256 of an API key for `[[auth.api_keys]] sha256`. Without KEY (or
    /// with `-`) the key is read from stdin, so it stays out of the shell's history.
    HashKey {
        /// The key (`sk_…` / `pk_…`), or `-` for stdin.
        key: Option<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout.
    Manpage,
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("edgesign: invalid config {}:\n{e}", path.display());
        ExitCode::from(EXIT_BAD_CONFIG)
    })
}

/// Everything serving needs that a config can fail: the listener's certificate and key, and
/// the service (the origin client's TLS included). `check` runs exactly this.
fn prepare(config: Config) -> Result<(Option<Arc<rustls::ServerConfig>>, Arc<App>), String> {
    let tls = config
        .server
        .tls
        .as_ref()
        .map(edgesign::tls::server_config)
        .transpose()?;
    let app = App::new(config)?;
    Ok((tls, app))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = match load(&config_path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            serve(config, config_path)
        }
        Command::Sign {
            origin,
            key,
            expires_in,
            method,
            at,
        } => {
            let config = match load(&config_path) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match sign_command(&config, &origin, &key, expires_in, &method, at.as_deref()) {
                Ok(url) => {
                    println!("{url}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("edgesign sign: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Inspect { url, cookie } => {
            let config = match &cli.config {
                Some(path) => match load(path) {
                    Ok(c) => Some(c),
                    Err(code) => return code,
                },
                None => None,
            };
            let signers: Option<Vec<_>> = config.as_ref().map(|c| c.signers().collect());
            let now = clock::unix_secs(clock::now());
            let inspected = match &cookie {
                Some(c) => detect::inspect_cookies(&url, c, now, signers.as_deref()),
                None => detect::inspect(&url, now, signers.as_deref()),
            };
            match inspected {
                Ok(i) => {
                    println!("{}", serde_json::to_string_pretty(&i).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    println!("{}", edgesign::Error::from(e).json_body());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Check { print, no_env } => check_command(&config_path, print, no_env),
        Command::HashKey { key } => {
            let key = match key.filter(|k| k != "-") {
                Some(k) => k,
                None => {
                    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                        eprint!("API key (not echoed to history): ");
                    }
                    let mut s = String::new();
                    if std::io::stdin().read_line(&mut s).is_err() {
                        eprintln!("edgesign hash-key: cannot read stdin");
                        return ExitCode::FAILURE;
                    }
                    s.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            if key.is_empty() {
                eprintln!("edgesign hash-key: the key is empty");
                return ExitCode::FAILURE;
            }
            println!("{}", hex::encode(sha2::Sha256::digest(key.as_bytes())));
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "edgesign",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Manpage => {
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("edgesign manpage: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// `check`: everything the server does before binding, then the warnings, then (with
/// `--print`) the effective config with secrets redacted.
fn check_command(path: &std::path::Path, print: bool, no_env: bool) -> ExitCode {
    let config = match Config::load_with(path, Check { no_env }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: invalid\n{e}", path.display());
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    for w in &config.warnings {
        eprintln!("{}: warning: {w}", path.display());
    }
    let effective = print.then(|| config.effective());
    let (origins, routes) = (config.origins.len(), config.routes.len());
    if let Err(e) = prepare(config) {
        eprintln!("{}: invalid\n{e}", path.display());
        return ExitCode::from(EXIT_BAD_CONFIG);
    }
    if let Some(effective) = effective {
        print!("{effective}");
    }
    println!(
        "{}: OK ({origins} origins, {routes} routes)",
        path.display()
    );
    ExitCode::SUCCESS
}

/// Loads certificates, binds, serves until SIGTERM or Ctrl-C, then drains. SIGHUP reloads
/// `path`.
fn serve(config: Config, path: PathBuf) -> ExitCode {
    let warnings = config.warnings.clone();
    // Everything is built (certificates, the origin client's TLS) before a port is bound.
    let (tls, app) = match prepare(config) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("edgesign: invalid config:\n{e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    // Structured logs on stderr; `EDGESIGN_LOG_FORMAT=json` for one JSON object per line.
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if std::env::var("EDGESIGN_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init()
    };
    for w in &warnings {
        tracing::warn!(config = %path.display(), "{w}");
    }
    // Signals, reloads and the drain run here; connections run on the workers' runtime.
    let runtimes = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .and_then(|main| Ok((main, worker_runtime(app.config.server.workers)?)));
    let (runtime, workers) = match runtimes {
        Ok(r) => r,
        Err(e) => {
            eprintln!("edgesign: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async move {
        let listeners = match server::Listeners::bind(&app.config, tls) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("edgesign: cannot bind: {e}");
                return ExitCode::FAILURE;
            }
        };
        let running = match server::serve_on(app, listeners, &workers) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("edgesign: cannot serve: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("edgesign listening on http://{}", running.http_addr);
        if let Some(a) = running.https_addr {
            println!("edgesign listening on https://{a}");
        }
        if let Err(e) = run_until_stopped(&running, &path).await {
            eprintln!("edgesign: cannot listen for signals: {e}");
            return ExitCode::FAILURE;
        }
        let s = &running.app().config.server;
        tracing::info!(
            drain_delay_ms = s.drain_delay.as_millis() as u64,
            shutdown_grace_ms = s.shutdown_grace.as_millis() as u64,
            "draining: /readyz now answers 503"
        );
        if running.shutdown().await {
            tracing::info!("drained; exiting");
        } else {
            tracing::warn!("shutdown_grace elapsed with requests still in flight; they are cut");
        }
        ExitCode::SUCCESS
    });
    // Drained (or, when shutdown_grace ran out, what is still in flight is cut at exit): the
    // audit lines still queued go to the file before the process ends.
    if !edgesign::audit::finish(AUDIT_FLUSH) {
        tracing::warn!(
            within_ms = AUDIT_FLUSH.as_millis() as u64,
            "the audit log did not take every queued line before exit"
        );
    }
    code
}

/// How long the exit waits for the audit log's writer to write what is queued (a full queue
/// is 65,536 lines, about 20 MB; a disk that cannot take that in this time loses the rest).
const AUDIT_FLUSH: std::time::Duration = std::time::Duration::from_secs(10);

/// The runtime that serves connections: `server.workers` threads (default: one per core)
/// with work stealing. A connection is a task any worker can run. When another process takes
/// a core, the other workers keep its connections moving. With one event loop per core, they
/// would wait for it, and BENCHMARKS.md shows that as a 2–3× worse p99 next to a busy
/// process. Signing never blocks a worker: HMAC takes microseconds inline, and RSA goes to
/// the blocking pool.
fn worker_runtime(workers: usize) -> std::io::Result<tokio::runtime::Handle> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .thread_name("edgesign-worker")
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    std::thread::Builder::new()
        .name("edgesign-runtime".into())
        .spawn(move || rt.block_on(std::future::pending::<()>()))?;
    Ok(handle)
}

/// Serves until SIGTERM or Ctrl-C; each SIGHUP reloads the config file.
async fn run_until_stopped(
    running: &server::Running,
    path: &std::path::Path,
) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = hup.recv() => reload(running, path),
        }
    }
}

/// Loads, validates and swaps in the config at `path`; a bad one is refused and logged (the
/// message names the key) and the running config keeps serving.
fn reload(running: &server::Running, path: &std::path::Path) {
    match running.reload_file(path) {
        Ok(()) => {
            tracing::info!(target: "edgesign::reload", config = %path.display(), "config reloaded")
        }
        Err(e) => {
            tracing::error!(
                target: "edgesign::reload",
                config = %path.display(),
                error = %e,
                "config reload refused; the running config keeps serving"
            );
        }
    }
}

fn sign_command(
    config: &Config,
    origin: &str,
    key: &str,
    expires_in: Option<u64>,
    method: &str,
    at: Option<&str>,
) -> Result<String, String> {
    let origin = config
        .origin(origin)
        .ok_or_else(|| format!("no origin is named {origin:?}"))?;
    let method =
        Method::parse(method).ok_or_else(|| format!("--method {method:?} is not GET or HEAD"))?;
    let raw_key = raw_key_of(key);
    if raw_key.is_empty() {
        return Err("the object key is empty".to_owned());
    }
    let (signed_at, lifetime) = match (at, expires_in) {
        (Some(at), e) => {
            let t = humantime::parse_rfc3339(at).map_err(|_| {
                format!("--at {at:?} is not an RFC 3339 instant like 2013-05-24T00:00:00Z")
            })?;
            (clock::unix_secs(t), e.unwrap_or(origin.signer.ttl))
        }
        // A named lifetime is signed at the request instant for exactly that long.
        (None, Some(e)) => (clock::unix_secs(clock::now()), e),
        (None, None) => {
            let now = clock::unix_secs(clock::now());
            let w = Window::at(now, config.cache.bucket, origin.signer.ttl);
            (w.signed_at, origin.signer.ttl)
        }
    };
    if lifetime == 0 {
        return Err("--expires-in must be at least 1".to_owned());
    }
    if let Some(max) = origin.signer.max_lifetime().filter(|m| lifetime > *m) {
        return Err(format!(
            "--expires-in {lifetime} is above the {} maximum of {max} s; a signed URL cannot live longer",
            origin.signer.scheme_name()
        ));
    }
    // Credentials from the AWS SDK's resolver are asked for once.
    let live = match (&origin.credentials, &origin.signer.kind) {
        (Some(source), edgesign::sign::signer::Kind::S3(s3)) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start a runtime: {e}"))?;
            vec![
                rt.block_on(edgesign::creds::fetch_once(config, source, &s3.region))
                    .map_err(|e| format!("cannot obtain credentials: {e}"))?,
            ]
        }
        _ => Vec::new(),
    };
    let signed = origin
        .signer
        .sign_with(
            &SignSpec {
                raw_key: &raw_key,
                method,
                params: &[],
                signed_at,
                lifetime,
            },
            &live,
        )
        .map_err(|e| match e {
            edgesign::sign::Error::Internal(detail) => detail,
            other => other.to_string(),
        })?;
    Ok(signed.url)
}
