//! The release state machine. The database enforces the same set of values with a CHECK.

use super::ParseError;
use std::fmt;

/// Where a release is in its life.
///
/// ```text
/// pending --approve(quorum)--> approved --claim--> dispatching --201--> dispatched --> succeeded | failed
///    |--reject--> rejected   |--cancel--> cancelled   |--ttl--> expired        dispatching --> failed
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
}

impl ReleaseStatus {
    pub const ALL: [ReleaseStatus; 9] = [
        Self::Pending,
        Self::Approved,
        Self::Dispatching,
        Self::Dispatched,
        Self::Succeeded,
        Self::Failed,
        Self::Rejected,
        Self::Cancelled,
        Self::Expired,
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

    /// Whether the state machine allows moving from `self` to `next`.
    pub fn can_become(self, next: ReleaseStatus) -> bool {
        use ReleaseStatus::*;
        matches!(
            (self, next),
            (Pending, Approved | Rejected | Cancelled | Expired)
                | (Approved, Dispatching | Expired)
                | (Dispatching, Dispatched | Failed | Approved)
                | (Dispatched, Succeeded | Failed)
        )
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
        for from in [Succeeded, Failed, Rejected, Cancelled, Expired] {
            for to in ReleaseStatus::ALL {
                assert!(!from.can_become(to), "{from} -> {to}");
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
}
