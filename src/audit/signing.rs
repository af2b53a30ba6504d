//! The log's signer: the Ed25519 key of `[audit] signing_key_file` and the checkpoints' origin.

use crate::settings::AuditSettings;
use crate::tlog::{Checkpoint, Hash, Signer};
use anyhow::{Context, bail};
use std::path::Path;

/// Signs this daemon's checkpoints. Its `Debug` shows the key's name and id, never the key.
#[derive(Debug)]
pub(crate) struct LogSigner {
    signer: Signer,
    origin: String,
    /// `[audit] checkpoint_every`.
    pub(crate) every: u64,
}

/// `dualkey/<host name>`: the origin when `[audit] origin` is not set.
pub(crate) fn default_origin() -> String {
    let host =
        crate::net::host_name().filter(|h| !h.contains(char::is_whitespace)).unwrap_or_else(|| "localhost".to_string());
    format!("dualkey/{host}")
}

/// Reads a signer key file, refusing one that others than its owner may read.
pub(crate) fn read_key_file(path: &Path) -> anyhow::Result<Signer> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.permissions().mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} can be read by others (mode {:o}); a signing key must be private: chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Signer::from_private_key(&text).with_context(|| format!("{} does not hold a dualkey signing key", path.display()))
}

impl LogSigner {
    pub(crate) fn new(signer: Signer, origin: String, every: u64) -> Self {
        Self { signer, origin, every }
    }

    /// The signer `[audit]` configures; `None` when no key is set (the log is then unsigned).
    pub(crate) fn from_settings(s: &AuditSettings) -> anyhow::Result<Option<Self>> {
        let Some(path) = &s.signing_key_file else { return Ok(None) };
        let signer = read_key_file(path).context("audit.signing_key_file")?;
        if let Some(name) = &s.key_name
            && name != signer.name()
        {
            bail!("audit.key_name is `{name}` but the key in {} is named `{}`", path.display(), signer.name());
        }
        let origin = s.origin.clone().unwrap_or_else(default_origin);
        Ok(Some(Self { signer, origin, every: s.checkpoint_every }))
    }

    /// The key auditors verify with, in the signed-note verifier key format.
    pub(crate) fn verifier_key(&self) -> String {
        self.signer.verifier_key()
    }

    pub(crate) fn key_name(&self) -> &str {
        self.signer.name()
    }

    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    /// The signed checkpoint note for the tree of `size` entries with this root.
    pub(crate) fn sign(&self, size: u64, root: Hash) -> anyhow::Result<String> {
        let checkpoint = Checkpoint { origin: self.origin.clone(), size, root };
        checkpoint.sign(&self.signer).context("signing a checkpoint")
    }
}
