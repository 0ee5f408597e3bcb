//! # edgesign
//!
//! An edge reverse proxy with inline re-signing. It sits in front of a CDN or object store
//! whose content is reached through signed URLs that expire, recognises unsigned, valid and
//! expired signed URLs (S3 SigV4, CloudFront, edgesign native), re-authorizes the caller and
//! mints fresh, time-bucketed signatures that every replica computes identically.
//!
//! ```text
//! client ──TLS/h1/h2──▶ listener ─▶ router ─┬─ stable link ──────┐
//!                                           ├─ signed URL ───────┤ authorize ─▶ signature cache ─▶ redirect (302)
//!                                           ├─ /proxy/file ──────┤            (moka, single-flight,   or
//!                                           └─ JSON signing APIs ┘             time-bucketed)        stream from origin
//! ```
//!
//! The reference (HTTP surface, config keys, error codes, CLI) is in `docs/`: `http.md`,
//! `config.md`, `errors.md`, `cli.md`. This crate is a pure signing core with no IO and no
//! clock, wrapped by a thin shell.
//!
//! # Layout
//! Every module lives on a floor and imports only from its own floor or below; no two
//! top-level modules import each other in a circle. `tests/architecture.rs` reads `src/` and
//! fails, naming the file and the rule, when that stops being true.
//!
//! ## ground
//! - [`error`]: the one [`Error`] enum → status, code, public message (and its body texts).
//! - [`clock`]: the only call to the system clock.
//! - [`secret`]: the [`secret::Secret`] newtype (redacted `Debug`, zeroized on drop).
//! - [`respond`]: the response [`respond::Body`], small answers, and the one place an error
//!   becomes a response (JSON, S3 XML or a seed API's style) and a 5xx a log line.
//! - [`metrics`]: every Prometheus metric (prometheus-client).
//! - [`notes`]: what one request's handling learns (id, route kind, cache outcome).
//!
//! ## core
//! - [`sign`]: the pure signing core — SigV4, CloudFront, native HMAC, URL splitting,
//!   detection, time windows, and [`sign::signer::OriginSigner`] (mint / verify / re-sign).
//!   No IO, no clock, nothing from the floors above; its failures are its own
//!   [`sign::Error`], converted into [`Error`] once, in [`origins`].
//!
//! ## policy
//! - [`auth`]: who is calling ([`auth::Principal`] from API keys and JWTs, [`auth::Auth`]),
//!   what they may read ([`auth::policy`]), keys judged as origins read them
//!   ([`auth::keypath`]), which `response-*` overrides they may set ([`auth::overrides`]).
//! - [`route`]: [`route::Route`], its mode and access, and `(host, path)` → route.
//! - [`origins`]: [`origins::Origin`] (a signer plus its public prefixes) and the one lookup
//!   by name and by URL.
//!
//! ## config
//! - [`config`]: raw serde structs (unknown keys rejected) → validated typed
//!   [`config::Config`] of core and policy values; keys, PEM files and secrets are loaded here,
//!   before any port is bound.
//!
//! ## shell leaves
//! - [`cache`]: the moka signature cache — key derivation, single-flight minting, byte budget.
//! - [`origin`]: the hyper-util client to origins (TLS, timeouts, no redirects, streaming).
//! - [`local`]: serving a `local` origin's directory (ranges, conditionals, no escapes).
//! - [`limit`]: the keyed rate limiter.
//! - [`tls`]: the rustls configurations of the listener and of the origin client.
//! - [`keyset`]: the JWKS of `auth.jwks_url`, by `kid`, refreshed on a timer and on an
//!   unknown `kid`.
//! - [`audit`]: the audit log, one JSON line per access decision.
//! - [`fleet`]: state a fleet shares in Redis (revocations), or this process's without it.
//! - [`creds`]: S3 credentials from the AWS SDK's resolver (aws-config), refreshed before
//!   they expire.
//!
//! ## state
//! - [`minter`]: the [`minter::Minter`] — cache, RSA signing slots, the reload rule.
//! - [`app`]: [`app::App`], the state one config serves with, and [`app::Cx`].
//!
//! ## handlers
//! - [`proxy`]: the hyper service — route → verify → authorize → sign → redirect | stream,
//!   `/proxy/file`, `/_origin/`.
//! - [`api`]: the JSON signing APIs, one file per compatible family.
//!
//! ## serving
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`.
//! - [`server`]: listeners, TLS accept, HTTP/1.1 + HTTP/2, connection limits and timeouts,
//!   the access log, `SIGHUP` reload (the service swapped whole) and graceful drain.
//!
//! `src/main.rs` (the binary): the command line (`serve`, `sign`, `inspect`, `check`,
//! `hash-key`) and the signals (`SIGTERM` drains, `SIGHUP` reloads).

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod cache;
pub mod clock;
pub mod config;
pub mod creds;
pub mod error;
pub mod fleet;
pub mod keyset;
pub mod limit;
pub mod local;
pub mod metrics;
pub mod minter;
pub mod notes;
pub mod ops;
pub mod origin;
pub mod origins;
pub mod proxy;
pub mod respond;
pub mod route;
pub mod secret;
pub mod server;
pub mod sign;
pub mod tls;

pub use error::Error;
