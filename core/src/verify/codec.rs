//! Byte-level pieces every scheme shares: the MAC digests, the signature encodings, and a
//! constant-time compare on decoded bytes.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use subtle::ConstantTimeEq;

/// The hash inside an HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Digest {
    /// HMAC-SHA1 (Twilio, Vercel, Intercom, GitHub legacy): still sound inside HMAC.
    Sha1,
    /// HMAC-SHA256, what most vendors use.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Digest {
    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Digest::Sha1 => 20,
            Digest::Sha256 => 32,
            Digest::Sha512 => 64,
        }
    }

    /// The name used in config and `verify explain`.
    pub fn name(self) -> &'static str {
        match self {
            Digest::Sha1 => "sha1",
            Digest::Sha256 => "sha256",
            Digest::Sha512 => "sha512",
        }
    }
}

/// An HMAC keyed once at start-up and cloned per request, so a request never re-hashes the key.
#[derive(Clone)]
pub enum KeyedMac {
    /// HMAC-SHA1.
    Sha1(Hmac<sha1::Sha1>),
    /// HMAC-SHA256.
    Sha256(Hmac<sha2::Sha256>),
    /// HMAC-SHA512.
    Sha512(Hmac<sha2::Sha512>),
}

impl KeyedMac {
    /// Keys an HMAC; any key length is valid.
    pub fn new(digest: Digest, key: &[u8]) -> Self {
        const ANY: &str = "HMAC takes any key length";
        match digest {
            Digest::Sha1 => KeyedMac::Sha1(Hmac::new_from_slice(key).expect(ANY)),
            Digest::Sha256 => KeyedMac::Sha256(Hmac::new_from_slice(key).expect(ANY)),
            Digest::Sha512 => KeyedMac::Sha512(Hmac::new_from_slice(key).expect(ANY)),
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            KeyedMac::Sha1(m) => m.update(bytes),
            KeyedMac::Sha256(m) => m.update(bytes),
            KeyedMac::Sha512(m) => m.update(bytes),
        }
    }

    /// The tag.
    pub fn finish(self) -> Tag {
        let mut tag = Tag {
            bytes: [0; 64],
            len: 0,
        };
        let mut put = |out: &[u8]| {
            tag.bytes[..out.len()].copy_from_slice(out);
            tag.len = out.len();
        };
        match self {
            KeyedMac::Sha1(m) => put(&m.finalize().into_bytes()),
            KeyedMac::Sha256(m) => put(&m.finalize().into_bytes()),
            KeyedMac::Sha512(m) => put(&m.finalize().into_bytes()),
        }
        tag
    }
}

impl std::fmt::Debug for KeyedMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedMac(<redacted>)")
    }
}

/// A computed MAC, up to 64 bytes, without a heap allocation.
#[derive(Clone, Copy)]
pub struct Tag {
    bytes: [u8; 64],
    len: usize,
}

impl Tag {
    /// The MAC bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Constant-time equality with a presented signature. Lengths are public (they follow
    /// from the digest), so a length mismatch returns early.
    pub fn matches(&self, given: &[u8]) -> bool {
        given.len() == self.len && bool::from(self.as_bytes().ct_eq(given))
    }
}

/// How a signature is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Hex, either case.
    Hex,
    /// Standard base64, padding optional.
    Base64,
    /// URL-safe base64 without padding (JWS).
    Base64url,
}

impl Encoding {
    /// Decodes a presented signature; `None` when it is not valid in this encoding.
    pub fn decode(self, text: &[u8]) -> Option<Vec<u8>> {
        match self {
            Encoding::Hex => hex::decode(text).ok(),
            Encoding::Base64 => base64_lenient(text),
            Encoding::Base64url => base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text.strip_suffix(b"=").unwrap_or(text))
                .ok(),
        }
    }

    /// Encodes a computed signature (lowercase hex, padded base64).
    pub fn encode(self, bytes: &[u8]) -> String {
        match self {
            Encoding::Hex => hex::encode(bytes),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD.encode(bytes),
            Encoding::Base64url => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
        }
    }

    /// The name used in config and `verify explain`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
            Encoding::Base64url => "base64url",
        }
    }
}

/// Standard base64 with or without padding (the Standard Webhooks libraries accept both).
pub fn base64_lenient(text: &[u8]) -> Option<Vec<u8>> {
    let trimmed = text
        .strip_suffix(b"==")
        .or_else(|| text.strip_suffix(b"="))
        .unwrap_or(text);
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(trimmed)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_known_answers() {
        // RFC 4231 test case 2 and RFC 2202 test case 2.
        let msg = b"what do ya want for nothing?";
        let run = |d| {
            let mut m = KeyedMac::new(d, b"Jefe");
            m.update(msg);
            hex::encode(m.finish().as_bytes())
        };
        assert_eq!(run(Digest::Sha1), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
        assert_eq!(
            run(Digest::Sha256),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(run(Digest::Sha512).len(), 128);
    }

    #[test]
    fn decoding_is_strict_about_alphabet_and_lenient_about_padding() {
        assert_eq!(Encoding::Base64.decode(b"YWI="), Some(b"ab".to_vec()));
        assert_eq!(Encoding::Base64.decode(b"YWI"), Some(b"ab".to_vec()));
        assert_eq!(Encoding::Base64.decode(b"YW!="), None);
        assert_eq!(Encoding::Hex.decode(b"0A0b"), Some(vec![10, 11]));
        assert_eq!(Encoding::Hex.decode(b"0g"), None);
        assert_eq!(Encoding::Base64url.decode(b"_-8"), Some(vec![0xff, 0xef]));
    }
}
