//! ECDSA P-256 with SHA-256, for the signature scheme ([`super::signature`]) of vendors that
//! sign with a key pair and publish the public key (SendGrid's event webhook). The configured
//! secret is the sender's public key: SubjectPublicKeyInfo DER (how SendGrid shows it, base64)
//! or a SEC1 point. A signature is DER (as SendGrid sends it) or the fixed 64-byte `r || s`.
//!
//! ECDSA signatures are randomised and malleable (`s` and `n - s` both verify), so a request's
//! fingerprint is taken from the signed bytes, never from the signature.

use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;

use super::Key;

/// The longest DER encoding of a P-256 signature (two 33-byte integers and their headers).
const MAX_DER: usize = 72;

/// A P-256 public key from SubjectPublicKeyInfo DER or a SEC1 point (33 or 65 bytes).
pub(super) fn key(bytes: &[u8]) -> Result<Key, String> {
    VerifyingKey::from_public_key_der(bytes)
        .or_else(|_| VerifyingKey::from_sec1_bytes(bytes))
        .map(Key::EcdsaP256)
        .map_err(|_| {
            "not a P-256 public key (give the SubjectPublicKeyInfo DER, base64, as the vendor shows it)"
                .to_owned()
        })
}

/// Whether `len` bytes can be a signature at all: DER, or `r || s`.
pub(super) fn plausible_len(len: usize) -> bool {
    (8..=MAX_DER).contains(&len)
}

/// Verifies `sig` (DER, else `r || s`) over `message` with SHA-256.
pub(super) fn verify(public: &VerifyingKey, message: &[u8], sig: &[u8]) -> bool {
    let parsed = Signature::from_der(sig).or_else(|_| Signature::from_slice(sig));
    parsed.is_ok_and(|s| public.verify(message, &s).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// SendGrid's own test vector (sendgrid-python `test/unit/test_eventwebhook.py`).
    const PUBLIC_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
    const SIGNATURE: &str =
        "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=";
    const SIGNED: &str = "1600112502[{\"email\":\"hello@world.com\",\"event\":\"dropped\",\"reason\":\"Bounced Address\",\"sg_event_id\":\"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA\",\"sg_message_id\":\"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0\",\"smtp-id\":\"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>\",\"timestamp\":1600112492}]\r\n";

    fn b64(s: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }

    #[test]
    fn sendgrid_vector_verifies_and_any_change_does_not() {
        let Key::EcdsaP256(k) = key(&b64(PUBLIC_KEY)).unwrap() else {
            panic!("not a P-256 key")
        };
        let sig = b64(SIGNATURE);
        assert!(plausible_len(sig.len()));
        assert!(verify(&k, SIGNED.as_bytes(), &sig));
        assert!(!verify(&k, SIGNED.trim_end().as_bytes(), &sig));
        assert!(!verify(
            &k,
            SIGNED.replace("1600112502", "1600112503").as_bytes(),
            &sig
        ));
        let mut flipped = sig.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(!verify(&k, SIGNED.as_bytes(), &flipped));
        // SendGrid's "bad key" from the same test file.
        let Key::EcdsaP256(other) = key(&b64("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==")).unwrap() else {
            panic!("not a P-256 key")
        };
        assert!(!verify(&other, SIGNED.as_bytes(), &sig));
    }

    #[test]
    fn both_s_and_n_minus_s_verify() {
        // Only secp256k1 conventions insist on a low `s`; SendGrid's senders may emit either.
        let Key::EcdsaP256(k) = key(&b64(PUBLIC_KEY)).unwrap() else {
            panic!("not a P-256 key")
        };
        let parsed = Signature::from_der(&b64(SIGNATURE)).unwrap();
        let (r, s) = parsed.split_scalars();
        let mirrored = Signature::from_scalars((*r).to_bytes(), (-*s).to_bytes()).unwrap();
        assert_ne!(mirrored, parsed);
        assert!(verify(&k, SIGNED.as_bytes(), mirrored.to_der().as_bytes()));
        assert!(verify(&k, SIGNED.as_bytes(), &mirrored.to_bytes()));
    }

    #[test]
    fn a_key_that_is_not_p256_is_refused() {
        assert!(key(b"not a key").is_err());
        assert!(key(&[4u8; 65]).is_err());
    }
}
