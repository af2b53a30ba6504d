//! Domain values: parsed once at the edge, trusted everywhere after.

mod batch;
mod ids;
mod release;
mod status;
mod text;
mod transition;

pub use crate::person::{PersonKey, same_person};
pub use batch::{Batch, BatchSelector, MAX_BATCH_MACHINES, Outcome, Refusal, Refused};
pub use ids::{BatchId, MachineId, ReleaseId};
pub use release::{Approval, BreakGlass, DecidedUnder, Release};
pub use status::ReleaseStatus;
pub use text::{Comment, Ticket, is_hidden_control, visible_chars};
pub use transition::{MOVES, Move, MoveRule};

/// Why a wire value could not become a domain value. `code` is the stable API error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    pub code: &'static str,
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }
}
