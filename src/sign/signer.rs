//! One configured origin as the signing core sees it: where its objects live (URL layout),
//! which keys sign and verify, and the four operations the proxy needs — mint a URL for a
//! key, recognise a URL as this origin's, verify it, and re-sign a verified one exactly.
//!
//! Key rotation: the first key signs; every listed key verifies.

use super::Error;
use super::azure;
use super::cloudfront::{self, HashAlgorithm, PolicyKind};
use super::cookies::{self, CookieSet};
use super::encoding::{encode_key, percent_decode};
use super::gcs;
use super::native::{self, NativeKey};
use super::sigv4::{self, Credentials};
use super::url::{RawUrl, UrlScheme, join};
use super::{Method, Signed};

/// Where an origin's objects live: `scheme://authority<path_prefix>/<raw key>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// http / https.
    pub scheme: UrlScheme,
    /// Authority as URLs are written (`host[:port]`).
    pub authority: String,
    /// The `Host` a signer uses (no default port).
    pub signing_host: String,
    /// Lower-case host, for matching.
    host: String,
    /// Effective port, for matching.
    port: u16,
    /// `""` (virtual-host S3, CloudFront) or `/bucket` or `/_origin/<name>`.
    pub path_prefix: String,
}

impl Layout {
    /// Builds a layout from a base URL (`scheme://authority`) and a path prefix.
    pub fn new(base: &str, path_prefix: &str) -> Result<Self, String> {
        let url = RawUrl::parse(base).map_err(|e| e.to_string())?;
        if url.path != "/" || !url.query.is_empty() {
            return Err(format!(
                "{base:?} must be scheme://host[:port] with no path or query"
            ));
        }
        Ok(Layout {
            scheme: url.scheme,
            authority: url.authority.to_owned(),
            signing_host: url.signing_host().to_owned(),
            host: url.host.to_ascii_lowercase(),
            port: url.effective_port(),
            path_prefix: path_prefix.to_owned(),
        })
    }

    /// `scheme://authority`, the root of every URL of this layout.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme.as_str(), self.authority)
    }

    /// The raw key a request path names in this layout (the path of one of its URLs, as a
    /// client holds it): the path without the layout's path prefix and its `/`.
    pub fn key_of_path<'p>(&self, path: &'p str) -> Option<&'p str> {
        let key = path
            .strip_prefix(self.path_prefix.as_str())?
            .strip_prefix('/')?;
        (!key.is_empty()).then_some(key)
    }

    /// `scheme://authority<prefix>/`.
    pub fn base(&self) -> String {
        format!(
            "{}://{}{}/",
            self.scheme.as_str(),
            self.authority,
            self.path_prefix
        )
    }

    /// The raw path of `raw_key`.
    pub fn path_of(&self, raw_key: &str) -> String {
        format!("{}/{raw_key}", self.path_prefix)
    }

    /// The unsigned URL of `raw_key` (already encoded).
    pub fn object_url(&self, raw_key: &str) -> String {
        format!("{}{raw_key}", self.base())
    }

    /// The raw key `url` names if it points into this layout (same scheme, host — any case —,
    /// effective port, and path prefix).
    pub fn key_of<'u>(&self, url: &RawUrl<'u>) -> Option<&'u str> {
        if url.scheme != self.scheme
            || !url.host.eq_ignore_ascii_case(&self.host)
            || url.effective_port() != self.port
        {
            return None;
        }
        self.key_of_path(url.path)
    }

    /// The host and port objects are fetched from (IP literals unbracketed).
    pub fn connect_target(&self) -> (&str, u16) {
        (&self.host, self.port)
    }
}

/// AWS's default endpoints and addressing as botocore computes them: virtual-host style
/// unless `path_style` is set or the bucket is not DNS- and TLS-safe (dots over https);
/// `s3.amazonaws.com` for us-east-1, `s3.<region>.amazonaws.com` elsewhere.
///
/// ```
/// use edgesign::sign::signer::s3_layout;
/// let aws = s3_layout(None, "eu-west-1", "my-bucket", false).unwrap();
/// assert_eq!(aws.object_url("a.txt"), "https://my-bucket.s3.eu-west-1.amazonaws.com/a.txt");
/// let dotted = s3_layout(None, "us-west-2", "my.dotted.bucket", false).unwrap();
/// assert_eq!(dotted.object_url("a.txt"), "https://s3.us-west-2.amazonaws.com/my.dotted.bucket/a.txt");
/// let minio = s3_layout(Some("http://127.0.0.1:9000"), "us-east-1", "docs", true).unwrap();
/// assert_eq!(minio.object_url("a.txt"), "http://127.0.0.1:9000/docs/a.txt");
/// ```
pub fn s3_layout(
    endpoint: Option<&str>,
    region: &str,
    bucket: &str,
    path_style: bool,
) -> Result<Layout, String> {
    let base = match endpoint {
        Some(e) => e.trim_end_matches('/').to_owned(),
        None if region == "us-east-1" => "https://s3.amazonaws.com".to_owned(),
        None => format!("https://s3.{region}.amazonaws.com"),
    };
    let endpoint_layout = Layout::new(&base, "")?;
    let dns_safe = bucket.len() >= 3
        && bucket.len() <= 63
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    let tls_safe = !(bucket.contains('.') && endpoint_layout.scheme == UrlScheme::Https);
    let ip_endpoint = super::url::is_ip_literal(&endpoint_layout.host);
    if path_style || !dns_safe || !tls_safe || ip_endpoint {
        return Layout::new(&base, &format!("/{bucket}"));
    }
    let (scheme, authority) = base.split_once("://").unwrap_or(("https", &base));
    Layout::new(&format!("{scheme}://{bucket}.{authority}"), "")
}

/// Google Cloud Storage's layout: path style (`<endpoint>/<bucket>/<key>`, the default) or
/// virtual-hosted (`https://<bucket>.storage.googleapis.com/<key>`).
///
/// ```
/// use edgesign::sign::signer::gcs_layout;
/// let path = gcs_layout(None, "media", true).unwrap();
/// assert_eq!(path.object_url("a.txt"), "https://storage.googleapis.com/media/a.txt");
/// let vhost = gcs_layout(None, "media", false).unwrap();
/// assert_eq!(vhost.object_url("a.txt"), "https://media.storage.googleapis.com/a.txt");
/// ```
pub fn gcs_layout(
    endpoint: Option<&str>,
    bucket: &str,
    path_style: bool,
) -> Result<Layout, String> {
    let base = endpoint
        .unwrap_or("https://storage.googleapis.com")
        .trim_end_matches('/');
    if path_style {
        return Layout::new(base, &format!("/{bucket}"));
    }
    let (scheme, authority) = base.split_once("://").unwrap_or(("https", base));
    Layout::new(&format!("{scheme}://{bucket}.{authority}"), "")
}

/// Azure Blob's layout: `https://<account>.blob.core.windows.net/<container>/<blob>` by
/// default; an endpoint with a path (Azurite's `http://127.0.0.1:10000/devstoreaccount1`)
/// keeps it before the container.
///
/// ```
/// use edgesign::sign::signer::azure_layout;
/// let az = azure_layout(None, "acct", "media").unwrap();
/// assert_eq!(az.object_url("a.txt"), "https://acct.blob.core.windows.net/media/a.txt");
/// let azurite = azure_layout(Some("http://127.0.0.1:10000/devstoreaccount1"), "devstoreaccount1", "media").unwrap();
/// assert_eq!(azurite.object_url("a.txt"), "http://127.0.0.1:10000/devstoreaccount1/media/a.txt");
/// ```
pub fn azure_layout(
    endpoint: Option<&str>,
    account: &str,
    container: &str,
) -> Result<Layout, String> {
    let default = format!("https://{account}.blob.core.windows.net");
    let endpoint = endpoint.unwrap_or(&default).trim_end_matches('/');
    let (scheme, rest) = endpoint
        .split_once("://")
        .ok_or_else(|| format!("{endpoint:?} is not scheme://host[:port][/path]"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    Layout::new(
        &format!("{scheme}://{authority}"),
        &format!("{path}/{container}"),
    )
}

/// A Google Cloud Storage bucket.
#[derive(Debug)]
pub struct Gcs {
    /// URL layout.
    pub layout: Layout,
    /// Bucket name.
    pub bucket: String,
    /// Keys (service accounts or HMAC keys); the first signs.
    pub keys: Vec<gcs::Key>,
}

/// An Azure Blob container.
#[derive(Debug)]
pub struct Azure {
    /// URL layout.
    pub layout: Layout,
    /// Storage account name.
    pub account: String,
    /// Container name.
    pub container: String,
    /// The SAS version new URLs are signed with.
    pub sas_version: String,
    /// Account keys; the first signs.
    pub keys: Vec<azure::AccountKey>,
}

impl Azure {
    /// `/blob/<account>/<container>/<blob>` of a raw key; `None` when the decoded key is not
    /// UTF-8 (no blob has such a name).
    fn resource(&self, raw_key: &str) -> Option<String> {
        let blob = String::from_utf8(percent_decode(raw_key).into_owned()).ok()?;
        Some(azure::canonicalized_resource(
            &self.account,
            &self.container,
            &blob,
        ))
    }
}

/// An S3 (or S3-compatible) origin.
#[derive(Debug)]
pub struct S3 {
    /// URL layout (endpoint, addressing style, bucket).
    pub layout: Layout,
    /// Region of the credential scope; URLs signed for another region are not genuine.
    pub region: String,
    /// Bucket name.
    pub bucket: String,
    /// Credentials; the first signs.
    pub keys: Vec<Credentials>,
}

/// One CloudFront key pair.
#[derive(Debug)]
pub struct CloudFrontKey {
    /// `Key-Pair-Id` (public key ID or legacy `APKA…` key pair ID).
    pub key_pair_id: String,
    /// The private key.
    pub private: cloudfront::PrivateKey,
    /// Its public half, for verification.
    pub public: cloudfront::PublicKey,
}

/// A CloudFront distribution (or any CDN speaking its signed-URL format).
#[derive(Debug)]
pub struct CloudFront {
    /// URL layout: `https://<domain>`, the name in every URL, policy `Resource` and `Host`.
    pub layout: Layout,
    /// Where edgesign connects to fetch (the configured `endpoint`), when not `domain`.
    pub endpoint: Option<Layout>,
    /// Digest for new signatures.
    pub hash: HashAlgorithm,
    /// Keys; the first signs.
    pub keys: Vec<CloudFrontKey>,
    /// `Domain=` of the signed cookies it sets (`None`: host-only cookies).
    pub cookie_domain: Option<String>,
}

/// A directory served by edgesign under `/_origin/<name>/`.
#[derive(Debug)]
pub struct Local {
    /// URL layout (`<public_url>/_origin/<name>`).
    pub layout: Layout,
    /// The directory.
    pub root: std::path::PathBuf,
    /// HMAC keys; the first signs.
    pub keys: Vec<NativeKey>,
}

/// The kinds of origin.
#[derive(Debug)]
pub enum Kind {
    /// `kind = "s3"`.
    S3(S3),
    /// `kind = "cloudfront"`.
    CloudFront(CloudFront),
    /// `kind = "local"`.
    Local(Local),
    /// `kind = "gcs"`.
    Gcs(Gcs),
    /// `kind = "azure"`.
    Azure(Azure),
}

/// The signature scheme of a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// S3 SigV4 query auth.
    Sigv4,
    /// CloudFront signed URL.
    CloudFront,
    /// edgesign native.
    Native,
    /// Google Cloud Storage V4.
    Gcs,
    /// Azure Blob SAS.
    Azure,
    /// No signature.
    Unsigned,
}

impl Scheme {
    /// `sigv4` / `cloudfront` / `native` / `unsigned`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Sigv4 => "sigv4",
            Scheme::CloudFront => "cloudfront",
            Scheme::Native => "native",
            Scheme::Gcs => "gcs",
            Scheme::Azure => "azure",
            Scheme::Unsigned => "unsigned",
        }
    }

    /// Which scheme a raw query carries (SigV4, CloudFront, GCS V4, Azure SAS, native, in
    /// that order).
    pub fn of_query(query: &str) -> Self {
        if query.is_empty() {
            Scheme::Unsigned
        } else if sigv4::is_sigv4(query) {
            Scheme::Sigv4
        } else if cloudfront::is_cloudfront(query) {
            Scheme::CloudFront
        } else if gcs::is_gcs(query) {
            Scheme::Gcs
        } else if azure::is_sas(query) {
            Scheme::Azure
        } else if native::is_native(query) {
            Scheme::Native
        } else {
            Scheme::Unsigned
        }
    }
}

/// What one fresh URL covers.
#[derive(Debug, Clone, Copy)]
pub struct SignSpec<'a> {
    /// The object key, already encoded as it appears in the path.
    pub raw_key: &'a str,
    /// GET or HEAD (bound into SigV4 signatures).
    pub method: Method,
    /// Extra query segments (`response-*` overrides), raw `name=value`.
    pub params: &'a [&'a str],
    /// The signing instant (bucket start, or the request instant for exact lifetimes).
    pub signed_at: u64,
    /// Requested lifetime in seconds; capped by the scheme and the credentials.
    pub lifetime: u64,
}

/// A URL whose signature verified. Only this can be re-signed.
#[derive(Debug)]
pub struct Verified<'u> {
    /// Its scheme.
    pub scheme: Scheme,
    /// The raw object key it names.
    pub raw_key: &'u str,
    /// When it expires (Unix seconds).
    pub expires_at: u64,
    /// Not valid before (SigV4 `X-Amz-Date`, CloudFront `DateGreaterThan`).
    pub valid_from: Option<u64>,
    /// The client addresses it is for (CloudFront `IpAddress`, Azure `sip`), as written.
    pub source_ip: Option<String>,
    /// The configured key that verified it (access key ID, `Key-Pair-Id` or `key_id`).
    pub key_id: String,
    method: Method,
    url: RawUrl<'u>,
    detail: Detail<'u>,
}

impl Verified<'_> {
    /// Whether the URL's address condition (CloudFront `IpAddress`, Azure `sip`) admits
    /// `client`; a URL without one admits everyone.
    pub fn admits(&self, client: std::net::IpAddr) -> bool {
        match self.source_ip.as_deref() {
            None => true,
            Some(sip) if self.scheme == Scheme::Azure => azure::ip_admits(sip, client),
            Some(range) => cloudfront::source_ip_admits(range, client),
        }
    }

    /// The method it was signed for.
    pub fn method(&self) -> Method {
        self.method
    }

    /// For a CloudFront custom policy whose `Resource` holds a wildcard: the fixed text before
    /// the first `*` or `?` (what a re-signed URL would keep granting).
    pub fn wildcard_prefix(&self) -> Option<String> {
        let Detail::CloudFront {
            custom: Some(policy),
            ..
        } = &self.detail
        else {
            return None;
        };
        let resource = policy
            .get("Statement")?
            .get(0)?
            .get("Resource")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("*");
        let cut = resource.find(['*', '?'])?;
        Some(resource[..cut].to_owned())
    }

    /// Its extra query segments, raw and in order (kept when re-signed).
    pub fn params(&self) -> Vec<&str> {
        match &self.detail {
            Detail::Sigv4 { parsed, .. } => parsed.params.clone(),
            Detail::CloudFront { params, .. } | Detail::Native { params } => params.clone(),
            Detail::Gcs { params } => params.clone(),
            Detail::Azure { parsed } => parsed.extra.clone(),
        }
    }

    /// What else a re-signed URL keeps from this one (authority as written, signed headers,
    /// custom-policy conditions): with the key, method, parameters and bucket it identifies
    /// the re-signed URL, so it can be cached.
    pub fn variant(&self) -> String {
        let mut v = format!("{}://{}", self.url.scheme.as_str(), self.url.authority);
        match &self.detail {
            Detail::Sigv4 { headers, .. } => {
                for (name, value) in headers {
                    v.push_str(&format!("|{name}:{value}"));
                }
            }
            Detail::CloudFront {
                custom: Some(policy),
                ..
            } => {
                v.push('|');
                v.push_str(&cloudfront::policy_with_expiry(policy.clone(), 0));
            }
            Detail::Azure { parsed } => {
                let f = &parsed.fields;
                for (name, value) in [
                    ("sp", Some(&f.permissions)),
                    ("sip", f.ip.as_ref()),
                    ("spr", f.protocol.as_ref()),
                    ("sv", Some(&f.version)),
                    ("sr", Some(&f.resource)),
                    ("si", f.identifier.as_ref()),
                    ("ses", f.encryption_scope.as_ref()),
                ] {
                    if let Some(value) = value {
                        v.push_str(&format!("|{name}={value}"));
                    }
                }
                for (name, value) in azure::OVERRIDES.iter().zip(&f.overrides) {
                    if let Some(value) = value {
                        v.push_str(&format!("|{name}={value}"));
                    }
                }
            }
            Detail::CloudFront { custom: None, .. }
            | Detail::Native { .. }
            | Detail::Gcs { .. } => {}
        }
        v
    }
}

#[derive(Debug)]
enum Detail<'u> {
    Sigv4 {
        parsed: sigv4::Parsed<'u>,
        headers: Vec<(String, String)>,
    },
    CloudFront {
        params: Vec<&'u str>,
        custom: Option<serde_json::Value>,
    },
    Native {
        params: Vec<&'u str>,
    },
    Gcs {
        params: Vec<&'u str>,
    },
    Azure {
        parsed: Box<azure::Parsed<'u>>,
    },
}

/// CloudFront signed cookies, minted for a directory or renewed.
#[derive(Debug, Clone)]
pub struct SignedCookies {
    /// The cookies, in the order they are set.
    pub cookies: CookieSet,
    /// The policy's `Resource` (`https://<domain>/<dir>*`, or one URL for a canned policy).
    pub resource: String,
    /// `DateLessThan`.
    pub expires_at: u64,
}

/// A set of CloudFront signed cookies that verified for a request's URL. Only this can be
/// renewed.
#[derive(Debug, Clone)]
pub struct VerifiedCookies {
    /// `DateLessThan`.
    pub expires_at: u64,
    /// `DateGreaterThan`.
    pub valid_from: Option<u64>,
    /// `IpAddress`, as the policy writes it.
    pub source_ip: Option<String>,
    /// The `Key-Pair-Id` that verified them.
    pub key_id: String,
    /// The policy's `Resource` (a canned policy's is the request URL).
    pub resource: String,
    /// The custom policy; `None` for a canned one.
    policy: Option<serde_json::Value>,
}

impl VerifiedCookies {
    /// For a wildcard `Resource`: the fixed text before the first `*` or `?`.
    pub fn wildcard_prefix(&self) -> Option<String> {
        let cut = self.resource.find(['*', '?'])?;
        Some(self.resource[..cut].to_owned())
    }

    /// What a renewed set keeps besides its expiry (the policy with `DateLessThan` zeroed,
    /// or the canned resource): with the origin and bucket it identifies the renewed set.
    pub fn variant(&self) -> String {
        match &self.policy {
            Some(p) => cloudfront::policy_with_expiry(p.clone(), 0),
            None => format!("canned|{}", self.resource),
        }
    }
}

/// A configured origin.
#[derive(Debug)]
pub struct OriginSigner {
    /// Its name in config.
    pub name: String,
    /// Default lifetime of minted URLs.
    pub ttl: u64,
    /// Kind, layout and keys.
    pub kind: Kind,
}

fn honest_expiry(signed_at: u64, lifetime: u64, cap: Option<u64>) -> Result<u64, Error> {
    let mut expires_at = signed_at.saturating_add(lifetime);
    if let Some(cap) = cap {
        expires_at = expires_at.min(cap);
    }
    if expires_at <= signed_at {
        return Err(Error::Internal(
            "signing credentials have expired; refusing to mint a dead URL".into(),
        ));
    }
    Ok(expires_at)
}

impl OriginSigner {
    /// `kind` as the config writes it.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            Kind::S3(_) => "s3",
            Kind::CloudFront(_) => "cloudfront",
            Kind::Local(_) => "local",
            Kind::Gcs(_) => "gcs",
            Kind::Azure(_) => "azure",
        }
    }

    /// The scheme this origin signs with, as a metrics label.
    pub fn scheme_name(&self) -> &'static str {
        match &self.kind {
            Kind::S3(_) => "sigv4",
            Kind::CloudFront(_) => "cloudfront",
            Kind::Local(_) => "native",
            Kind::Gcs(_) => "gcs",
            Kind::Azure(_) => "azure",
        }
    }

    /// The longest lifetime the scheme allows a URL (S3: 7 days), if it has a limit.
    pub fn max_lifetime(&self) -> Option<u64> {
        match &self.kind {
            Kind::S3(_) => Some(sigv4::MAX_EXPIRES),
            Kind::Gcs(_) => Some(gcs::MAX_EXPIRES),
            Kind::CloudFront(_) | Kind::Local(_) | Kind::Azure(_) => None,
        }
    }

    /// The URL layout of this origin.
    pub fn layout(&self) -> &Layout {
        match &self.kind {
            Kind::S3(s) => &s.layout,
            Kind::CloudFront(c) => &c.layout,
            Kind::Local(l) => &l.layout,
            Kind::Gcs(g) => &g.layout,
            Kind::Azure(a) => &a.layout,
        }
    }

    /// The scheme this origin signs with.
    pub fn scheme(&self) -> Scheme {
        match self.kind {
            Kind::S3(_) => Scheme::Sigv4,
            Kind::CloudFront(_) => Scheme::CloudFront,
            Kind::Local(_) => Scheme::Native,
            Kind::Gcs(_) => Scheme::Gcs,
            Kind::Azure(_) => Scheme::Azure,
        }
    }

    /// Where edgesign connects to fetch this origin's URLs, when it is not their own host (a
    /// CloudFront origin's `endpoint`).
    pub fn fetched_from(&self) -> Option<&Layout> {
        match &self.kind {
            Kind::CloudFront(cf) => cf.endpoint.as_ref(),
            _ => None,
        }
    }

    /// The raw key `url` names if it is one of this origin's URLs.
    pub fn key_of<'u>(&self, url: &RawUrl<'u>) -> Option<&'u str> {
        self.layout().key_of(url)
    }

    /// Mints a fresh URL with the first key. `expires_at` is honest: the requested lifetime,
    /// capped by the scheme's maximum (S3: 7 days) and the credentials' own expiry.
    pub fn sign(&self, spec: &SignSpec<'_>) -> Result<Signed, Error> {
        self.sign_with(spec, &[])
    }

    /// [`OriginSigner::sign`], where an S3 origin whose credentials come from a provider
    /// signs with `live` (newest first) instead of its configured keys.
    pub fn sign_with(&self, spec: &SignSpec<'_>, live: &[Credentials]) -> Result<Signed, Error> {
        let no_key = || Error::Internal(format!("origin {} has no signing key", self.name));
        match &self.kind {
            Kind::S3(s3) => {
                let creds = live.first().or(s3.keys.first()).ok_or_else(no_key)?;
                let path = s3.layout.path_of(spec.raw_key);
                let req = sigv4::Request {
                    method: spec.method,
                    host: &s3.layout.signing_host,
                    path: &path,
                    params: spec.params,
                    headers: &[],
                    region: &s3.region,
                    signed_at: spec.signed_at,
                    expires_in: 0,
                };
                s3.presign(
                    req,
                    creds,
                    &s3.layout.object_url(spec.raw_key),
                    spec.lifetime,
                )
            }
            Kind::CloudFront(cf) => {
                let key = cf.keys.first().ok_or_else(no_key)?;
                let expires_at = honest_expiry(spec.signed_at, spec.lifetime, None)?;
                let url = join(&cf.layout.object_url(spec.raw_key), spec.params);
                let url = cloudfront::sign(
                    &url,
                    &PolicyKind::Canned {
                        expires: expires_at,
                    },
                    &key.private,
                    &key.key_pair_id,
                    cf.hash,
                )?;
                Ok(Signed { url, expires_at })
            }
            Kind::Local(local) => {
                let key = local.keys.first().ok_or_else(no_key)?;
                let expires_at = honest_expiry(spec.signed_at, spec.lifetime, None)?;
                let query = native::sign(&self.name, spec.raw_key, spec.params, expires_at, key);
                let url = format!("{}?{query}", local.layout.object_url(spec.raw_key));
                Ok(Signed { url, expires_at })
            }
            Kind::Gcs(g) => {
                let key = g.keys.first().ok_or_else(no_key)?;
                let path = g.layout.path_of(spec.raw_key);
                g.presign(
                    key,
                    spec.method,
                    &g.layout.signing_host,
                    &path,
                    spec.params,
                    spec.signed_at,
                    spec.lifetime,
                    &g.layout.object_url(spec.raw_key),
                )
            }
            Kind::Azure(az) => {
                let key = az.keys.first().ok_or_else(no_key)?;
                let expires_at = honest_expiry(spec.signed_at, spec.lifetime, None)?;
                let resource = az
                    .resource(spec.raw_key)
                    .ok_or_else(|| Error::BadRequest("the key is not UTF-8".into()))?;
                let mut fields = azure::Fields {
                    permissions: "r".into(),
                    start: Some(azure::time(spec.signed_at)),
                    expiry: azure::time(expires_at),
                    version: az.sas_version.clone(),
                    resource: "b".into(),
                    ..azure::Fields::default()
                };
                fields.overrides = azure_overrides(spec.params);
                let token = azure::sign(&fields, &resource, key);
                Ok(Signed {
                    url: format!("{}?{token}", az.layout.object_url(spec.raw_key)),
                    expires_at,
                })
            }
        }
    }

    /// Verifies `url` as one of this origin's signed URLs, whatever its expiry (the caller
    /// compares `expires_at` with the clock). `header` looks up request headers that a SigV4
    /// URL may sign (`range`). Forged, tampered, foreign or malformed → `InvalidSignature`.
    pub fn verify<'u, 'h>(
        &self,
        url: &RawUrl<'u>,
        method: Method,
        header: impl Fn(&str) -> Option<&'h str>,
    ) -> Result<Verified<'u>, Error> {
        self.verify_with(url, method, header, &[])
    }

    /// [`OriginSigner::verify`], where an S3 origin also knows the `live` credentials a
    /// provider handed it (the current ones and those it replaced).
    pub fn verify_with<'u, 'h>(
        &self,
        url: &RawUrl<'u>,
        method: Method,
        header: impl Fn(&str) -> Option<&'h str>,
        live: &[Credentials],
    ) -> Result<Verified<'u>, Error> {
        let forged = Error::InvalidSignature("signature does not match");
        let raw_key = self
            .key_of(url)
            .ok_or(Error::InvalidSignature("URL is not for this origin"))?;
        match &self.kind {
            Kind::S3(s3) => {
                let parsed = sigv4::parse(url.query)?;
                if parsed.region != s3.region {
                    return Err(Error::InvalidSignature("signed for another region"));
                }
                let creds = live
                    .iter()
                    .chain(&s3.keys)
                    .find(|k| k.access_key_id == parsed.access_key_id)
                    .ok_or(Error::InvalidSignature("unknown access key"))?;
                let host = url.signing_host();
                if !sigv4::verify(&parsed, method, host, url.path, |n| header(n), creds) {
                    return Err(forged);
                }
                let headers = parsed
                    .signed_headers
                    .iter()
                    .filter(|h| *h != "host")
                    .filter_map(|h| Some((h.clone(), header(h)?.to_owned())))
                    .collect();
                Ok(Verified {
                    scheme: Scheme::Sigv4,
                    raw_key,
                    expires_at: parsed.expires_at(),
                    valid_from: Some(parsed.signed_at),
                    source_ip: None,
                    key_id: creds.access_key_id.clone(),
                    method,
                    url: url.clone(),
                    detail: Detail::Sigv4 { parsed, headers },
                })
            }
            Kind::CloudFront(cf) => {
                let parsed = cloudfront::parse(url.query)?;
                let key = cf
                    .keys
                    .iter()
                    .find(|k| k.key_pair_id == parsed.key_pair_id)
                    .ok_or(Error::InvalidSignature("unknown Key-Pair-Id"))?;
                let resource = cloudfront::resource_url(url, &parsed.params);
                let conditions =
                    cloudfront::verify(&parsed, &resource, &key.public).ok_or(forged)?;
                let custom = match &parsed.policy {
                    Some(p) => Some(cloudfront::parse_policy(p)?.0),
                    None => None,
                };
                Ok(Verified {
                    scheme: Scheme::CloudFront,
                    raw_key,
                    expires_at: conditions.date_less_than,
                    valid_from: conditions.date_greater_than,
                    source_ip: conditions.source_ip,
                    key_id: key.key_pair_id.clone(),
                    method,
                    url: url.clone(),
                    detail: Detail::CloudFront {
                        params: parsed.params,
                        custom,
                    },
                })
            }
            Kind::Local(local) => {
                let parsed = native::parse(url.query)?;
                let key = local
                    .keys
                    .iter()
                    .find(|k| k.key_id == parsed.key_id)
                    .ok_or(Error::InvalidSignature("unknown key_id"))?;
                if !native::verify(&parsed, &self.name, raw_key, key) {
                    return Err(forged);
                }
                Ok(Verified {
                    scheme: Scheme::Native,
                    raw_key,
                    expires_at: parsed.expires,
                    valid_from: None,
                    source_ip: None,
                    key_id: key.key_id.clone(),
                    method,
                    url: url.clone(),
                    detail: Detail::Native {
                        params: parsed.params,
                    },
                })
            }
            Kind::Gcs(g) => {
                let parsed = gcs::parse(url.query)?;
                let key = g
                    .keys
                    .iter()
                    .find(|k| k.id() == parsed.id && k.algorithm() == parsed.algorithm)
                    .ok_or(Error::InvalidSignature("unknown credential"))?;
                if parsed.signed_headers.iter().any(|h| h != "host") {
                    return Err(Error::InvalidSignature(
                        "a GCS URL that signs headers besides host is not accepted",
                    ));
                }
                // google-cloud-storage signs the host with a non-default port, Google's
                // conformance vectors and the Go client without: either is genuine.
                let host = url.signing_host();
                let bare = without_port(host);
                let ok = gcs::verify(&parsed, method.as_str(), url.path, |_| Some(host), key)
                    .is_ok()
                    || bare.is_some_and(|b| {
                        b != host
                            && gcs::verify(&parsed, method.as_str(), url.path, |_| Some(b), key)
                                .is_ok()
                    });
                if !ok {
                    return Err(forged);
                }
                let params = url
                    .query
                    .split('&')
                    .filter(|s| !s.is_empty())
                    .filter(|s| {
                        let name = s.split_once('=').map_or(*s, |(k, _)| k);
                        !gcs::AUTH_PARAMS
                            .iter()
                            .any(|n| n.eq_ignore_ascii_case(name))
                    })
                    .collect();
                Ok(Verified {
                    scheme: Scheme::Gcs,
                    raw_key,
                    expires_at: parsed.expires_at(),
                    valid_from: Some(parsed.signed_at),
                    source_ip: None,
                    key_id: parsed.id.clone(),
                    method,
                    url: url.clone(),
                    detail: Detail::Gcs { params },
                })
            }
            Kind::Azure(az) => {
                let parsed = azure::parse(url.query)?;
                let resource = az
                    .resource(raw_key)
                    .ok_or(Error::InvalidSignature("the key is not UTF-8"))?;
                let index = az
                    .keys
                    .iter()
                    .position(|k| azure::verify(&parsed, &resource, k).is_ok());
                let Some(index) = index else {
                    // Say why a delegation SAS or an unknown version fails, else "forged".
                    if let Some(k) = az.keys.first() {
                        azure::verify(&parsed, &resource, k)?;
                    }
                    return Err(forged);
                };
                if !parsed.fields.permissions.contains('r') {
                    return Err(Error::InvalidSignature("the SAS does not grant read"));
                }
                Ok(Verified {
                    scheme: Scheme::Azure,
                    raw_key,
                    expires_at: parsed.expires_at,
                    valid_from: parsed.starts_at,
                    source_ip: parsed.fields.ip.clone(),
                    key_id: format!("key{}", index + 1),
                    method,
                    url: url.clone(),
                    detail: Detail::Azure {
                        parsed: Box::new(parsed),
                    },
                })
            }
        }
    }

    /// Re-signs a verified URL exactly: same scheme, host and raw path bytes, same extra
    /// parameters in the same order, same signed headers; CloudFront custom policies keep
    /// their `Resource`, `DateGreaterThan` and `IpAddress`. Signed by the first key.
    pub fn resign(&self, v: &Verified<'_>, signed_at: u64, lifetime: u64) -> Result<Signed, Error> {
        self.resign_with(v, signed_at, lifetime, &[])
    }

    /// [`OriginSigner::resign`] with an S3 origin's `live` credentials (newest first).
    pub fn resign_with(
        &self,
        v: &Verified<'_>,
        signed_at: u64,
        lifetime: u64,
        live: &[Credentials],
    ) -> Result<Signed, Error> {
        let no_key = || Error::Internal(format!("origin {} has no signing key", self.name));
        let base = format!(
            "{}://{}{}",
            v.url.scheme.as_str(),
            v.url.authority,
            v.url.path
        );
        match (&self.kind, &v.detail) {
            (Kind::S3(s3), Detail::Sigv4 { parsed, headers }) => {
                let creds = live.first().or(s3.keys.first()).ok_or_else(no_key)?;
                let headers: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.as_str()))
                    .collect();
                let req = sigv4::Request {
                    method: v.method,
                    host: v.url.signing_host(),
                    path: v.url.path,
                    params: &parsed.params,
                    headers: &headers,
                    region: &s3.region,
                    signed_at,
                    expires_in: 0,
                };
                s3.presign(req, creds, &base, lifetime)
            }
            (Kind::CloudFront(cf), Detail::CloudFront { params, custom }) => {
                let key = cf.keys.first().ok_or_else(no_key)?;
                let expires_at = honest_expiry(signed_at, lifetime, None)?;
                let policy = match custom {
                    Some(p) => {
                        PolicyKind::Custom(cloudfront::policy_with_expiry(p.clone(), expires_at))
                    }
                    None => PolicyKind::Canned {
                        expires: expires_at,
                    },
                };
                let url = cloudfront::sign(
                    &join(&base, params),
                    &policy,
                    &key.private,
                    &key.key_pair_id,
                    cf.hash,
                )?;
                Ok(Signed { url, expires_at })
            }
            (Kind::Local(local), Detail::Native { params }) => {
                let key = local.keys.first().ok_or_else(no_key)?;
                let expires_at = honest_expiry(signed_at, lifetime, None)?;
                let query = native::sign(&self.name, v.raw_key, params, expires_at, key);
                Ok(Signed {
                    url: format!("{base}?{query}"),
                    expires_at,
                })
            }
            (Kind::Gcs(g), Detail::Gcs { params }) => {
                let key = g.keys.first().ok_or_else(no_key)?;
                g.presign(
                    key,
                    v.method,
                    v.url.signing_host(),
                    v.url.path,
                    params,
                    signed_at,
                    lifetime,
                    &base,
                )
            }
            (Kind::Azure(az), Detail::Azure { parsed }) => {
                let key = az.keys.first().ok_or_else(no_key)?;
                let expires_at = honest_expiry(signed_at, lifetime, None)?;
                let resource = az
                    .resource(v.raw_key)
                    .ok_or_else(|| Error::BadRequest("the key is not UTF-8".into()))?;
                // Everything the client's SAS signed stays (permissions, protocol, address,
                // version, overrides); only the window moves.
                let mut fields = parsed.fields.clone();
                fields.start = Some(azure::time(signed_at));
                fields.expiry = azure::time(expires_at);
                let token = azure::sign(&fields, &resource, key);
                Ok(Signed {
                    url: join(&format!("{base}?{token}"), &parsed.extra),
                    expires_at,
                })
            }
            _ => Err(Error::Internal(
                "verified URL re-signed by another kind of origin".into(),
            )),
        }
    }
}

/// Signed cookies (CloudFront origins only).
impl OriginSigner {
    fn cloudfront(&self) -> Result<&CloudFront, Error> {
        match &self.kind {
            Kind::CloudFront(cf) => Ok(cf),
            _ => Err(Error::BadRequest(format!(
                "signed cookies are CloudFront's; origin {} is kind = \"{}\"",
                self.name,
                self.kind_name()
            ))),
        }
    }

    /// The distribution and its signing (first) key.
    fn cookie_signer(&self) -> Result<(&CloudFront, &CloudFrontKey), Error> {
        let cf = self.cloudfront()?;
        let key = cf
            .keys
            .first()
            .ok_or_else(|| Error::Internal(format!("origin {} has no signing key", self.name)))?;
        Ok((cf, key))
    }

    /// `Domain=` of the cookies this origin sets, if configured.
    pub fn cookie_domain(&self) -> Option<&str> {
        match &self.kind {
            Kind::CloudFront(cf) => cf.cookie_domain.as_deref(),
            _ => None,
        }
    }

    /// The `Resource` that covers a directory: `https://<domain>/<raw dir>*`.
    pub fn cookie_resource(&self, raw_dir: &str) -> Result<String, Error> {
        Ok(format!("{}{raw_dir}*", self.cloudfront()?.layout.base()))
    }

    /// Mints cookies for everything under `raw_dir` (a raw key prefix ending in `/`, or
    /// empty): a custom policy over [`OriginSigner::cookie_resource`] with `DateLessThan` =
    /// `signed_at + lifetime`, signed by the first key.
    pub fn sign_cookies(
        &self,
        raw_dir: &str,
        signed_at: u64,
        lifetime: u64,
    ) -> Result<SignedCookies, Error> {
        let (cf, key) = self.cookie_signer()?;
        let expires_at = honest_expiry(signed_at, lifetime, None)?;
        let resource = self.cookie_resource(raw_dir)?;
        let policy = cloudfront::custom_policy(&resource, expires_at, None, None);
        let cookies = cookies::sign(
            &PolicyKind::Custom(policy),
            &resource,
            &key.private,
            &key.key_pair_id,
            cf.hash,
        )?;
        Ok(SignedCookies {
            cookies,
            resource,
            expires_at,
        })
    }

    /// Verifies a request's cookies for `url` (the URL at the distribution, query included):
    /// the signature with the named key's public half, then that the policy's `Resource`
    /// covers the URL. Whatever the expiry (the caller compares it with the clock).
    pub fn verify_cookies(
        &self,
        url: &RawUrl<'_>,
        parsed: &cloudfront::Parsed<'_>,
    ) -> Result<VerifiedCookies, Error> {
        let cf = self.cloudfront()?;
        if self.key_of(url).is_none() {
            return Err(Error::InvalidSignature("URL is not for this origin"));
        }
        let key = cf
            .keys
            .iter()
            .find(|k| k.key_pair_id == parsed.key_pair_id)
            .ok_or(Error::InvalidSignature("unknown CloudFront-Key-Pair-Id"))?;
        let segments: Vec<&str> = super::url::query_segments(url.query).collect();
        let resource = cloudfront::resource_url(url, &segments);
        let conditions =
            cloudfront::verify(parsed, &resource, &key.public).ok_or(Error::InvalidSignature(
                "the cookies' signature does not match, or their policy does not cover this URL",
            ))?;
        let policy = match &parsed.policy {
            Some(p) => Some(cloudfront::parse_policy(p)?.0),
            None => None,
        };
        Ok(VerifiedCookies {
            expires_at: conditions.date_less_than,
            valid_from: conditions.date_greater_than,
            source_ip: conditions.source_ip,
            key_id: key.key_pair_id.clone(),
            resource: conditions.resource,
            policy,
        })
    }

    /// Renews verified cookies: the same policy (`Resource`, `DateGreaterThan`, `IpAddress`,
    /// key order) with `DateLessThan` = `signed_at + lifetime`, signed by the first key.
    pub fn resign_cookies(
        &self,
        v: &VerifiedCookies,
        signed_at: u64,
        lifetime: u64,
    ) -> Result<SignedCookies, Error> {
        let (cf, key) = self.cookie_signer()?;
        let expires_at = honest_expiry(signed_at, lifetime, None)?;
        let policy = match &v.policy {
            Some(p) => PolicyKind::Custom(cloudfront::policy_with_expiry(p.clone(), expires_at)),
            None => PolicyKind::Canned {
                expires: expires_at,
            },
        };
        let cookies = cookies::sign(
            &policy,
            &v.resource,
            &key.private,
            &key.key_pair_id,
            cf.hash,
        )?;
        Ok(SignedCookies {
            cookies,
            resource: v.resource.clone(),
            expires_at,
        })
    }
}

impl Gcs {
    /// Presigns with honest expiry (at most 7 days); `base` is the URL without a query.
    #[allow(clippy::too_many_arguments, reason = "one URL's parts")]
    fn presign(
        &self,
        key: &gcs::Key,
        method: super::Method,
        host: &str,
        path: &str,
        params: &[&str],
        signed_at: u64,
        lifetime: u64,
        base: &str,
    ) -> Result<Signed, Error> {
        let cap = signed_at.saturating_add(gcs::MAX_EXPIRES);
        let expires_at = honest_expiry(signed_at, lifetime, Some(cap))?;
        let presigned = gcs::presign(
            &gcs::Request {
                method,
                host,
                path,
                params,
                signed_at,
                expires_in: expires_at - signed_at,
            },
            key,
        )?;
        Ok(Signed {
            url: format!("{base}?{}", presigned.query),
            expires_at,
        })
    }
}

/// `host` without its `:port`, if it has one (`[::1]:9023` → `[::1]`).
fn without_port(host: &str) -> Option<&str> {
    let (h, port) = host.rsplit_once(':')?;
    (!port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && (!h.contains(':') || h.ends_with(']')))
    .then_some(h)
}

/// Azure's overrides (`rscc`…`rsct`, decoded) from S3-style `response-*` parameters.
fn azure_overrides(params: &[&str]) -> [Option<String>; 5] {
    const S3: [&str; 5] = [
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
    ];
    let mut out: [Option<String>; 5] = Default::default();
    for p in params {
        let (name, value) = p.split_once('=').unwrap_or((p, ""));
        if let Some(i) = S3.iter().position(|n| *n == name) {
            out[i] = Some(String::from_utf8_lossy(&percent_decode(value)).into_owned());
        }
    }
    out
}

impl S3 {
    /// Presigns with honest expiry; `base` is the URL without any query.
    fn presign(
        &self,
        mut req: sigv4::Request<'_>,
        creds: &Credentials,
        base: &str,
        lifetime: u64,
    ) -> Result<Signed, Error> {
        let cap = req.signed_at.saturating_add(sigv4::MAX_EXPIRES);
        let cap = creds.expires_at.map_or(cap, |c| c.min(cap));
        let expires_at = honest_expiry(req.signed_at, lifetime, Some(cap))?;
        req.expires_in = expires_at - req.signed_at;
        let presigned = sigv4::presign(&req, creds);
        Ok(Signed {
            url: format!("{base}?{}", presigned.query),
            expires_at,
        })
    }
}

/// Encodes a plain object key (as a user types it) for use in a path.
pub fn raw_key_of(key: &str) -> String {
    encode_key(key)
}
