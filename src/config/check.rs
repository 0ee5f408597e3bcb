//! What every check shares: the [`Checker`] that collects errors by key path and reads
//! durations, files and secrets, and the checks that a redirect never points back at this
//! proxy, in any spelling of its address.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::secret::Secret;
use crate::sign::signer::{Kind, Layout};

use super::*;

/// Where the config reads environment variables (injected so tests need not mutate the
/// process environment).
pub(super) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(super) struct Checker<'a> {
    pub(super) errors: Vec<ConfigError>,
    pub(super) base_dir: &'a Path,
    pub(super) env: EnvLookup<'a>,
    /// `check --no-env`: an unset `<key>_env` variable is not an error.
    pub(super) no_env: bool,
    pub(super) warnings: Vec<ConfigError>,
}

impl Checker<'_> {
    pub(super) fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(super) fn duration(&mut self, path: &str, raw: Option<&str>, default: &str) -> Duration {
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

    pub(super) fn resolve(&self, file: &str) -> PathBuf {
        let p = Path::new(file);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    pub(super) fn read_file(&mut self, path: &str, file: &str) -> Option<String> {
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

    /// Exactly one of an inline secret, the name of an environment variable holding it
    /// (`<key>_env`), or a file whose trimmed content it is (`<key>_file`). Both are read
    /// again on every load, so a SIGHUP picks up a rotated secret.
    pub(super) fn secret(
        &mut self,
        path: &str,
        key: &str,
        from: SecretFrom<'_>,
        required: bool,
    ) -> Option<Secret> {
        let given = [
            from.inline.is_some(),
            from.env.is_some(),
            from.file.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            self.err(
                format!("{path}.{key}"),
                format!("set only one of {key}, {key}_env or {key}_file"),
            );
            return None;
        }
        if let Some(v) = from.inline {
            if v.is_empty() {
                self.err(format!("{path}.{key}"), "is empty");
                return None;
            }
            return Some(Secret::new(v.clone()));
        }
        if let Some(var) = from.env {
            return match (self.env)(var) {
                Some(v) if !v.is_empty() => Some(Secret::new(v)),
                // `check --no-env`: the variable is the deployment's business.
                _ if self.no_env => Some(Secret::new(NO_ENV_PLACEHOLDER.to_owned())),
                _ => {
                    self.err(
                        format!("{path}.{key}_env"),
                        format!(
                            "environment variable {var:?} is not set or empty; export it, or use {key} or {key}_file"
                        ),
                    );
                    None
                }
            };
        }
        if let Some(file) = from.file {
            let text = self.read_file(&format!("{path}.{key}_file"), file)?;
            let text = text.trim();
            if text.is_empty() {
                self.err(format!("{path}.{key}_file"), format!("{file:?} is empty"));
                return None;
            }
            return Some(Secret::new(text.to_owned()));
        }
        if required {
            self.err(
                format!("{path}.{key}"),
                format!("missing; set {key}, {key}_env or {key}_file"),
            );
        }
        None
    }
}

/// Where one secret may come from: inline, `<key>_env` or `<key>_file`.
#[derive(Clone, Copy, Default)]
pub(super) struct SecretFrom<'r> {
    pub(super) inline: Option<&'r String>,
    pub(super) env: Option<&'r String>,
    pub(super) file: Option<&'r String>,
}

/// What `check --no-env` puts in place of a secret whose variable is not exported: long
/// enough for every length rule, valid base64 (an Azure account key), and never served (only
/// `check` parses that way).
const NO_ENV_PLACEHOLDER: &str = "Y2hlY2stbm8tZW52LXBsYWNlaG9sZGVyLTAxMjM0NTY3ODlhYmNkZWY=";

pub(super) fn parse_rfc3339(s: &str) -> Option<u64> {
    humantime::parse_rfc3339(s)
        .ok()
        .map(crate::clock::unix_secs)
}

pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Refuses every field of `fields` that is set but that `kind` does not use (`used`), naming it.
pub(super) fn forbid_except(
    c: &mut Checker<'_>,
    path: &str,
    kind: &str,
    fields: &[(&str, bool)],
    used: &[&str],
) {
    for (name, present) in fields {
        if *present && !used.contains(name) {
            c.err(
                format!("{path}.{name}"),
                format!("is not used by kind = \"{kind}\"; remove it"),
            );
        }
    }
}

/// `mode = "cookie"`: CloudFront origins only; on the proxy's own name the cookies must be
/// set for a domain the distribution's name is under (`cookie_domain`), else the browser
/// never sends them there.
pub(super) fn check_cookie_route(path: &str, origin: &Origin, on_host: bool, c: &mut Checker<'_>) {
    let Kind::CloudFront(cf) = &origin.signer.kind else {
        c.err(
            format!("{path}.mode"),
            format!(
                "cookie mode sets CloudFront signed cookies, but origin {:?} is kind = \"{}\"; use a cloudfront origin or mode = \"redirect\"",
                origin.signer.name,
                origin.signer.kind_name()
            ),
        );
        return;
    };
    if !on_host && cf.cookie_domain.is_none() {
        c.err(
            format!("{path}.mode"),
            format!(
                "a cookie route on the proxy's own name sets cookies the browser must send to {:?}: set cookie_domain on origin {:?} to a domain both names are under (\".example.com\"), or give the route host = the distribution's name",
                cf.layout.signing_host, origin.signer.name
            ),
        );
    }
}

pub(super) fn check_no_self_redirect(
    path: &str,
    origin: &Origin,
    server: &Server,
    c: &mut Checker<'_>,
) {
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
pub(super) fn host_addresses(host: &str) -> Vec<std::net::IpAddr> {
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
pub(super) fn inet_aton(text: &str) -> Option<std::net::Ipv4Addr> {
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
pub(super) fn host_reaches(host: &str, listen_ip: std::net::IpAddr) -> bool {
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
