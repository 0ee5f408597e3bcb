//! The `edgesign` command line: parse, load config, act. No logic lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use edgesign::app::App;
use edgesign::clock;
use edgesign::config::Config;
use edgesign::server;
use edgesign::sign::detect;
use edgesign::sign::signer::{SignSpec, raw_key_of};
use edgesign::sign::{Method, Window};
use sha2::Digest;

/// Exit status for a config that does not validate (sysexits EX_USAGE).
const EXIT_BAD_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "edgesign",
    version,
    about = "Edge reverse proxy with inline re-signing of signed URLs"
)]
struct Cli {
    /// Config file.
    #[arg(long, global = true, default_value = "config.toml")]
    config: PathBuf,
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
        /// Lifetime in seconds (default: the origin's ttl, bucketed).
        #[arg(long)]
        expires_in: Option<u64>,
        /// GET or HEAD.
        #[arg(long, default_value = "GET")]
        method: String,
        /// Sign as of this RFC 3339 instant, exactly (no bucketing): reproducible output.
        #[arg(long)]
        at: Option<String>,
    },
    /// Describe a URL as JSON: scheme, key, expiry, and (with a config) whether it is genuine.
    Inspect {
        /// The URL.
        url: String,
    },
    /// Validate the config; print every problem and exit 1 when it is bad.
    Check,
    /// Print the SHA-256 of an API key for `[[auth.api_keys]] sha256` (`-` reads stdin).
    HashKey {
        /// The key (`sk_…` / `pk_…`), or `-`.
        key: String,
    },
}

fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("edgesign: invalid config {}:\n{e}", path.display());
        ExitCode::from(EXIT_BAD_CONFIG)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config_given = std::env::args().any(|a| a == "--config" || a.starts_with("--config="));
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = match load(&cli.config) {
                Ok(c) => c,
                Err(code) => return code,
            };
            serve(config, cli.config)
        }
        Command::Sign {
            origin,
            key,
            expires_in,
            method,
            at,
        } => {
            let config = match load(&cli.config) {
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
        Command::Inspect { url } => {
            let config = if config_given {
                match load(&cli.config) {
                    Ok(c) => Some(c),
                    Err(code) => return code,
                }
            } else {
                None
            };
            let signers: Option<Vec<_>> = config.as_ref().map(|c| c.signers().collect());
            let now = clock::unix_secs(clock::now());
            match detect::inspect(&url, now, signers.as_deref()) {
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
        Command::Check => match Config::load(&cli.config) {
            Ok(c) => {
                println!(
                    "{}: OK ({} origins, {} routes)",
                    cli.config.display(),
                    c.origins.len(),
                    c.routes.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: invalid\n{e}", cli.config.display());
                ExitCode::FAILURE
            }
        },
        Command::HashKey { key } => {
            let key = if key == "-" {
                let mut s = String::new();
                if std::io::stdin().read_line(&mut s).is_err() {
                    eprintln!("edgesign hash-key: cannot read stdin");
                    return ExitCode::FAILURE;
                }
                s.trim_end_matches(['\r', '\n']).to_owned()
            } else {
                key
            };
            println!("{}", hex::encode(sha2::Sha256::digest(key.as_bytes())));
            ExitCode::SUCCESS
        }
    }
}

/// Loads certificates, binds, serves until SIGTERM or Ctrl-C, then drains. SIGHUP reloads
/// `path`.
fn serve(config: Config, path: PathBuf) -> ExitCode {
    let tls = match config
        .server
        .tls
        .as_ref()
        .map(edgesign::tls::server_config)
        .transpose()
    {
        Ok(t) => t,
        Err(e) => {
            eprintln!("edgesign: invalid config:\n{e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    // Everything is built (the origin client's TLS included) before a port is bound.
    let app = match App::new(config) {
        Ok(app) => app,
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
    runtime.block_on(async move {
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
    })
}

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
    let signed = origin
        .signer
        .sign(&SignSpec {
            raw_key: &raw_key,
            method,
            params: &[],
            signed_at,
            lifetime,
        })
        .map_err(|e| match e {
            edgesign::sign::Error::Internal(detail) => detail,
            other => other.to_string(),
        })?;
    Ok(signed.url)
}
