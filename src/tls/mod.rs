//! Shell leaf: the rustls configurations — the listener's (certificate and key from
//! `server.tls_*`, ALPN `h2` then `http/1.1`) and the origin client's (the webpki roots plus
//! any extra CA). Both are built before a port is bound and fail there, naming the key.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::Tls;

mod rsa;

/// Reads the certificate chain and key and builds the rustls server config, ALPN `h2` then
/// `http/1.1`. Errors name the config key.
pub fn server_config(tls: &Tls) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("server.tls_cert: cannot read {:?} ({e})", tls.cert))?;
    if certs.is_empty() {
        return Err(format!(
            "server.tls_cert: {:?} holds no certificate",
            tls.cert
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| {
        format!(
            "server.tls_key: cannot read a private key from {:?} ({e})",
            tls.key
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let unusable = |e: rustls::Error| {
        format!("server.tls_key: does not match server.tls_cert or is unusable ({e})")
    };
    // An RSA key signs with aws-lc (rsa.rs says why); any other key with ring. Either way the
    // key must match the certificate's public key.
    let certified = match rsa::RsaKey::from_der(&key) {
        Some(rsa) => {
            let certified = rustls::sign::CertifiedKey::new(certs, Arc::new(rsa));
            certified.keys_match().map_err(unusable)?;
            certified
        }
        None => rustls::sign::CertifiedKey::from_der(certs, key, &provider).map_err(unusable)?,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("server.tls_cert: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Stateless session tickets (TLS 1.2 and 1.3): a returning client resumes without a
    // signature, on any connection to this process, however many clients there are. The
    // ticket keys are random, never leave the process, and rotate every 6 hours (the
    // previous key still decrypts for one more period); a reload starts new keys, so a
    // client resumes again only after one full handshake. Clients without tickets resume
    // from the session cache below (TLS 1.2 session IDs).
    config.ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|e| format!("server.tls_cert: cannot make session ticket keys ({e})"))?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
    Ok(Arc::new(config))
}

/// TLS 1.2 sessions kept for clients that resume by session ID instead of a ticket (each
/// entry is a few hundred bytes; rustls's default is 256).
const SESSION_CACHE: usize = 4096;

/// The origin client's TLS: the webpki roots (unless `web_roots` is false) and
/// `extra_roots` (`origin_client.ca_file`: the CA certificates of private origins), ring,
/// TLS 1.2 and 1.3. An error here stops start-up (or refuses a
/// reload): a client that trusted no certificate would fail every HTTPS origin later.
pub fn client_config(
    extra_roots: &[CertificateDer<'static>],
    web_roots: bool,
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    if web_roots {
        roots.roots = webpki_roots::TLS_SERVER_ROOTS.to_vec();
    }
    for (i, c) in extra_roots.iter().enumerate() {
        roots
            .add(c.clone())
            .map_err(|e| format!("origin_client.ca_file: certificate {i} is unusable ({e})"))?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("origin_client: no TLS version the crypto provider supports ({e})"))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}
