//! Secrets: where they come from (an environment variable or a file, never the config text),
//! and a type that never prints them.

use std::fmt;
use std::path::{Path, PathBuf};

/// Secret bytes. `Debug` is redacted and there is no `Display`, so a secret cannot reach a
/// log line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<[u8]>);

impl Secret {
    /// Wraps raw secret bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into().into_boxed_slice())
    }

    /// The secret material, for the one place that needs it (a MAC key, a token compare).
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The active secrets of one source. More than one is allowed so a secret can be rotated
/// without a gap: any of them verifies.
#[derive(Clone, Debug, Default)]
pub struct SecretSet(Vec<Secret>);

impl SecretSet {
    /// A set from already loaded secrets.
    pub fn new(secrets: Vec<Secret>) -> Self {
        SecretSet(secrets)
    }

    /// The secrets, in configuration order (index 0 first).
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter()
    }

    /// True when no secret is configured; verification then fails closed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where a secret is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretRef {
    /// An environment variable, read at start-up.
    Env(String),
    /// A file (for example a mounted Kubernetes Secret); one trailing newline is dropped.
    File(PathBuf),
}

/// Why a secret could not be loaded. Names the variable or file, never the content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The environment variable is unset.
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    /// The environment variable or file is empty: a blank secret would accept forgeries.
    #[error("{0} is empty")]
    Empty(String),
    /// The file could not be read.
    #[error("cannot read secret file {path}: {reason}")]
    File {
        /// The file's path.
        path: String,
        /// The OS error.
        reason: String,
    },
}

impl SecretRef {
    /// Reads the secret. `base` resolves relative file paths (the config file's folder).
    pub fn load(&self, base: &Path) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(name) => match std::env::var_os(name) {
                None => Err(SecretError::EnvMissing(name.clone())),
                Some(v) if v.is_empty() => Err(SecretError::Empty(format!("environment variable {name}"))),
                Some(v) => Ok(Secret::new(v.into_encoded_bytes())),
            },
            SecretRef::File(path) => {
                let full = base.join(path);
                let mut bytes = std::fs::read(&full).map_err(|e| SecretError::File {
                    path: full.display().to_string(),
                    reason: e.kind().to_string(),
                })?;
                if bytes.ends_with(b"\n") {
                    bytes.pop();
                    if bytes.ends_with(b"\r") {
                        bytes.pop();
                    }
                }
                if bytes.is_empty() {
                    return Err(SecretError::Empty(format!("secret file {}", full.display())));
                }
                Ok(Secret::new(bytes))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new(b"hunter2".to_vec());
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        let set = SecretSet::new(vec![s]);
        assert!(!format!("{set:?}").contains("hunter2"));
    }

    #[test]
    fn file_secret_drops_one_trailing_newline_and_empty_fails() {
        let dir = std::env::temp_dir().join(format!("hookwire-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("s"), "abc\n").unwrap();
        std::fs::write(dir.join("e"), "\n").unwrap();
        let got = SecretRef::File("s".into()).load(&dir).unwrap();
        assert_eq!(got.expose(), b"abc");
        assert!(matches!(
            SecretRef::File("e".into()).load(&dir),
            Err(SecretError::Empty(_))
        ));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn missing_env_names_the_variable() {
        let err = SecretRef::Env("HOOKWIRE_TEST_SURELY_UNSET".into())
            .load(Path::new("."))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable HOOKWIRE_TEST_SURELY_UNSET is not set"
        );
    }
}
