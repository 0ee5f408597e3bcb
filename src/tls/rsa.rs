//! An RSA server key whose private-key operation is aws-lc's, inside a rustls configuration
//! that is ring's otherwise.
//!
//! Every full handshake with an RSA certificate costs one RSA private-key operation, and that
//! operation is most of the handshake's CPU. aws-lc's RSA-2048 signs about twice as fast as
//! ring's on x86-64 (the same assembly OpenSSL uses), so an RSA leaf gets it; ECDSA and Ed25519
//! leaves, the key exchange, the record layer and the tickets stay on ring. Only the signing
//! key is swapped, not the provider: a second rustls provider in the build would leave rustls
//! without a process default, and every client built without an explicit provider would panic.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, KeyPair, RsaEncoding, RsaKeyPair};
use rustls::pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer, alg_id};
use rustls::sign::{Signer, SigningKey, public_key_to_spki};
use rustls::{SignatureAlgorithm, SignatureScheme};

/// The schemes offered in order of preference: PSS before PKCS#1 v1.5 (TLS 1.3 allows only
/// PSS), the longest hash first, as rustls orders its own.
const SCHEMES: [(SignatureScheme, &dyn RsaEncoding); 6] = [
    (SignatureScheme::RSA_PSS_SHA512, &signature::RSA_PSS_SHA512),
    (SignatureScheme::RSA_PSS_SHA384, &signature::RSA_PSS_SHA384),
    (SignatureScheme::RSA_PSS_SHA256, &signature::RSA_PSS_SHA256),
    (
        SignatureScheme::RSA_PKCS1_SHA512,
        &signature::RSA_PKCS1_SHA512,
    ),
    (
        SignatureScheme::RSA_PKCS1_SHA384,
        &signature::RSA_PKCS1_SHA384,
    ),
    (
        SignatureScheme::RSA_PKCS1_SHA256,
        &signature::RSA_PKCS1_SHA256,
    ),
];

/// An RSA private key (PKCS#1 or PKCS#8) signing with aws-lc.
pub(super) struct RsaKey {
    pair: Arc<RsaKeyPair>,
    spki: SubjectPublicKeyInfoDer<'static>,
}

impl RsaKey {
    /// The key if `der` is an RSA key aws-lc accepts; `None` for any other kind of key (an
    /// EC or Ed25519 key goes to ring). aws-lc refuses RSA keys under 2048 bits.
    pub(super) fn from_der(der: &PrivateKeyDer<'_>) -> Option<Self> {
        let pair = match der {
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()).ok()?,
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()).ok()?,
            _ => return None,
        };
        let spki = public_key_to_spki(&alg_id::RSA_ENCRYPTION, pair.public_key());
        Some(Self {
            pair: Arc::new(pair),
            spki,
        })
    }
}

// No key material in a Debug print, ever.
impl fmt::Debug for RsaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaKey")
            .field("bits", &(self.pair.public_modulus_len() * 8))
            .finish_non_exhaustive()
    }
}

impl SigningKey for RsaKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let (scheme, encoding) = SCHEMES.iter().find(|(s, _)| offered.contains(s))?;
        Some(Box::new(RsaSigner {
            pair: Arc::clone(&self.pair),
            scheme: *scheme,
            encoding: *encoding,
        }))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(self.spki.clone())
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::RSA
    }
}

struct RsaSigner {
    pair: Arc<RsaKeyPair>,
    scheme: SignatureScheme,
    encoding: &'static dyn RsaEncoding,
}

impl fmt::Debug for RsaSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaSigner")
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

impl Signer for RsaSigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let mut out = vec![0; self.pair.public_modulus_len()];
        self.pair
            .sign(self.encoding, &SystemRandom::new(), message, &mut out)
            .map_err(|_| rustls::Error::General("RSA signing failed".into()))?;
        Ok(out)
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}

#[cfg(test)]
mod tests {
    use rsa::pkcs8::DecodePublicKey;
    use rsa::signature::Verifier;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    use rustls::sign::CertifiedKey;

    use super::*;

    const DIR: &str = env!("CARGO_MANIFEST_DIR");

    /// A throwaway P-256 key, made for this test only.
    const EC_KEY: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSPgaX7SsI8n2fbx0
kqdQQhRzNa46zWhSB14vKSotynShRANCAAQlYBFbfXo4F5Jbw+CIu7rUtS/PlVFN
ZVfkOYOODYtJTZRJ14ggL1EMuH60IABiLEpZWqQIVZKzOq+ibdYinp1/
-----END PRIVATE KEY-----
";

    fn dev_key() -> RsaKey {
        let der = PrivateKeyDer::from_pem_file(format!("{DIR}/certs/dev.key")).expect("dev key");
        RsaKey::from_der(&der).expect("certs/dev.key is RSA")
    }

    #[test]
    fn the_key_matches_its_certificate() {
        let certs = CertificateDer::pem_file_iter(format!("{DIR}/certs/dev.crt"))
            .expect("dev cert")
            .collect::<Result<Vec<_>, _>>()
            .expect("dev cert");
        let key = CertifiedKey::new(certs, Arc::new(dev_key()));
        assert!(key.keys_match().is_ok());
        // And a different certificate does not match it.
        let other = CertificateDer::pem_file_iter(format!("{DIR}/certs/ca.crt"))
            .expect("ca cert")
            .collect::<Result<Vec<_>, _>>()
            .expect("ca cert");
        assert!(
            CertifiedKey::new(other, Arc::new(dev_key()))
                .keys_match()
                .is_err()
        );
    }

    /// Each scheme's signature verifies under the public key with the RustCrypto `rsa` crate,
    /// an implementation independent of aws-lc.
    #[test]
    fn every_scheme_signs_what_an_independent_verifier_accepts() {
        let key = dev_key();
        let public = rsa::RsaPublicKey::from_public_key_der(key.spki.as_ref()).expect("spki");
        let message = b"a TLS 1.3 CertificateVerify's content";
        for (scheme, _) in SCHEMES {
            let signer = key.choose_scheme(&[scheme]).expect("scheme offered alone");
            assert_eq!(signer.scheme(), scheme);
            let sig = signer.sign(message).expect("sign");
            let ok = match scheme {
                SignatureScheme::RSA_PSS_SHA512 => pss::<sha2::Sha512>(&public, message, &sig),
                SignatureScheme::RSA_PSS_SHA384 => pss::<sha2::Sha384>(&public, message, &sig),
                SignatureScheme::RSA_PSS_SHA256 => pss::<sha2::Sha256>(&public, message, &sig),
                SignatureScheme::RSA_PKCS1_SHA512 => pkcs1::<sha2::Sha512>(&public, message, &sig),
                SignatureScheme::RSA_PKCS1_SHA384 => pkcs1::<sha2::Sha384>(&public, message, &sig),
                _ => pkcs1::<sha2::Sha256>(&public, message, &sig),
            };
            assert!(ok, "{scheme:?} does not verify");
            assert!(!pss::<sha2::Sha256>(&public, b"another message", &sig));
        }
    }

    fn pss<D>(key: &rsa::RsaPublicKey, msg: &[u8], sig: &[u8]) -> bool
    where
        D: sha2::Digest + rsa::sha2::digest::FixedOutputReset,
    {
        let Ok(sig) = rsa::pss::Signature::try_from(sig) else {
            return false;
        };
        rsa::pss::VerifyingKey::<D>::new(key.clone())
            .verify(msg, &sig)
            .is_ok()
    }

    fn pkcs1<D>(key: &rsa::RsaPublicKey, msg: &[u8], sig: &[u8]) -> bool
    where
        D: sha2::Digest + rsa::pkcs8::AssociatedOid,
    {
        let Ok(sig) = rsa::pkcs1v15::Signature::try_from(sig) else {
            return false;
        };
        rsa::pkcs1v15::VerifyingKey::<D>::new(key.clone())
            .verify(msg, &sig)
            .is_ok()
    }

    #[test]
    fn pss_comes_first_and_non_rsa_offers_get_nothing() {
        let key = dev_key();
        let all: Vec<_> = SCHEMES.iter().rev().map(|(s, _)| *s).collect();
        let signer = key.choose_scheme(&all).expect("a scheme");
        assert_eq!(signer.scheme(), SignatureScheme::RSA_PSS_SHA512);
        let tls12 = [
            SignatureScheme::RSA_PKCS1_SHA256,
            SignatureScheme::ECDSA_NISTP256_SHA256,
        ];
        assert_eq!(
            key.choose_scheme(&tls12).expect("pkcs1").scheme(),
            SignatureScheme::RSA_PKCS1_SHA256
        );
        assert!(
            key.choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
                .is_none()
        );
        assert!(!format!("{key:?}").contains("BEGIN"));
    }

    #[test]
    fn an_ec_key_is_left_to_ring() {
        let der = PrivateKeyDer::from_pem_slice(EC_KEY.as_bytes()).expect("ec key");
        assert!(RsaKey::from_der(&der).is_none());
    }
}
