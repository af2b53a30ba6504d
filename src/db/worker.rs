//! SQL for the release worker: finding the next due job, holding it with a lease, and the
//! worker's updates that change fields but not the status, all fenced on the claim, so a worker
//! whose lease expired cannot overwrite the work of the worker that took the job over. The
//! claim of a send is a move of the state machine (`approved -> dispatching`) and goes through
//! `service::transition`.

use super::Backend;
use super::fenced::{Guard, Sets, update};
use super::releases::{ReleaseRow, col};
use crate::clock::Timestamp;
use crate::db::Conn;
use crate::domain::{MachineId, ReleaseId, ReleaseStatus};
use tokio_util::sync::CancellationToken;

/// The kinds of job the worker does; each is a duty of its own (`worker::Worker::run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Job {
    /// Send an approved release (or take over one whose worker's lease lapsed mid-send).
    Dispatch,
    /// Follow a dispatched release's MDE action.
    Poll,
    /// Isolate again the device of a break-glass release not ratified in time.
    Reisolate,
}

impl Job {
    /// Every kind, in the order `Worker::step` tries them.
    pub(crate) const ALL: [Job; 3] = [Job::Dispatch, Job::Poll, Job::Reisolate];

    /// A short name for logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Job::Dispatch => "dispatch",
            Job::Poll => "poll",
            Job::Reisolate => "reisolate",
        }
    }
}

/// A job the worker holds. `claim` is the fencing token: every later update names it.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub id: ReleaseId,
    pub machine_id: MachineId,
    pub claim: String,
    /// The status the release had when claimed (and still has while the claim holds).
    pub status: ReleaseStatus,
    /// Attempts to send, including this one (dispatch jobs).
    pub attempts: u32,
    /// Set for poll jobs: the MDE action being followed.
    pub mde_action_id: Option<String>,
    pub mde_action_status: Option<String>,
    /// Failed attempts to isolate the device again so far (re-isolation jobs).
    pub reisolation_attempts: u32,
    /// Cancelled once a renewal of the lease finds the job in another worker's hands: from then
    /// on nothing may be sent to MDE for this claim (its fenced writes would fail anyway).
    pub lost: CancellationToken,
}

/// A due job, as read before claiming it.
#[derive(Debug, Clone)]
pub(crate) struct Due {
    pub claim: Claim,
    /// The lease holder the row had (set when taking over a lapsed `dispatching` release).
    pub lease_owner: Option<String>,
}

impl Due {
    fn from_row(row: ReleaseRow) -> Result<Self, sqlx::Error> {
        let count = |n: i64| n.max(0) as u32;
        Ok(Due {
            claim: Claim {
                id: row.release_id()?,
                machine_id: row.machine()?,
                claim: String::new(),
                status: row.release_status()?,
                attempts: count(row.attempts),
                mde_action_id: row.mde_action_id,
                mde_action_status: row.mde_action_status,
                reisolation_attempts: count(row.reisolation_attempts),
                lost: CancellationToken::new(),
            },
            lease_owner: row.lease_owner,
        })
    }
}

/// Due sends: approved ones past their backoff, and `dispatching` ones whose lease lapsed.
const DISPATCH_DUE: &str = "(status = 'approved' AND COALESCE(next_attempt_at, 0) <= $1)
     OR (status = 'dispatching' AND lease_expires_at <= $1)";

/// The releases a send is chosen from, each with its `turn`: its place in its batch's approval
/// order (a release requested alone is a batch of one, turn 1). Ranking every approved release
/// of the batch, not only the due ones, keeps a release's turn fixed while the batch is sent,
/// so a batch takes one turn per round instead of all of them. Only the due releases and the
/// batches with one are read.
fn dispatch_ranked() -> String {
    format!(
        "(SELECT *, ROW_NUMBER() OVER (PARTITION BY COALESCE(batch_id, id) ORDER BY approved_at, seq) AS turn
          FROM releases
          WHERE approved_at IS NOT NULL
            AND (({DISPATCH_DUE})
                 OR batch_id IN (SELECT batch_id FROM releases WHERE batch_id IS NOT NULL AND ({DISPATCH_DUE})))
         ) AS releases"
    )
}

/// The most overdue job of this kind at `now`, if any. Sends: a lapsed lease first (its send
/// may already be at MDE), then by turn within the batch ([`dispatch_ranked`]), then oldest
/// approval first, so single releases and batches interleave fairly.
pub(crate) async fn next(conn: &mut Conn, job: Job, now: Timestamp) -> Result<Option<Due>, sqlx::Error> {
    let (from, filter, order) = match job {
        Job::Dispatch => (dispatch_ranked(), DISPATCH_DUE, "status = 'dispatching' DESC, turn, approved_at, seq"),
        Job::Poll => (
            ReleaseRow::TABLE.to_string(),
            "status = 'dispatched' AND COALESCE(next_attempt_at, 0) <= $1
             AND (lease_expires_at IS NULL OR lease_expires_at <= $1)",
            "next_attempt_at NULLS FIRST, seq",
        ),
        Job::Reisolate => (
            ReleaseRow::TABLE.to_string(),
            "break_glass = 1 AND ratified_at IS NULL AND reisolation_action_id IS NULL
             AND reisolation_abandoned_at IS NULL AND status IN ('dispatched', 'succeeded')
             AND ratify_by <= $1 AND COALESCE(reisolation_due_at, 0) <= $1
             AND (lease_expires_at IS NULL OR lease_expires_at <= $1)",
            "ratify_by, seq",
        ),
    };
    let sql = match super::Backend::of(conn) {
        Backend::Sqlite => {
            format!("SELECT {} FROM {from} WHERE {filter} ORDER BY {order} LIMIT 1", ReleaseRow::COLUMNS)
        }
        // Replicas share the queue: a row another replica's transaction holds is skipped, not
        // waited for, and the claim itself is the fenced lease update that follows.
        Backend::Postgres => format!(
            "SELECT {} FROM releases WHERE seq IN (SELECT seq FROM {from} WHERE {filter} ORDER BY {order} LIMIT 1)
             FOR UPDATE SKIP LOCKED",
            ReleaseRow::COLUMNS
        ),
    };
    let row: Option<ReleaseRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(now).fetch_optional(conn).await?;
    row.map(Due::from_row).transpose()
}

/// Holds a due poll or re-isolation job (its status does not change) with a lease until
/// `lease_until`. False when another worker took it first.
pub(crate) async fn take_lease(
    conn: &mut Conn,
    due: &Due,
    claim: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<bool, sqlx::Error> {
    let sets = Sets::new().set(col::lease_owner, claim.to_string()).set(col::lease_expires_at, lease_until);
    let guards = [Guard::Status(due.claim.status), Guard::LeaseFreeAt(now)];
    update(conn, due.claim.id, sets, &guards, now).await
}

/// The earliest time a job of this kind becomes due (for the worker's sleep), if any. A job
/// under another worker's lease is due when the lease ends.
pub(crate) async fn next_due(conn: &mut Conn, job: Job) -> Result<Option<Timestamp>, sqlx::Error> {
    let greatest = super::Backend::of(conn).greatest();
    let sql = match job {
        Job::Dispatch => "SELECT MIN(t) FROM (
                 SELECT COALESCE(next_attempt_at, 0) AS t FROM releases WHERE status = 'approved'
                 UNION ALL
                 SELECT lease_expires_at FROM releases WHERE status = 'dispatching') AS due"
            .to_string(),
        Job::Poll => format!(
            "SELECT MIN({greatest}(COALESCE(next_attempt_at, 0), COALESCE(lease_expires_at, 0))) FROM releases
             WHERE status = 'dispatched'"
        ),
        Job::Reisolate => format!(
            "SELECT MIN({greatest}(ratify_by, COALESCE(lease_expires_at, 0), COALESCE(reisolation_due_at, 0)))
             FROM releases
             WHERE break_glass = 1 AND ratified_at IS NULL AND reisolation_action_id IS NULL
               AND reisolation_abandoned_at IS NULL AND status IN ('dispatched', 'succeeded')"
        ),
    };
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(conn).await
}

/// Extends the lease to `lease_until` while the claim is still ours. A lease that lapsed is
/// extended too as long as nobody took the job over: a takeover changes the owner in the same
/// fenced way, so the row never has two holders. False means another worker took the job (or
/// this claim already finished it).
pub(crate) async fn renew(
    conn: &mut Conn,
    c: &Claim,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<bool, sqlx::Error> {
    let sets = Sets::new().set(col::lease_expires_at, lease_until);
    update(conn, c.id, sets, &[Guard::Owner(&c.claim)], now).await
}

/// A poll saw the action still running (or could not read it): record what it saw, poll again
/// at `next_poll`, and release the lease.
pub(crate) async fn polled(
    conn: &mut Conn,
    c: &Claim,
    action_status: Option<&str>,
    error: Option<&str>,
    now: Timestamp,
    next_poll: Timestamp,
) -> Result<bool, sqlx::Error> {
    let sets = Sets::new()
        .set_some(col::mde_action_status, action_status.map(str::to_string))
        .set(col::last_error, error.map(str::to_string))
        .set(col::next_attempt_at, next_poll)
        .release_lease();
    update(conn, c.id, sets, &[Guard::Status(ReleaseStatus::Dispatched), Guard::Owner(&c.claim)], now).await
}

/// Re-isolation failed: count the attempt and release the claim; try again from `due_at`.
pub(crate) async fn defer_reisolation(
    conn: &mut Conn,
    c: &Claim,
    attempts: u32,
    due_at: Timestamp,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let sets = Sets::new()
        .set(col::reisolation_attempts, i64::from(attempts))
        .set(col::reisolation_due_at, due_at)
        .release_lease();
    update(conn, c.id, sets, &[Guard::Status(c.status), Guard::Owner(&c.claim)], now).await
}

/// Re-isolation failed for the last allowed time: count it, stop trying, release the claim.
pub(crate) async fn abandon_reisolation(
    conn: &mut Conn,
    c: &Claim,
    attempts: u32,
    now: Timestamp,
) -> Result<bool, sqlx::Error> {
    let sets = Sets::new()
        .set(col::reisolation_attempts, i64::from(attempts))
        .set(col::reisolation_abandoned_at, now)
        .clear(col::reisolation_due_at)
        .release_lease();
    update(conn, c.id, sets, &[Guard::Status(c.status), Guard::Owner(&c.claim)], now).await
}

/// Who requested a release and why, and who approved it, for the comment sent to MDE.
pub(crate) async fn parties(conn: &mut Conn, id: ReleaseId) -> Result<(String, String, Vec<String>), sqlx::Error> {
    let (requester, comment): (String, String) =
        sqlx::query_as("SELECT requested_by, comment FROM releases WHERE id = $1")
            .bind(id.to_string())
            .fetch_one(&mut *conn)
            .await?;
    let approvers = super::approvals::approvers(conn, id).await?;
    Ok((requester, comment, approvers))
}

/// The dispatched release `id` as a poll job, when no lease holds it at `now` (the scan takes
/// it to record what the bulk list showed of its action).
pub(crate) async fn poll_job(conn: &mut Conn, id: &str, now: Timestamp) -> Result<Option<Due>, sqlx::Error> {
    let sql = format!(
        "SELECT {} FROM {} WHERE id = $1 AND status = 'dispatched'
           AND (lease_expires_at IS NULL OR lease_expires_at <= $2)",
        ReleaseRow::COLUMNS,
        ReleaseRow::TABLE
    );
    let row: Option<ReleaseRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).bind(now).fetch_optional(conn).await?;
    row.map(Due::from_row).transpose()
}
