//! `[audit]`: the signed Merkle log (signing key, origin, how often checkpoints are written)
//! and `[[audit.forward]]`, the off-host copies of the trail.

use super::SettingsError;
use crate::duration::HumanDuration;
use serde::Deserialize;
use std::path::PathBuf;

mod forward;

pub use forward::{ForwardKind, ForwardSettings, split_address};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSettings {
    /// The Ed25519 signer key (`dualkey audit keygen` writes it); unset: the log is unsigned.
    pub signing_key_file: Option<PathBuf>,
    /// If set, must equal the name inside the key file (a guard against the wrong key).
    pub key_name: Option<String>,
    /// The checkpoints' origin line. Default: `dualkey/<host name>`.
    pub origin: Option<String>,
    /// A checkpoint is written once this many entries were added since the last one.
    pub checkpoint_every: u64,
    /// ... and at this interval when any entry (other than a checkpoint record) was added.
    pub checkpoint_interval: HumanDuration,
    /// Off-host copies of every entry and checkpoint.
    pub forward: Vec<ForwardSettings>,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            signing_key_file: None,
            key_name: None,
            origin: None,
            checkpoint_every: 100,
            checkpoint_interval: HumanDuration::from_secs(300),
            forward: Vec::new(),
        }
    }
}

fn invalid(key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid { key: key.to_string(), message: message.into() }
}

impl AuditSettings {
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if self.checkpoint_every == 0 {
            return Err(invalid("audit.checkpoint_every", "must be at least 1"));
        }
        if self.checkpoint_interval.get().is_zero() {
            return Err(invalid("audit.checkpoint_interval", "must be longer than zero"));
        }
        if let Some(origin) = &self.origin
            && (origin.trim().is_empty() || origin.contains('\n'))
        {
            return Err(invalid("audit.origin", "must be one non-empty line"));
        }
        let mut names = std::collections::HashSet::new();
        for (i, f) in self.forward.iter().enumerate() {
            f.validate(i)?;
            if !names.insert(f.name.as_str()) {
                return Err(invalid(&format!("audit.forward[{i}].name"), format!("`{}` is used twice", f.name)));
            }
        }
        Ok(())
    }
}
