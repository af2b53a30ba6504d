//! The SQL of a change of status: the insert of a new release and the fenced update of every
//! other move. Called only by `service::transition`, which checks the move against the state
//! machine first and appends the audit entry in the same transaction.

use super::fenced::{self, Guard, Sets};
use super::releases::{ReleaseRow, col, encode_json};
use crate::clock::Timestamp;
use crate::db::Conn;
use crate::domain::{BatchId, DecidedUnder, MachineId, Move, ReleaseId, ReleaseStatus};

/// A new release as the request handler built it.
#[derive(Debug, Clone)]
pub(crate) struct NewRelease<'a> {
    pub id: ReleaseId,
    pub machine_id: &'a MachineId,
    pub comment: &'a str,
    pub ticket: Option<&'a str>,
    pub requested_by: &'a str,
    pub requested_at: Timestamp,
    pub expires_at: Timestamp,
    pub approvals_required: u32,
    pub decided_under: &'a DecidedUnder,
    /// `Some(ratify_by)`: a break-glass release, approved at once, to be ratified by then.
    pub break_glass: Option<Timestamp>,
    /// The batch it is requested in, if any (the batch's row is stored first).
    pub batch_id: Option<BatchId>,
}

impl NewRelease<'_> {
    /// The move that stores it: a request, or a break-glass request.
    pub(crate) fn mv(&self) -> Move {
        if self.break_glass.is_some() { Move::RequestBreakGlass } else { Move::Request }
    }
}

/// Why an insert was refused by the database's own rules.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InsertError {
    #[error("machine already has an open release")]
    AlreadyOpen,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Inserts `r` in `status`. The partial unique index turns a race between two requests for
/// the same machine into [`InsertError::AlreadyOpen`] for the loser.
pub(crate) async fn insert(conn: &mut Conn, r: &NewRelease<'_>, status: ReleaseStatus) -> Result<(), InsertError> {
    let approved_at = (status == ReleaseStatus::Approved).then_some(r.requested_at);
    let row = ReleaseRow {
        seq: 0,
        id: r.id.to_string(),
        machine_id: r.machine_id.as_str().to_string(),
        comment: r.comment.to_string(),
        ticket: r.ticket.map(str::to_string),
        status: status.as_str().to_string(),
        requested_by: r.requested_by.to_string(),
        requested_at: r.requested_at,
        expires_at: r.expires_at,
        approvals_required: i64::from(r.approvals_required),
        approved_at,
        decided_by: None,
        decided_at: None,
        decision_comment: None,
        mde_action_id: None,
        mde_action_status: None,
        attempts: 0,
        last_error: None,
        lease_owner: None,
        lease_expires_at: None,
        next_attempt_at: approved_at,
        updated_at: r.requested_at,
        dispatched_at: None,
        finished_at: None,
        policy_rule: Some(r.decided_under.rule.name.clone()),
        policy_hash: Some(r.decided_under.hash.clone()),
        policy_applied: Some(encode_json(&r.decided_under.rule)?),
        device: Some(encode_json(&r.decided_under.device)?),
        isolated_by: r.decided_under.isolated_by.clone(),
        break_glass: i64::from(r.break_glass.is_some()),
        ratify_by: r.break_glass,
        ratified_by: None,
        ratified_at: None,
        reisolation_action_id: None,
        reisolated_at: None,
        reisolation_attempts: 0,
        reisolation_due_at: None,
        reisolation_abandoned_at: None,
        batch_id: r.batch_id.map(|b| b.to_string()),
    };
    row.insert(conn).await.map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => InsertError::AlreadyOpen,
        _ => InsertError::Db(e),
    })
}

/// Where a stored release stands, as the caller read it: the fence of its next move.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At<'a> {
    pub id: ReleaseId,
    pub machine_id: &'a MachineId,
    pub status: ReleaseStatus,
    /// The lease the caller holds (worker moves), or for a reclaim the lapsed one it takes over.
    pub claim: Option<&'a str>,
}

/// A move of a stored release and what it writes besides the status.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change<'a> {
    Approve,
    Reject {
        by: &'a str,
        comment: &'a str,
    },
    Cancel {
        by: &'a str,
    },
    /// Only once `expires_at` has passed.
    Expire,
    /// `attempts` as read: the claim counts one more, and is fenced on it.
    Claim {
        claim: &'a str,
        lease_until: Timestamp,
        attempts: u32,
    },
    Reclaim {
        claim: &'a str,
        lease_until: Timestamp,
        attempts: u32,
    },
    Dispatch {
        action_id: &'a str,
        action_status: Option<&'a str>,
        next_poll: Timestamp,
    },
    Retry {
        error: &'a str,
        next_attempt: Timestamp,
    },
    Fail {
        action_status: Option<&'a str>,
        error: &'a str,
    },
    Succeed {
        action_status: &'a str,
    },
    Reopen {
        decided_under: &'a DecidedUnder,
        approvals_required: u32,
        expires_at: Timestamp,
    },
    ExpireApproval {
        error: &'a str,
    },
    Reisolate {
        action_id: &'a str,
    },
}

impl Change<'_> {
    pub(crate) fn mv(&self) -> Move {
        match self {
            Change::Approve => Move::Approve,
            Change::Reject { .. } => Move::Reject,
            Change::Cancel { .. } => Move::Cancel,
            Change::Expire => Move::Expire,
            Change::Claim { .. } => Move::Claim,
            Change::Reclaim { .. } => Move::Reclaim,
            Change::Dispatch { .. } => Move::Dispatch,
            Change::Retry { .. } => Move::Retry,
            Change::Fail { .. } => Move::Fail,
            Change::Succeed { .. } => Move::Succeed,
            Change::Reopen { .. } => Move::Reopen,
            Change::ExpireApproval { .. } => Move::ExpireApproval,
            Change::Reisolate { .. } => Move::Reisolate,
        }
    }
}

/// The columns `change` sets and the guards it adds to the fence.
fn sql_of(change: &Change<'_>, now: Timestamp) -> Result<(Sets, Vec<Guard<'static>>), sqlx::Error> {
    let sets = Sets::moving_to(change.mv().to());
    Ok(match *change {
        Change::Approve => (sets.set(col::approved_at, now).set(col::next_attempt_at, now), vec![]),
        Change::Reject { by, comment } => (
            sets.set(col::decided_by, by.to_string())
                .set(col::decided_at, now)
                .set(col::decision_comment, comment.to_string()),
            vec![],
        ),
        Change::Cancel { by } => {
            (sets.set(col::decided_by, by.to_string()).set(col::decided_at, now).clear(col::decision_comment), vec![])
        }
        Change::Expire => (sets, vec![Guard::NotAfter(col::expires_at, now)]),
        Change::Claim { claim, lease_until, attempts } => (
            sets.set(col::lease_owner, claim.to_string())
                .set(col::lease_expires_at, lease_until)
                .set(col::attempts, i64::from(attempts) + 1),
            vec![Guard::Equals(col::attempts, i64::from(attempts))],
        ),
        Change::Reclaim { claim, lease_until, attempts } => (
            sets.set(col::lease_owner, claim.to_string())
                .set(col::lease_expires_at, lease_until)
                .set(col::attempts, i64::from(attempts) + 1),
            vec![Guard::Equals(col::attempts, i64::from(attempts)), Guard::NotAfter(col::lease_expires_at, now)],
        ),
        Change::Dispatch { action_id, action_status, next_poll } => (
            sets.set(col::mde_action_id, action_id.to_string())
                .set(col::mde_action_status, action_status.map(str::to_string))
                .set(col::dispatched_at, now)
                .set(col::next_attempt_at, next_poll)
                .clear(col::last_error)
                .release_lease(),
            vec![],
        ),
        Change::Retry { error, next_attempt } => (
            sets.set(col::last_error, error.to_string()).set(col::next_attempt_at, next_attempt).release_lease(),
            vec![],
        ),
        Change::Fail { action_status, error } => (
            sets.set_some(col::mde_action_status, action_status.map(str::to_string))
                .set(col::last_error, error.to_string())
                .set(col::finished_at, now)
                .clear(col::next_attempt_at)
                .release_lease(),
            vec![],
        ),
        Change::Succeed { action_status } => (
            sets.set(col::mde_action_status, action_status.to_string())
                .set(col::finished_at, now)
                .clear(col::next_attempt_at)
                .release_lease(),
            vec![],
        ),
        Change::Reopen { decided_under, approvals_required, expires_at } => (
            sets.clear(col::approved_at)
                .clear(col::next_attempt_at)
                .release_lease()
                .set(col::policy_rule, decided_under.rule.name.clone())
                .set(col::policy_hash, decided_under.hash.clone())
                .set(col::policy_applied, encode_json(&decided_under.rule)?)
                .set(col::approvals_required, i64::from(approvals_required))
                .set(col::expires_at, expires_at),
            vec![],
        ),
        Change::ExpireApproval { error } => (
            sets.set(col::last_error, error.to_string())
                .set(col::finished_at, now)
                .clear(col::next_attempt_at)
                .release_lease(),
            vec![],
        ),
        Change::Reisolate { action_id } => (
            sets.set(col::reisolation_action_id, action_id.to_string())
                .set(col::reisolated_at, now)
                .clear(col::reisolation_due_at)
                .clear(col::next_attempt_at)
                .release_lease(),
            vec![Guard::BreakGlass, Guard::Null(col::ratified_at), Guard::Null(col::reisolation_action_id)],
        ),
    })
}

/// Writes `change` to the release `at` names, fenced on its status (and claim, when given).
/// False when the fence no longer matches.
pub(crate) async fn update(
    conn: &mut Conn,
    at: &At<'_>,
    change: &Change<'_>,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let (sets, extra) = sql_of(change, now)?;
    let mut guards = vec![Guard::Status(at.status)];
    if let Some(claim) = at.claim {
        guards.push(Guard::Owner(claim));
    }
    guards.extend(extra);
    fenced::update(conn, at.id, sets, &guards, now).await
}
