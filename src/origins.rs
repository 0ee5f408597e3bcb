//! Pure policy: the configured origins as the proxy sees them — each one's signer plus
//! which keys are public — and the one way to find an origin, by name or by one of its URLs.

use crate::auth::{keypath, policy};
use crate::sign::signer::OriginSigner;
use crate::sign::url::RawUrl;

/// One origin: the signer plus proxy-side settings.
#[derive(Debug)]
pub struct Origin {
    /// Layout, keys and signing operations.
    pub signer: OriginSigner,
    /// Key prefixes anyone may read without a signature.
    pub public_prefixes: Vec<String>,
    /// Where an S3 origin's signing credentials come from when the AWS SDK's resolver
    /// provides them (`source`), instead of keys in the config.
    pub credentials: Option<CredentialSource>,
}

/// `[[origins.keys]] source`: the AWS SDK's credential resolver, and a role on top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSource {
    /// `None`: the SDK's default chain (environment, profile, web identity, ECS container,
    /// IMDSv2). `Some(name)`: that profile of `~/.aws/config` and `~/.aws/credentials`.
    pub profile: Option<String>,
    /// A role assumed (STS `AssumeRole`) with those credentials.
    pub assume_role: Option<String>,
}

impl Origin {
    /// Whether `raw_key` lies under one of this origin's public prefixes in every form an
    /// origin or a front might read it (so `public/../private/x` is not public). A key that
    /// cannot be judged (it climbs above its root) is never public.
    pub fn is_public(&self, raw_key: &str) -> bool {
        !self.public_prefixes.is_empty()
            && keypath::judge(raw_key)
                .is_ok_and(|key| policy::under_any(&self.public_prefixes, &key))
    }
}

/// The boundary between the signing core and the service: the core's error becomes the
/// service's, whose statuses and codes the core knows nothing of.
impl From<crate::sign::Error> for crate::Error {
    fn from(e: crate::sign::Error) -> Self {
        match e {
            crate::sign::Error::BadRequest(m) => crate::Error::BadRequest(m),
            crate::sign::Error::InvalidSignature(m) => crate::Error::InvalidSignature(m),
            crate::sign::Error::Internal(m) => crate::Error::Internal(m),
        }
    }
}

/// The origin named `name`, with its index.
pub fn by_name<'o>(origins: &'o [Origin], name: &str) -> Option<(usize, &'o Origin)> {
    origins
        .iter()
        .enumerate()
        .find(|(_, o)| o.signer.name == name)
}

/// The origin `url` belongs to (same scheme, host, effective port and path prefix), with its
/// index and the raw key the URL names.
pub fn by_url<'o, 'u>(
    origins: &'o [Origin],
    url: &RawUrl<'u>,
) -> Option<(usize, &'o Origin, &'u str)> {
    origins
        .iter()
        .enumerate()
        .find_map(|(i, o)| Some((i, o, o.signer.key_of(url)?)))
}
