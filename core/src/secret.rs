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

/// The shortest secret a source accepts unless its adapter declares otherwise
/// ([`crate::adapter::Adapter::min_secret_bytes`]): 128 bits, what `openssl rand -hex 8`
/// gives at the very least; `openssl rand -hex 32` is the recommended way to make one.
pub const MIN_SECRET_BYTES: usize = 16;

/// Why a secret could not be loaded or cannot be used. Names the variable or file, never the
/// content.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The environment variable is unset.
    #[error("environment variable {0} is not set")]
    EnvMissing(String),
    /// The environment variable or file is empty (or only white space): a blank secret would
    /// accept forgeries.
    #[error("{0} is empty")]
    Empty(String),
    /// The value is still a variable reference (`${NAME}`, `$NAME`, `%NAME%`): what Claude
    /// Code passes from `.mcp.json`'s `env` when the variable is not exported. Anyone who
    /// reads the config could sign with it.
    #[error("{0} holds an unexpanded variable reference (${{NAME}}, $NAME or %NAME%) instead of a secret")]
    Unexpanded(String),
    /// Shorter than the source type accepts.
    #[error("{what} is shorter than {min} bytes")]
    TooShort {
        /// The variable or file.
        what: String,
        /// The least the source type accepts.
        min: usize,
    },
    /// The file could not be read.
    #[error("cannot read secret file {path}: {reason}")]
    File {
        /// The file's path.
        path: String,
        /// The OS error.
        reason: String,
    },
}

impl SecretError {
    /// What to do about it. `file_key` names the config key that reads the secret from a
    /// file instead (`secret_file`, `token_file`, or `--token-file`).
    pub fn hint(&self, file_key: &str) -> String {
        match self {
            SecretError::EnvMissing(name) => export_hint(name, file_key),
            SecretError::Empty(what) | SecretError::Unexpanded(what) => {
                match what.strip_prefix("environment variable ") {
                    Some(name) => export_hint(name, file_key),
                    None => "write the secret itself in the file (one line)".into(),
                }
            }
            SecretError::TooShort { .. } => {
                "generate one with `openssl rand -hex 32` and give the same value to the vendor and to hookwire".into()
            }
            SecretError::File { .. } => {
                "check the path (a relative one is beside the config file) and that hookwire may read it".into()
            }
        }
    }
}

fn export_hint(name: &str, file_key: &str) -> String {
    format!(
        "export {name} in the shell that starts claude (or hookwire): the channel inherits \
         Claude Code's environment, so .mcp.json needs no env entry for it (an entry whose \
         variable is not exported passes its literal ${{...}} text); or read it from a file \
         with {file_key}"
    )
}

/// Refuses a secret that is empty, only white space, or still an unexpanded variable
/// reference. `what` names where it came from ("environment variable X", "secret file P"),
/// for the error. The one rule for every secret hookwire reads: sources, `tools:`
/// credentials and the gateway session token.
pub fn check(value: &[u8], what: &str) -> Result<(), SecretError> {
    let v = value.trim_ascii();
    if v.is_empty() {
        return Err(SecretError::Empty(what.to_owned()));
    }
    if is_reference(v) {
        return Err(SecretError::Unexpanded(what.to_owned()));
    }
    Ok(())
}

/// Refuses a secret of `len` bytes when the source type needs at least `min`.
pub fn check_length(len: usize, min: usize, what: &str) -> Result<(), SecretError> {
    if len < min {
        return Err(SecretError::TooShort {
            what: what.to_owned(),
            min,
        });
    }
    Ok(())
}

/// `${NAME}` (with any `${NAME:-default}`-style tail, as shells and Claude Code write them),
/// `$NAME` or `%NAME%`, the whole value. A real secret of that shape would be a variable
/// name, which is no secret either.
fn is_reference(v: &[u8]) -> bool {
    fn name(n: &[u8]) -> bool {
        !n.is_empty() && !n[0].is_ascii_digit() && n.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    }
    if let Some(inner) = v.strip_prefix(b"${").and_then(|r| r.strip_suffix(b"}")) {
        let end = inner
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
            .unwrap_or(inner.len());
        return name(&inner[..end]);
    }
    if let Some(rest) = v.strip_prefix(b"$") {
        return name(rest);
    }
    if let Some(inner) = v.strip_prefix(b"%").and_then(|r| r.strip_suffix(b"%")) {
        return name(inner);
    }
    false
}

impl SecretRef {
    /// Reads the secret. `base` resolves relative file paths (the config file's folder).
    pub fn load(&self, base: &Path) -> Result<Secret, SecretError> {
        match self {
            SecretRef::Env(name) => match std::env::var_os(name) {
                None => Err(SecretError::EnvMissing(name.clone())),
                Some(v) => {
                    let bytes = v.into_encoded_bytes();
                    check(&bytes, &self.describe(base))?;
                    Ok(Secret::new(bytes))
                }
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
                check(&bytes, &self.describe(base))?;
                Ok(Secret::new(bytes))
            }
        }
    }

    /// "environment variable NAME" or "secret file PATH", for errors.
    pub fn describe(&self, base: &Path) -> String {
        match self {
            SecretRef::Env(name) => format!("environment variable {name}"),
            SecretRef::File(path) => format!("secret file {}", base.join(path).display()),
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
    fn references_and_blanks_are_refused_and_real_secrets_pass() {
        for v in [
            "${X}",
            "${GITHUB_WEBHOOK_SECRET}",
            "${X:-}",
            "${X:-default}",
            "$X",
            "$_A1",
            "%X%",
            " ${X} ",
            "",
            "  \t",
        ] {
            let e = check(v.as_bytes(), "environment variable X").unwrap_err();
            assert!(
                matches!(e, SecretError::Unexpanded(_) | SecretError::Empty(_)),
                "{v:?}: {e:?}"
            );
            assert!(!e.to_string().contains(v.trim()) || v.trim().is_empty(), "{e}");
        }
        for v in [
            "s3cr3t$X",
            "$",
            "$1abc",
            "%%",
            "%a b%",
            "${}",
            "${1X}",
            "abc${X}",
            "0123456789abcdef",
        ] {
            assert_eq!(check(v.as_bytes(), "x"), Ok(()), "{v:?}");
        }
    }

    #[test]
    fn hints_name_the_variable_and_the_file_alternative() {
        let e = SecretError::Unexpanded("environment variable GH".into());
        let h = e.hint("secret_file");
        assert!(
            h.contains("export GH in the shell that starts claude") && h.contains("secret_file"),
            "{h}"
        );
        assert!(SecretError::TooShort {
            what: "x".into(),
            min: 16
        }
        .hint("secret_file")
        .contains("openssl rand -hex 32"));
        assert!(check_length(15, MIN_SECRET_BYTES, "x").is_err());
        assert!(check_length(15, 15, "x").is_ok());
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
