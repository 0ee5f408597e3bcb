//! `check --print`: the effective config (every default filled in) as TOML, with every
//! secret replaced by `"<redacted>"`. Built from the validated values, so what it shows is
//! what the server runs, not what the file says.

use std::time::Duration;

use toml::{Table, Value};

use crate::route::{Access, Mode};
use crate::sign::signer::Kind;

use super::Config;

const REDACTED: &str = "<redacted>";

fn secs(d: Duration) -> Value {
    Value::String(humantime::format_duration(d).to_string())
}

fn seconds(s: u64) -> Value {
    secs(Duration::from_secs(s))
}

fn strings<'a>(items: impl IntoIterator<Item = &'a String>) -> Value {
    Value::Array(items.into_iter().cloned().map(Value::String).collect())
}

fn nets(items: &[ipnet::IpNet]) -> Value {
    Value::Array(items.iter().map(|n| Value::String(n.to_string())).collect())
}

fn int(n: impl TryInto<i64>) -> Value {
    Value::Integer(n.try_into().unwrap_or(i64::MAX))
}

fn rfc3339(unix: u64) -> Value {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(unix);
    Value::String(humantime::format_rfc3339_seconds(t).to_string())
}

macro_rules! table {
    ($($k:expr => $v:expr),* $(,)?) => {{
        let mut t = Table::new();
        $( t.insert($k.to_owned(), $v); )*
        t
    }};
}

impl Config {
    /// The effective config as TOML, secrets redacted (`check --print`).
    pub fn effective(&self) -> String {
        let s = &self.server;
        let mut server = table! {
            "listen" => Value::String(s.listen.to_string()),
            "public_url" => Value::String(s.public_url.clone()),
            "trusted_proxies" => nets(&s.trusted_proxies),
            "metrics_allow" => nets(&s.metrics_allow),
            "shutdown_grace" => secs(s.shutdown_grace),
            "drain_delay" => secs(s.drain_delay),
            "header_read_timeout" => secs(s.header_read_timeout),
            "idle_timeout" => secs(s.idle_timeout),
            "send_timeout" => secs(s.send_timeout),
            "max_header_size" => int(s.max_header_size),
            "max_connections" => int(s.max_connections),
            "workers" => int(s.workers),
        };
        if let Some(tls) = &s.tls {
            server.insert("tls_listen".into(), Value::String(tls.listen.to_string()));
            server.insert(
                "tls_cert".into(),
                Value::String(tls.cert.display().to_string()),
            );
            server.insert(
                "tls_key".into(),
                Value::String(tls.key.display().to_string()),
            );
        }
        let cache = table! {
            "max_entries" => int(self.cache.max_entries),
            "max_bytes" => int(self.cache.max_bytes),
            "bucket" => seconds(self.cache.bucket),
        };
        let origins = self
            .origins
            .iter()
            .map(|o| Value::Table(self.origin_table(o)))
            .collect();
        let routes = self
            .routes
            .iter()
            .map(|r| {
                let mut t = table! {
                    "prefix" => Value::String(r.prefix.clone()),
                    "origin" => Value::String(self.origins[r.origin].signer.name.clone()),
                    "mode" => Value::String(match r.mode {
                        Mode::Redirect => "redirect",
                        Mode::Stream => "stream",
                        Mode::Cookie => "cookie",
                    }.into()),
                    "access" => Value::String(match r.access {
                        Access::Public => "public",
                        Access::Authenticated => "authenticated",
                        Access::Org => "org",
                    }.into()),
                    "stale_grace" => seconds(r.stale_grace),
                };
                if let Some((host, port)) = &r.host {
                    let host = port.map_or_else(|| host.clone(), |p| format!("{host}:{p}"));
                    t.insert("host".into(), Value::String(host));
                }
                Value::Table(t)
            })
            .collect();
        let a = &self.auth;
        let mut auth = table! {
            "org_claim" => Value::String(a.org_claim.clone()),
            "cookie" => Value::String(a.cookie.clone()),
            "jwt_rs256_public_keys" => int(a.jwt_rs256_public_keys.len()),
            "api_keys" => Value::Array(a.api_keys.iter().map(|k| {
                let mut t = table! {
                    // The first 12 hex digits name the key in logs, as the audit trail does.
                    "sha256" => Value::String(format!("{}…", &hex::encode(k.sha256)[..12])),
                    "kind" => Value::String(format!("{:?}", k.kind).to_ascii_lowercase()),
                };
                if let Some(org) = &k.org {
                    t.insert("org".into(), Value::String(org.clone()));
                }
                Value::Table(t)
            }).collect()),
        };
        if a.jwt_hs256_secret.is_some() {
            auth.insert("jwt_hs256_secret".into(), Value::String(REDACTED.into()));
        }
        if let Some(j) = &a.jwks {
            auth.insert("jwks_url".into(), Value::String(j.url.clone()));
            auth.insert("jwks_refresh".into(), secs(j.refresh));
        }
        for (k, v) in [("issuer", &a.issuer), ("audience", &a.audience)] {
            if let Some(v) = v {
                auth.insert(k.into(), Value::String(v.clone()));
            }
        }
        let rate_limit = table! {
            "per_second" => Value::Float(self.rate_limit.per_second),
            "burst" => int(self.rate_limit.burst),
            "ipv6_prefix" => int(self.rate_limit.ipv6_prefix),
        };
        let name = |i: Option<usize>| {
            i.map_or(Value::String(String::new()), |i| {
                Value::String(self.origins[i].signer.name.clone())
            })
        };
        let compat = table! {
            "content_sign_origin" => name(self.compat.content_sign_origin),
            "files_origin" => name(self.compat.files_origin),
            "files_key_prefix" => Value::String(self.compat.files_key_prefix.clone()),
            "presign_origin" => name(self.compat.presign_origin),
        };
        let oc = &self.origin_client;
        let origin_client = table! {
            "connect_timeout" => secs(oc.connect_timeout),
            "response_timeout" => secs(oc.response_timeout),
            "ca_certificates" => int(oc.ca_roots.len()),
            "web_roots" => Value::Boolean(oc.web_roots),
        };
        let cors = table! {
            "allow_origins" => strings(&self.cors.allow_origins),
        };
        let fleet = self.fleet.as_ref().map(|f| {
            table! {
                "redis_url" => Value::String(REDACTED.into()),
                "key_prefix" => Value::String(f.key_prefix.clone()),
                "sync_interval" => secs(f.sync_interval),
                "on_redis_error" => Value::String(match f.on_redis_error {
                    crate::config::OnRedisError::Allow => "allow",
                    crate::config::OnRedisError::Deny => "deny",
                }.into()),
            }
        });
        let mut top = table! {
            "server" => Value::Table(server),
            "cache" => Value::Table(cache),
            "origins" => Value::Array(origins),
            "routes" => Value::Array(routes),
            "auth" => Value::Table(auth),
            "rate_limit" => Value::Table(rate_limit),
            "compat" => Value::Table(compat),
            "origin_client" => Value::Table(origin_client),
            "cors" => Value::Table(cors),
        };
        if let Some(fleet) = fleet {
            top.insert("fleet".into(), Value::Table(fleet));
        }
        toml::to_string_pretty(&top).unwrap_or_default()
    }

    /// A hash of [`Config::effective`]: replicas that agree on it run one config (secrets
    /// do not count, since the effective config redacts them).
    pub fn hash(&self) -> u64 {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.effective().as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first)
    }

    fn origin_table(&self, o: &crate::origins::Origin) -> Table {
        let signer = &o.signer;
        let mut t = table! {
            "name" => Value::String(signer.name.clone()),
            "kind" => Value::String(signer.kind_name().into()),
            "url" => Value::String(signer.layout().base()),
            "ttl" => seconds(signer.ttl),
            "public_prefixes" => strings(&o.public_prefixes),
        };
        let keys: Vec<Value> = match &signer.kind {
            Kind::S3(s3) => {
                t.insert("region".into(), Value::String(s3.region.clone()));
                t.insert("bucket".into(), Value::String(s3.bucket.clone()));
                let provided = o.credentials.iter().map(|c| {
                    let mut kt = table! {
                        "source" => Value::String(if c.profile.is_some() { "profile" } else { "default" }.into()),
                    };
                    if let Some(p) = &c.profile {
                        kt.insert("profile".into(), Value::String(p.clone()));
                    }
                    if let Some(r) = &c.assume_role {
                        kt.insert("assume_role".into(), Value::String(r.clone()));
                    }
                    Value::Table(kt)
                });
                provided
                    .chain(s3.keys.iter().map(|k| {
                        let mut kt = table! {
                            "access_key_id" => Value::String(k.access_key_id.clone()),
                            "secret_access_key" => Value::String(REDACTED.into()),
                        };
                        if k.session_token.is_some() {
                            kt.insert("session_token".into(), Value::String(REDACTED.into()));
                        }
                        if let Some(e) = k.expires_at {
                            kt.insert("expires_at".into(), rfc3339(e));
                        }
                        Value::Table(kt)
                    }))
                    .collect()
            }
            Kind::CloudFront(cf) => {
                t.insert(
                    "hash_algorithm".into(),
                    Value::String(cf.hash.as_str().into()),
                );
                if let Some(e) = &cf.endpoint {
                    t.insert("endpoint".into(), Value::String(e.origin()));
                }
                if let Some(d) = &cf.cookie_domain {
                    t.insert("cookie_domain".into(), Value::String(d.clone()));
                }
                cf.keys
                    .iter()
                    .map(|k| {
                        Value::Table(table! {
                            "key_pair_id" => Value::String(k.key_pair_id.clone()),
                            "private_key" => Value::String(REDACTED.into()),
                        })
                    })
                    .collect()
            }
            Kind::Local(l) => {
                t.insert("root".into(), Value::String(l.root.display().to_string()));
                l.keys
                    .iter()
                    .map(|k| {
                        Value::Table(table! {
                            "key_id" => Value::String(k.key_id.clone()),
                            "secret" => Value::String(REDACTED.into()),
                        })
                    })
                    .collect()
            }
            Kind::Gcs(g) => {
                t.insert("bucket".into(), Value::String(g.bucket.clone()));
                g.keys
                    .iter()
                    .map(|k| {
                        Value::Table(match k {
                            crate::sign::gcs::Key::ServiceAccount { client_email, .. } => table! {
                                "client_email" => Value::String(client_email.clone()),
                                "private_key" => Value::String(REDACTED.into()),
                            },
                            crate::sign::gcs::Key::Hmac(key) => table! {
                                "access_id" => Value::String(key.access_id.clone()),
                                "secret" => Value::String(REDACTED.into()),
                            },
                        })
                    })
                    .collect()
            }
            Kind::Azure(a) => {
                t.insert("account".into(), Value::String(a.account.clone()));
                t.insert("container".into(), Value::String(a.container.clone()));
                t.insert("sas_version".into(), Value::String(a.sas_version.clone()));
                a.keys
                    .iter()
                    .map(|_| {
                        Value::Table(table! {
                            "account_key" => Value::String(REDACTED.into()),
                        })
                    })
                    .collect()
            }
        };
        t.insert("keys".into(), Value::Array(keys));
        t
    }
}
