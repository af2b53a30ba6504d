//! Offline verification: `dualkey evidence verify` and `dualkey audit verify --file`. Needs no
//! database and no configuration, only the file and the log's verifier key; trusts nothing
//! the dualkey host says but what that key signed. Every failure names what failed.

mod bundle;
mod export;
mod fast;
mod story;

pub(crate) use bundle::verify_bundle;
pub(crate) use export::verify_export;

use crate::tlog::{Checkpoint, Hash, NoteVerifier};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

/// Why a file does not verify. `Display` is the plain-words line the command prints.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {detail}")]
pub(crate) struct Failure {
    /// A stable name for what failed (`checkpoint_signature`, `leaf_content`, `inclusion_proof`,
    /// `entry_missing`, `consistency`, `format`, ...).
    pub(crate) what: &'static str,
    pub(crate) detail: String,
}

pub(crate) fn fail(what: &'static str, detail: impl Into<String>) -> Failure {
    Failure { what, detail: detail.into() }
}

/// The checkpoint of a file, opened with the key.
pub(crate) fn open_checkpoint(note: &str, key: &NoteVerifier, whose: &str) -> Result<Checkpoint, Failure> {
    Checkpoint::open(note, key).map_err(|e| fail("checkpoint_signature", format!("{whose} checkpoint: {e}")))
}

/// Base64 hashes as files carry them.
pub(crate) fn hashes(values: &[serde_json::Value], what: &str) -> Result<Vec<Hash>, Failure> {
    values
        .iter()
        .map(|v| {
            let bytes = v.as_str().and_then(|s| B64.decode(s).ok()).unwrap_or_default();
            <Hash>::try_from(bytes.as_slice())
                .map_err(|_| fail("format", format!("{what} holds a value that is not a base64 SHA-256 hash")))
        })
        .collect()
}

/// Both checkpoints name the same log.
pub(crate) fn same_log(kept: &Checkpoint, current: &Checkpoint) -> Result<(), Failure> {
    if kept.origin != current.origin {
        return Err(fail(
            "consistency",
            format!("your checkpoint is of log `{}`, this file's of `{}`", kept.origin, current.origin),
        ));
    }
    Ok(())
}

/// Checks the kept older checkpoint against the file's: same log, and a consistency proof from
/// it to the file's checkpoint (or, when both have the same size, the same root).
pub(crate) fn check_kept(
    kept: &Checkpoint,
    current: &Checkpoint,
    proof: Option<(u64, Vec<Hash>)>,
) -> Result<String, Failure> {
    same_log(kept, current)?;
    if kept.size > current.size {
        return Err(fail(
            "consistency",
            format!(
                "your checkpoint covers {} entries but this file's only {}: the log was cut, or the file is older than your checkpoint",
                kept.size, current.size
            ),
        ));
    }
    if kept.size == current.size {
        return if kept.root == current.root {
            Ok(format!("consistent with your checkpoint of {} entries (the same tree)", kept.size))
        } else {
            Err(fail(
                "consistency",
                format!(
                    "your checkpoint and this file's both cover {} entries but their roots differ: the history was rewritten",
                    kept.size
                ),
            ))
        };
    }
    let Some((from, hashes)) = proof.filter(|(from, _)| *from == kept.size) else {
        return Err(fail(
            "consistency",
            format!(
                "the file carries no consistency proof from {} entries; fetch it again with --checkpoint",
                kept.size
            ),
        ));
    };
    crate::tlog::verify_consistency(from, current.size, &kept.root, &current.root, &hashes).map_err(|e| {
        fail(
            "consistency",
            format!(
                "from your checkpoint of {} entries to {}: {e}: the log's history was rewritten",
                from, current.size
            ),
        )
    })?;
    Ok(format!("consistent with your checkpoint of {} entries: the log only grew since", kept.size))
}
