//! RSA PKCS#1 v1.5 signatures, for the schemes whose keys the vendor holds: AWS SNS (SHA-1 for
//! SignatureVersion 1, SHA-256 for 2, the key in an X.509 certificate) and JWTs signed RS256
//! with keys from a JWKS. ring verifies (keys of 2048 to 8192 bits only); rustls-webpki
//! parses the certificate. Neither is a new dependency: both are rustls's own.

use ring::signature::{self as ring_sig, RsaParameters};
use rustls_pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm,
};

/// The hash an RSA signature is made over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    /// SHA-1: SNS SignatureVersion 1 only.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl Hash {
    fn params(self) -> &'static RsaParameters {
        match self {
            Hash::Sha1 => &ring_sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &ring_sig::RSA_PKCS1_2048_8192_SHA256,
        }
    }
}

/// An RSA public key taken from a certificate (its SubjectPublicKeyInfo).
#[derive(Clone)]
pub struct CertKey {
    der: CertificateDer<'static>,
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CertKey(<certificate>)")
    }
}

/// rustls-webpki's hook for a signature algorithm: PKCS#1 v1.5 over `Hash` with an
/// `rsaEncryption` key.
struct Pkcs1(Hash);

impl std::fmt::Debug for Pkcs1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pkcs1({:?})", self.0)
    }
}

impl SignatureVerificationAlgorithm for Pkcs1 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        ring_sig::UnparsedPublicKey::new(self.0.params(), public_key)
            .verify(message, signature)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        rustls_pki_types::alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        // Never consulted for an end-entity key; the closest name for either hash.
        rustls_pki_types::alg_id::RSA_PKCS1_SHA256
    }
}

impl CertKey {
    /// The certificate in `pem` (the first one), when it parses as X.509.
    pub fn from_pem(pem: &[u8]) -> Result<CertKey, String> {
        use rustls_pki_types::pem::PemObject as _;
        let der = CertificateDer::from_pem_slice(pem).map_err(|_| "not a PEM certificate".to_owned())?;
        webpki::EndEntityCert::try_from(&der).map_err(|e| format!("not an X.509 certificate: {e}"))?;
        Ok(CertKey { der })
    }

    /// Whether `signature` is the certificate key's PKCS#1 v1.5 signature of `message`.
    pub fn verifies(&self, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
        webpki::EndEntityCert::try_from(&self.der)
            .is_ok_and(|cert| cert.verify_signature(&Pkcs1(hash), message, signature).is_ok())
    }
}

/// An RSA public key from its modulus and exponent (big-endian, as a JWK's `n` and `e`).
#[derive(Clone, PartialEq, Eq)]
pub struct Components {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl std::fmt::Debug for Components {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Components({} bit modulus)", self.n.len() * 8)
    }
}

impl Components {
    /// A key from its modulus and exponent.
    pub fn new(n: Vec<u8>, e: Vec<u8>) -> Self {
        Components { n, e }
    }

    /// Whether `signature` is this key's PKCS#1 v1.5 signature of `message`.
    pub fn verifies(&self, hash: Hash, message: &[u8], signature: &[u8]) -> bool {
        ring_sig::RsaPublicKeyComponents {
            n: &self.n[..],
            e: &self.e[..],
        }
        .verify(hash.params(), message, signature)
        .is_ok()
    }
}
