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
//! The contract (HTTP surface, CLI, config keys, error codes) is DESIGN.md; this crate is a
//! pure signing core with no IO and no clock, wrapped by a thin shell.
//!
//! # Layout
//! - [`sign`]: the pure core — SigV4, CloudFront, native HMAC, URL splitting, detection,
//!   time windows, and [`sign::signer::OriginSigner`] (mint / verify / re-sign per origin).
//! - [`config`]: raw serde structs (unknown keys rejected) → validated typed [`config::Config`];
//!   keys, PEM files and secrets are loaded here, before any port is bound.
//! - [`error`]: the one [`Error`] enum → status + code + public message → JSON / S3 XML.
//! - [`secret`]: the [`secret::Secret`] newtype (redacted `Debug`, zeroized on drop).
//! - [`clock`]: the only call to the system clock.
//! - [`auth`]: who is calling ([`auth::Principal`] from API keys) and what they may read.
//! - [`route`]: `(host, path)` → route and raw object key, pure.
//! - [`cache`]: the moka signature cache — key derivation, single-flight minting.
//! - [`origin`]: the hyper-util client to origins (TLS, timeouts, no redirects, streaming).
//! - [`local`]: serving a `local` origin's directory (ranges, conditionals, no escapes).
//! - [`proxy`]: the hyper service — route → verify → authorize → sign → redirect | stream.
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics` (prometheus-client) and the per-request
//!   notes (route kind, cache outcome) the access log is built from.
//! - [`server`]: listeners, TLS accept, HTTP/1.1 + HTTP/2, connection limits and timeouts,
//!   the access log, `SIGHUP` reload (the service swapped whole) and graceful drain.
//! - `src/main.rs`: the command line (`serve`, `sign`, `inspect`, `check`, `hash-key`) and
//!   the signals (`SIGTERM` drains, `SIGHUP` reloads).

pub mod api;
pub mod app;
pub mod auth;
pub mod cache;
pub mod clock;
pub mod config;
pub mod error;
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

pub use error::Error;
