//! Transparency-log checkpoints (c2sp.org/tlog-checkpoint): a signed note whose text is the
//! log's origin, its tree size and its root hash, one per line.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::merkle::Hash;
use super::note::{NoteError, NoteVerifier, Signer};

/// A tree head: the log `origin` has `size` leaves with Merkle root `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checkpoint {
    pub(crate) origin: String,
    pub(crate) size: u64,
    pub(crate) root: Hash,
}

/// Why a checkpoint was refused: its note, or the text inside it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum CheckpointError {
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("the checkpoint text does not end in a newline")]
    Unterminated,
    #[error("the checkpoint has fewer than three lines (origin, tree size, root hash)")]
    TooFewLines,
    #[error("the checkpoint's origin line is empty")]
    EmptyOrigin,
    #[error("the checkpoint's tree size is not a decimal number without leading zeros")]
    BadSize,
    #[error("the checkpoint's root hash is not the base64 of 32 bytes")]
    BadRoot,
    #[error("the checkpoint has an empty extension line")]
    EmptyExtensionLine,
}

impl Checkpoint {
    /// The note text: `origin\nsize\nbase64(root)\n`.
    pub(crate) fn text(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, STANDARD.encode(self.root))
    }

    /// The checkpoint in a note text, strictly: a non-empty origin, a decimal size with no
    /// leading zero (but `0`), the standard base64 of exactly 32 bytes. Extension lines after
    /// the third are allowed (each non-empty, as the spec requires) and ignored.
    /// The checkpoint a note's text holds, its signatures not checked (for its size only, or
    /// when no key is at hand).
    pub(crate) fn parse_unverified(note: &str) -> Result<Self, CheckpointError> {
        let text = note.split("\n\n").next().map(|t| format!("{t}\n")).unwrap_or_default();
        Self::parse(&text)
    }

    pub(crate) fn parse(text: &str) -> Result<Self, CheckpointError> {
        let body = text.strip_suffix('\n').ok_or(CheckpointError::Unterminated)?;
        let mut lines = body.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
            return Err(CheckpointError::TooFewLines);
        };
        if origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        if lines.any(str::is_empty) {
            return Err(CheckpointError::EmptyExtensionLine);
        }
        let size = parse_size(size).ok_or(CheckpointError::BadSize)?;
        let root = STANDARD.decode(root).ok().and_then(|r| Hash::try_from(r).ok()).ok_or(CheckpointError::BadRoot)?;
        Ok(Self { origin: origin.to_owned(), size, root })
    }

    /// The signed checkpoint note. Refused when the origin is empty or spans lines, since the
    /// note would not read back as this checkpoint, and for what [`Signer::sign`] refuses.
    pub(crate) fn sign(&self, signer: &Signer) -> Result<String, NoteError> {
        if self.origin.is_empty() || self.origin.contains('\n') {
            return Err(NoteError::UnsignableText("a checkpoint's origin must be one non-empty line"));
        }
        signer.sign(&self.text())
    }

    /// The checkpoint in `note`, once `verifier`'s signature on it is checked. The caller still
    /// checks that the origin is the log it expects.
    pub(crate) fn open(note: &str, verifier: &NoteVerifier) -> Result<Self, CheckpointError> {
        Self::parse(verifier.open(note)?)
    }
}

/// ASCII digits without a leading zero (`0` itself excepted) that fit a `u64`.
fn parse_size(text: &str) -> Option<u64> {
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || (text.len() > 1 && text.starts_with('0')) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
#[path = "checkpoint_tests.rs"]
mod tests;
