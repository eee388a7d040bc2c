//! The written position of a linked channel, kept in a file between processes: what an
//! earlier process of the same session wrote to stdout is acknowledged first thing and never
//! shown again, even if the gateway had not recorded its acknowledgement.

use std::path::Path;

use crate::secret::Secret;

/// Where a linked channel keeps its written position for `url` and `token`: a file in the
/// user's state folder (`$XDG_STATE_HOME/hookwire`, else `~/.local/state/hookwire`) named by
/// a hash of both, so one machine's sessions of different gateways or tokens never share
/// one, and the token never appears in a file name.
pub fn mark_path(url: &str, token: &Secret) -> Option<std::path::PathBuf> {
    use sha2::Digest as _;
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".local/state")))?;
    let mut h = sha2::Sha256::new();
    h.update(url.as_bytes());
    h.update([0]);
    h.update(token.expose());
    let name = format!("link-{}.position", &hex::encode(h.finalize())[..32]);
    Some(base.join("hookwire").join(name))
}

/// The written position kept in a mark file: read at start, rewritten after every flush
/// (a `pwrite` without fsync, as in local mode: it outlives the process, and power loss takes
/// the session with it).
pub(super) struct Mark(std::fs::File);

impl Mark {
    pub(super) fn open(path: &Path) -> std::io::Result<(Mark, u64)> {
        use std::os::unix::fs::FileExt;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = [0u8; 8];
        let at = match file.read_exact_at(&mut bytes, 0) {
            Ok(()) => u64::from_le_bytes(bytes),
            Err(_) => 0,
        };
        Ok((Mark(file), at))
    }

    pub(super) fn write(&self, position: u64) {
        use std::os::unix::fs::FileExt;
        if let Err(e) = self.0.write_at(&position.to_le_bytes(), 0) {
            tracing::warn!(error = %e, "cannot write the link's written position");
        }
    }
}
