//! Session tokens: the gateway's version of the Channels session settings. A token names a
//! subscriber, the sources it receives and the permissions its session is offered. The
//! secret is shown once at creation; the store keeps only its SHA-256 (the secret is 256
//! random bits, so a fast hash is enough: there is nothing to guess).

use std::fmt;

use base64::Engine;
use sha2::{Digest, Sha256};

use super::StoreError;

/// Every token starts with this, so a leaked one is recognisable (and greppable).
pub const PREFIX: &str = "hwt_";

/// Signs in to the delivery console ([`crate::console`]) and sees the token's own sources.
pub const CONSOLE: &str = "console";
/// Signs in to the console and sees every source, and manages tokens there.
pub const ADMIN: &str = "admin";

/// Every permission a token may grant (`hookwire token create --permissions`): the tools'
/// ([`crate::config::tools::PERMISSIONS`]), then the console's.
pub const PERMISSIONS: &[&str] = &{
    const TOOLS: &[&str] = crate::config::tools::PERMISSIONS;
    let mut all = [""; TOOLS.len() + 2];
    let mut i = 0;
    while i < TOOLS.len() {
        all[i] = TOOLS[i];
        i += 1;
    }
    all[TOOLS.len()] = CONSOLE;
    all[TOOLS.len() + 1] = ADMIN;
    all
};

/// What `hookwire token create` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// Unique name: the subscriber's name, in logs and `token list`.
    pub name: String,
    /// Sources its sessions receive.
    pub sources: Vec<String>,
    /// Permissions its sessions are offered.
    pub permissions: Vec<String>,
    /// Unix milliseconds after which it is refused.
    pub expires_ms: Option<i64>,
}

/// A stored token (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Unique name.
    pub name: String,
    /// Sources its sessions receive.
    pub sources: Vec<String>,
    /// Permissions its sessions are offered.
    pub permissions: Vec<String>,
    /// Creation, Unix milliseconds.
    pub created_ms: i64,
    /// Expiry, Unix milliseconds.
    pub expires_ms: Option<i64>,
    /// Revocation, Unix milliseconds.
    pub revoked_ms: Option<i64>,
}

impl Token {
    /// Whether it may be used at `now_ms`.
    pub fn status(&self, now_ms: i64) -> TokenStatus {
        if self.revoked_ms.is_some() {
            TokenStatus::Revoked
        } else if self.expires_ms.is_some_and(|e| e <= now_ms) {
            TokenStatus::Expired
        } else {
            TokenStatus::Valid
        }
    }
}

/// Whether a token may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// Good.
    Valid,
    /// Revoked by `hookwire token revoke`.
    Revoked,
    /// Past its expiry.
    Expired,
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenStatus::Valid => "valid",
            TokenStatus::Revoked => "revoked",
            TokenStatus::Expired => "expired",
        })
    }
}

/// A token's secret as printed once. Debug never shows it.
pub struct TokenSecret(pub String);

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

/// A fresh secret: the prefix and 32 random bytes, base64url.
pub fn generate() -> TokenSecret {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    TokenSecret(format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// What the store keeps of a secret.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.trim().as_bytes()).to_vec()
}

/// Token administration and lookup.
pub trait TokenStore: Send + Sync {
    /// Creates a token and returns its secret (the only time it exists outside the caller).
    /// Its subscriber starts at the current head: it receives events from now on.
    fn create(&self, new: &NewToken, now_ms: i64) -> Result<TokenSecret, StoreError>;
    /// Every token, newest first.
    fn list(&self) -> Result<Vec<Token>, StoreError>;
    /// Revokes a token by name; `false` when there is none.
    fn revoke(&self, name: &str, now_ms: i64) -> Result<bool, StoreError>;
    /// The token a presented secret belongs to, if any.
    fn find(&self, secret: &str) -> Result<Option<Token>, StoreError>;
    /// A token by name.
    fn get(&self, name: &str) -> Result<Option<Token>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_prefixed_and_redacted() {
        let a = generate();
        let b = generate();
        assert!(a.0.starts_with(PREFIX) && a.0.len() == PREFIX.len() + 43);
        assert_ne!(a.0, b.0);
        assert_eq!(format!("{a:?}"), "TokenSecret(<redacted>)");
        assert_eq!(
            hash(&a.0),
            hash(&format!(" {}\n", a.0)),
            "whitespace from a file is ignored"
        );
    }

    #[test]
    fn token_permissions_are_the_tools_then_the_consoles() {
        let tools = crate::config::tools::PERMISSIONS;
        assert_eq!(&PERMISSIONS[..tools.len()], tools);
        assert_eq!(&PERMISSIONS[tools.len()..], [CONSOLE, ADMIN]);
    }

    #[test]
    fn status_orders_revocation_before_expiry() {
        let mut t = Token {
            name: "n".into(),
            sources: vec![],
            permissions: vec![],
            created_ms: 0,
            expires_ms: Some(100),
            revoked_ms: None,
        };
        assert_eq!(t.status(99), TokenStatus::Valid);
        assert_eq!(t.status(100), TokenStatus::Expired);
        t.revoked_ms = Some(5);
        assert_eq!(t.status(0), TokenStatus::Revoked);
    }
}
