//! The release statuses. The legal moves between them are the table in [`super::Move`]; the
//! database enforces the same set of values with a CHECK.

use super::ParseError;
use super::transition::MOVES;
use std::fmt;

/// Where a release is in its life. Every arrow is a [`super::Move`]; nothing else changes a
/// status.
///
/// ```text
/// (new) --request--> pending --approve (quorum)--> approved --claim--> dispatching
/// (new) --request_break_glass--> approved
/// dispatching --dispatch (MDE 201)--> dispatched --succeed--> succeeded
/// pending --reject--> rejected      pending --cancel--> cancelled      pending --expire--> expired
/// dispatching --reclaim (lease lapsed)--> dispatching      dispatching --retry--> approved
/// dispatching --reopen (policy asks for more)--> pending  dispatching --expire_approval--> expired
/// dispatching | dispatched --fail--> failed
/// dispatched | succeeded --reisolate (break-glass not ratified)--> reisolated
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReleaseStatus {
    Pending,
    Approved,
    Dispatching,
    Dispatched,
    Succeeded,
    Failed,
    Rejected,
    Cancelled,
    Expired,
    /// A break-glass release that was not ratified in time: dualkey isolated the device again.
    Reisolated,
}

impl ReleaseStatus {
    pub const ALL: [ReleaseStatus; 10] = [
        Self::Pending,
        Self::Approved,
        Self::Dispatching,
        Self::Dispatched,
        Self::Succeeded,
        Self::Failed,
        Self::Rejected,
        Self::Cancelled,
        Self::Expired,
        Self::Reisolated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Dispatching => "dispatching",
            Self::Dispatched => "dispatched",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Rejected => "rejected",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::Reisolated => "reisolated",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw).ok_or_else(|| {
            ParseError::new(
                "invalid_status",
                format!(
                    "status must be one of: {}",
                    Self::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    /// Open releases block a second request for the same machine.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Approved | Self::Dispatching | Self::Dispatched)
    }

    /// Whether some move of the state machine goes from `self` to `next`.
    pub fn can_become(self, next: ReleaseStatus) -> bool {
        MOVES.iter().any(|m| m.from.contains(&Some(self)) && m.to == next)
    }

    /// Whether a release may be stored for the first time in this status.
    pub fn can_start_as(self) -> bool {
        MOVES.iter().any(|m| m.from.contains(&None) && m.to == self)
    }
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::ReleaseStatus::*;
    use super::*;

    #[test]
    fn every_status_round_trips_through_its_name() {
        for s in ReleaseStatus::ALL {
            assert_eq!(ReleaseStatus::parse(s.as_str()).unwrap(), s);
        }
        assert_eq!(ReleaseStatus::parse("done").unwrap_err().code, "invalid_status");
    }

    #[test]
    fn final_states_go_nowhere() {
        for from in [Succeeded, Failed, Rejected, Cancelled, Expired, Reisolated] {
            for to in ReleaseStatus::ALL {
                let reisolation = from == Succeeded && to == Reisolated;
                assert_eq!(from.can_become(to), reisolation, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn only_a_pending_release_can_be_approved_rejected_or_cancelled() {
        assert!(Pending.can_become(Approved));
        assert!(!Approved.can_become(Rejected));
        assert!(!Dispatched.can_become(Cancelled));
        assert!(!Pending.can_become(Dispatching));
    }

    #[test]
    fn a_release_is_born_pending_or_as_break_glass_approved() {
        let born: Vec<_> = ReleaseStatus::ALL.into_iter().filter(|s| s.can_start_as()).collect();
        assert_eq!(born, [Pending, Approved]);
    }

    #[test]
    fn open_statuses_are_exactly_those_with_a_way_out_other_than_reisolation() {
        for s in ReleaseStatus::ALL {
            let way_out = ReleaseStatus::ALL.into_iter().any(|t| t != Reisolated && s.can_become(t));
            assert_eq!(s.is_open(), way_out, "{s}");
        }
    }
}
