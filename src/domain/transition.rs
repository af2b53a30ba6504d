//! The state machine's table: every move a release can make, named, with where it may start
//! and where it ends. `service::transition` is the one path that performs a move; it refuses a
//! move from a status this table does not list.

use super::ReleaseStatus;
use super::ReleaseStatus::*;
use std::fmt;

/// A named change of a release's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Move {
    /// A new request: stored `pending`.
    Request,
    /// A new break-glass request: stored `approved` at once, to be ratified later.
    RequestBreakGlass,
    /// The last open slot was filled.
    Approve,
    Reject,
    Cancel,
    /// A pending release passed its `request_ttl`.
    Expire,
    /// The worker took an approved release to send it.
    Claim,
    /// The worker took over a `dispatching` release whose lease lapsed (its worker died).
    Reclaim,
    /// MDE has the unisolate action.
    Dispatch,
    /// A send failed but may succeed later: back in the queue.
    Retry,
    /// The release ends without releasing the device.
    Fail,
    /// MDE's action ended `Succeeded`.
    Succeed,
    /// The policy now in force asks for more approvals than the release has.
    Reopen,
    /// The approval ran past its `approval_ttl` (or a break-glass ratification deadline) before
    /// the release was sent.
    ExpireApproval,
    /// A break-glass release not ratified in time: dualkey isolated the device again.
    Reisolate,
}

/// One row of the table: `from` lists the statuses the move starts from (`None`: the release
/// is not stored yet), `to` where it ends.
#[derive(Debug, Clone, Copy)]
pub struct MoveRule {
    pub mv: Move,
    pub from: &'static [Option<ReleaseStatus>],
    pub to: ReleaseStatus,
}

const fn rule(mv: Move, from: &'static [Option<ReleaseStatus>], to: ReleaseStatus) -> MoveRule {
    MoveRule { mv, from, to }
}

/// The whole state machine. Nothing else decides whether a status may change.
pub const MOVES: [MoveRule; 15] = [
    rule(Move::Request, &[None], Pending),
    rule(Move::RequestBreakGlass, &[None], Approved),
    rule(Move::Approve, &[Some(Pending)], Approved),
    rule(Move::Reject, &[Some(Pending)], Rejected),
    rule(Move::Cancel, &[Some(Pending)], Cancelled),
    rule(Move::Expire, &[Some(Pending)], Expired),
    rule(Move::Claim, &[Some(Approved)], Dispatching),
    rule(Move::Reclaim, &[Some(Dispatching)], Dispatching),
    rule(Move::Dispatch, &[Some(Dispatching)], Dispatched),
    rule(Move::Retry, &[Some(Dispatching)], Approved),
    rule(Move::Fail, &[Some(Dispatching), Some(Dispatched)], Failed),
    rule(Move::Succeed, &[Some(Dispatched)], Succeeded),
    rule(Move::Reopen, &[Some(Dispatching)], Pending),
    rule(Move::ExpireApproval, &[Some(Dispatching)], Expired),
    rule(Move::Reisolate, &[Some(Dispatched), Some(Succeeded)], Reisolated),
];

impl Move {
    pub const ALL: [Move; 15] = {
        let mut all = [Move::Request; 15];
        let mut i = 0;
        while i < MOVES.len() {
            all[i] = MOVES[i].mv;
            i += 1;
        }
        all
    };

    fn rule(self) -> &'static MoveRule {
        MOVES.iter().find(|r| r.mv == self).expect("every move has a row in MOVES")
    }

    /// The status this move ends in.
    pub fn to(self) -> ReleaseStatus {
        self.rule().to
    }

    /// Whether this move may start from `from` (`None`: a release not stored yet).
    pub fn allows_from(self, from: Option<ReleaseStatus>) -> bool {
        self.rule().from.contains(&from)
    }

    /// Moves made by the worker on a release it holds: the update is fenced on its claim too.
    pub fn needs_claim(self) -> bool {
        matches!(
            self,
            Move::Reclaim
                | Move::Dispatch
                | Move::Retry
                | Move::Fail
                | Move::Succeed
                | Move::Reopen
                | Move::ExpireApproval
                | Move::Reisolate
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Move::Request => "request",
            Move::RequestBreakGlass => "request_break_glass",
            Move::Approve => "approve",
            Move::Reject => "reject",
            Move::Cancel => "cancel",
            Move::Expire => "expire",
            Move::Claim => "claim",
            Move::Reclaim => "reclaim",
            Move::Dispatch => "dispatch",
            Move::Retry => "retry",
            Move::Fail => "fail",
            Move::Succeed => "succeed",
            Move::Reopen => "reopen",
            Move::ExpireApproval => "expire_approval",
            Move::Reisolate => "reisolate",
        }
    }
}

impl fmt::Display for Move {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_move_has_exactly_one_row_and_a_distinct_name() {
        for mv in Move::ALL {
            assert_eq!(MOVES.iter().filter(|r| r.mv == mv).count(), 1, "{mv}");
        }
        let names: std::collections::BTreeSet<_> = Move::ALL.iter().map(|m| m.as_str()).collect();
        assert_eq!(names.len(), Move::ALL.len());
    }

    #[test]
    fn the_moves_the_sql_used_to_make_on_its_own_are_in_the_table() {
        assert!(Dispatching.can_become(Pending), "reopen on a tightened policy");
        assert!(Dispatching.can_become(Expired), "approval expired before sending");
        assert!(Approved.can_start_as(), "break-glass is born approved");
        assert!(!Approved.can_become(Expired), "no code expires an approved release that was not claimed");
    }
}
