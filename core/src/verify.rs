//! Verification primitives shared by the adapters. Every function is pure over the raw
//! request bytes and the source's secrets, compares in constant time on decoded bytes, and
//! returns which secret matched (rotation) or a typed error that never carries secret material.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::SecretSet;

/// Why a request failed verification. The vendor only ever sees a uniform 401; the kind is
/// for logs, metrics and `hookwire verify explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The source has no usable secret: fail closed.
    #[error("no secret configured")]
    NoSecret,
    /// The signature or credential header is absent.
    #[error("missing signature or credentials")]
    Missing,
    /// The header is present but not of the expected shape (prefix, encoding, length).
    #[error("malformed signature")]
    Malformed,
    /// Well-formed, but no configured secret produces it.
    #[error("signature does not match")]
    Mismatch,
}

/// Index of the secret (in configuration order) that verified the request.
pub type SecretIndex = usize;

/// Checks `header` = `prefix` + lowercase-or-uppercase hex HMAC-SHA256 of `body`, as GitHub's
/// `X-Hub-Signature-256: sha256=<hex>`. Any secret of the set may match.
pub fn hmac_sha256_hex(
    body: &[u8],
    header: Option<&[u8]>,
    prefix: &[u8],
    secrets: &SecretSet,
) -> Result<SecretIndex, VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    let value = header.ok_or(VerifyError::Missing)?;
    let hex_part = value.strip_prefix(prefix).ok_or(VerifyError::Malformed)?;
    let mut given = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut given).map_err(|_| VerifyError::Malformed)?;
    for (i, secret) in secrets.iter().enumerate() {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose()).expect("HMAC takes any key length");
        mac.update(body);
        if mac.verify_slice(&given).is_ok() {
            return Ok(i);
        }
    }
    Err(VerifyError::Mismatch)
}

/// Compares a presented token with each secret in constant time. Both sides are hashed first
/// so the comparison takes the same time whatever the lengths.
pub fn token(presented: Option<&[u8]>, secrets: &SecretSet) -> Result<SecretIndex, VerifyError> {
    if secrets.is_empty() {
        return Err(VerifyError::NoSecret);
    }
    let presented = presented.ok_or(VerifyError::Missing)?;
    if presented.is_empty() {
        return Err(VerifyError::Missing);
    }
    let given = Sha256::digest(presented);
    let mut found = None;
    for (i, secret) in secrets.iter().enumerate() {
        let want = Sha256::digest(secret.expose());
        if bool::from(want.ct_eq(&given)) && found.is_none() {
            found = Some(i);
        }
    }
    found.ok_or(VerifyError::Mismatch)
}

/// Splits an `Authorization: Basic <base64 user:password>` header. `None` when the header is
/// not Basic auth or does not decode.
pub fn basic_credentials(header: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    use base64::Engine as _;
    let (scheme, rest) = header.split_at(header.iter().position(|b| *b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim_ascii())
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    Some((decoded[..colon].to_vec(), decoded[colon + 1..].to_vec()))
}

/// Hex SHA-256 of `bytes`: the delivery id of a vendor that sends none.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn set(secrets: &[&str]) -> SecretSet {
        SecretSet::new(
            secrets
                .iter()
                .map(|s| Secret::new(s.as_bytes().to_vec()))
                .collect(),
        )
    }

    #[test]
    fn hmac_any_secret_of_the_rotation_set_matches() {
        // GitHub's published example (docs: validating-webhook-deliveries).
        let sig = b"sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let secrets = set(&["old", "It's a Secret to Everybody"]);
        assert_eq!(
            hmac_sha256_hex(b"Hello, World!", Some(sig), b"sha256=", &secrets),
            Ok(1)
        );
        assert_eq!(
            hmac_sha256_hex(b"Hello, World!", Some(sig), b"sha256=", &set(&["old"])),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            hmac_sha256_hex(b"x", Some(sig), b"sha256=", &set(&[])),
            Err(VerifyError::NoSecret)
        );
        assert_eq!(
            hmac_sha256_hex(b"x", None, b"sha256=", &secrets),
            Err(VerifyError::Missing)
        );
        assert_eq!(
            hmac_sha256_hex(b"x", Some(b"sha256=zz"), b"sha256=", &secrets),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn token_compare() {
        let secrets = set(&["a-token", "b-token"]);
        assert_eq!(token(Some(b"b-token"), &secrets), Ok(1));
        assert_eq!(token(Some(b"b-toke"), &secrets), Err(VerifyError::Mismatch));
        assert_eq!(token(Some(b""), &secrets), Err(VerifyError::Missing));
        assert_eq!(token(None, &secrets), Err(VerifyError::Missing));
        assert_eq!(token(Some(b"a-token"), &set(&[])), Err(VerifyError::NoSecret));
    }

    #[test]
    fn basic_auth_parses() {
        // "user:pa:ss" — the password may contain a colon.
        assert_eq!(
            basic_credentials(b"Basic dXNlcjpwYTpzcw=="),
            Some((b"user".to_vec(), b"pa:ss".to_vec()))
        );
        assert_eq!(basic_credentials(b"Bearer abc"), None);
        assert_eq!(basic_credentials(b"Basic !!!"), None);
    }
}
