//! The state machine's table is exhaustive: every move is tried from every status through the
//! one transition path, against a real SQLite database migrated with the real migrations, and
//! exactly the moves of the table (written out here, independently of `domain::MOVES`) go
//! through; a fence that no longer matches is `Lost` and writes nothing.

use super::*;
use crate::db::Conn;
use crate::domain::{DecidedUnder, MachineId, Move, ReleaseStatus};
use crate::rules::{AppliedRule, DeviceSnapshot, Slot};
use ReleaseStatus::*;
use std::collections::HashSet;
use std::time::Duration;

/// The table as documented (docs/api.md, domain/status.rs): `None` is a release not stored yet.
const EXPECTED: [(Option<ReleaseStatus>, ReleaseStatus); 17] = [
    (None, Pending),
    (None, Approved),
    (Some(Pending), Approved),
    (Some(Pending), Rejected),
    (Some(Pending), Cancelled),
    (Some(Pending), Expired),
    (Some(Approved), Dispatching),
    (Some(Dispatching), Dispatching),
    (Some(Dispatching), Dispatched),
    (Some(Dispatching), Approved),
    (Some(Dispatching), Failed),
    (Some(Dispatching), Pending),
    (Some(Dispatching), Expired),
    (Some(Dispatched), Succeeded),
    (Some(Dispatched), Failed),
    (Some(Dispatched), Reisolated),
    (Some(Succeeded), Reisolated),
];

const NOW: Timestamp = Timestamp::from_unix_ms(10_000);
const HOLDER: &str = "worker-1/claim";

/// One write transaction on a fresh database migrated by the real migrations, never committed.
/// The database file lives in a directory that is kept until the process ends.
async fn database() -> Tx {
    let dir = tempfile::tempdir().unwrap().keep();
    let url = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
    let db = crate::db::Db::connect(&crate::settings::DatabaseSettings { url, ..Default::default() }).await.unwrap();
    db.migrate().await.unwrap();
    db.begin().await.unwrap()
}

fn decided_under() -> DecidedUnder {
    DecidedUnder {
        rule: AppliedRule {
            name: "default".into(),
            deny: None,
            slots: vec![Slot { role: "Release.Approve".into(), count: 1 }],
            request_ttl: Duration::from_secs(3600),
            approval_ttl: Duration::from_secs(3600),
            exclude_isolator: false,
        },
        hash: "h".into(),
        device: DeviceSnapshot::default(),
        isolated_by: None,
    }
}

fn machine(n: usize) -> MachineId {
    MachineId::parse(&format!("{n:040x}")).unwrap()
}

fn new_release<'a>(id: ReleaseId, m: &'a MachineId, d: &'a DecidedUnder, mv: Move) -> NewRelease<'a> {
    NewRelease {
        id,
        machine_id: m,
        comment: "reimaged and scanned clean",
        ticket: None,
        requested_by: "alice",
        requested_at: Timestamp::EPOCH,
        expires_at: Timestamp::from_unix_ms(1000),
        approvals_required: 1,
        decided_under: d,
        break_glass: (mv == Move::RequestBreakGlass).then_some(Timestamp::from_unix_ms(5000)),
        batch_id: None,
    }
}

/// A stored break-glass release in `status`, held by [`HOLDER`] under a lapsed lease, past its
/// expiry, with every column the CHECK constraints ask of that status.
async fn stored(conn: &mut Tx, status: ReleaseStatus, n: usize) -> (ReleaseId, MachineId) {
    let (id, m, d) = (ReleaseId::new(), machine(n), decided_under());
    create(conn, &new_release(id, &m, &d, Move::RequestBreakGlass), Actor::System, &AuditEvent::ReleaseCancelled)
        .await
        .unwrap();
    let reisolated = status == Reisolated;
    sqlx::query(
        "UPDATE releases SET status = $1, decided_by = 'bob', decided_at = 1, lease_owner = $2, lease_expires_at = 1,
                reisolation_action_id = $3, reisolated_at = $4 WHERE id = $5",
    )
    .bind(status.as_str())
    .bind(HOLDER)
    .bind(reisolated.then_some("isolate-1"))
    .bind(reisolated.then_some(2_i64))
    .bind(id.to_string())
    .execute(&mut **conn)
    .await
    .unwrap();
    (id, m)
}

/// A change for `mv`, with the values the fence of each move expects of [`stored`] rows.
fn change_for<'a>(mv: Move, d: &'a DecidedUnder) -> Change<'a> {
    let later = NOW.plus(Duration::from_secs(60));
    match mv {
        Move::Request | Move::RequestBreakGlass => unreachable!("creation goes through `create`"),
        Move::Approve => Change::Approve,
        Move::Reject => Change::Reject { by: "bob", comment: "not clean yet" },
        Move::Cancel => Change::Cancel { by: "alice" },
        Move::Expire => Change::Expire,
        Move::Claim => Change::Claim { claim: "worker-2/claim", lease_until: later, attempts: 0 },
        Move::Reclaim => Change::Reclaim { claim: "worker-2/claim", lease_until: later, attempts: 0 },
        Move::Dispatch => Change::Dispatch { action_id: "a-1", action_status: Some("Pending"), next_poll: later },
        Move::Retry => Change::Retry { error: "503", next_attempt: later },
        Move::Fail => Change::Fail { action_status: None, error: "refused" },
        Move::Succeed => Change::Succeed { action_status: "Succeeded" },
        Move::Reopen => Change::Reopen { decided_under: d, approvals_required: 2, expires_at: later },
        Move::ExpireApproval => Change::ExpireApproval { error: "approval expired" },
        Move::Reisolate => Change::Reisolate { action_id: "isolate-1" },
    }
}

async fn status_of(conn: &mut Conn, id: ReleaseId) -> ReleaseStatus {
    let s: String = sqlx::query_scalar("SELECT status FROM releases WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    ReleaseStatus::parse(&s).unwrap()
}

async fn audit_entries(conn: &mut Conn) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM audit_log").fetch_one(&mut *conn).await.unwrap()
}

#[tokio::test]
async fn exactly_the_moves_of_the_table_go_through_the_one_transition_path() {
    let mut conn = database().await;
    let d = decided_under();
    let mut accepted = HashSet::new();
    for mv in [Move::Request, Move::RequestBreakGlass] {
        let (id, m) = (ReleaseId::new(), machine(1000 + accepted.len()));
        let t = create(&mut conn, &new_release(id, &m, &d, mv), Actor::System, &AuditEvent::ReleaseCancelled)
            .await
            .unwrap();
        assert_eq!((t.from, t.to), (None, status_of(&mut conn, id).await), "{mv}");
        accepted.insert((None, t.to));
    }
    let mut n = 0;
    for from in ReleaseStatus::ALL {
        for mv in Move::ALL.into_iter().filter(|m| !m.allows_from(None)) {
            n += 1;
            let (id, m) = stored(&mut conn, from, n).await;
            let at = At { id, machine_id: &m, status: from, claim: mv.needs_claim().then_some(HOLDER) };
            let entries = audit_entries(&mut conn).await;
            match apply(&mut conn, &at, change_for(mv, &d), Actor::System, &AuditEvent::ReleaseCancelled, NOW).await {
                Ok(t) => {
                    assert_eq!(status_of(&mut conn, id).await, t.to, "{mv} from {from}: the row moved");
                    assert_eq!(audit_entries(&mut conn).await, entries + 1, "{mv} from {from}: one audit entry");
                    assert_eq!(t.audit_seq, entries + 1);
                    accepted.insert((Some(from), t.to));
                }
                Err(TransitionError::Illegal { .. }) => {
                    assert_eq!(status_of(&mut conn, id).await, from, "{mv} from {from}: nothing written");
                    assert_eq!(audit_entries(&mut conn).await, entries, "{mv} from {from}: nothing audited");
                }
                Err(e) => panic!("{mv} from {from}: {e}"),
            }
        }
    }
    let expected: HashSet<_> = EXPECTED.into_iter().collect();
    assert_eq!(accepted, expected, "the path accepts exactly the documented table");
    for from in ReleaseStatus::ALL {
        for to in ReleaseStatus::ALL {
            assert_eq!(from.can_become(to), expected.contains(&(Some(from), to)), "{from} -> {to}");
        }
        assert_eq!(from.can_start_as(), expected.contains(&(None, from)), "born {from}");
    }
}

#[tokio::test]
async fn a_fence_that_no_longer_matches_is_lost_and_writes_nothing() {
    let mut conn = database().await;
    let d = decided_under();
    let event = AuditEvent::ReleaseCancelled;
    // Someone else approved it after the caller read it as pending.
    let (id, m) = stored(&mut conn, Approved, 1).await;
    let at = At { id, machine_id: &m, status: Pending, claim: None };
    let before = audit_entries(&mut conn).await;
    let e = apply(&mut conn, &at, Change::Cancel { by: "alice" }, Actor::System, &event, NOW).await.unwrap_err();
    assert!(e.is_lost(), "{e}");
    assert_eq!(status_of(&mut conn, id).await, Approved);
    assert_eq!(audit_entries(&mut conn).await, before);
    // Another worker holds the claim now.
    let (id, m) = stored(&mut conn, Dispatching, 2).await;
    let at = At { id, machine_id: &m, status: Dispatching, claim: Some("worker-9/stale") };
    let before = audit_entries(&mut conn).await;
    let e = apply(&mut conn, &at, change_for(Move::Dispatch, &d), Actor::System, &event, NOW).await.unwrap_err();
    assert!(e.is_lost(), "{e}");
    assert_eq!(status_of(&mut conn, id).await, Dispatching);
    assert_eq!(audit_entries(&mut conn).await, before);
    // A worker's move that names no claim is refused before any write.
    let at = At { id, machine_id: &m, status: Dispatching, claim: None };
    let e = apply(&mut conn, &at, change_for(Move::Dispatch, &d), Actor::System, &event, NOW).await.unwrap_err();
    assert!(matches!(e, TransitionError::Unclaimed { .. }), "{e}");
    // A pending release not yet due does not expire.
    let (id, m) = stored(&mut conn, Pending, 3).await;
    let at = At { id, machine_id: &m, status: Pending, claim: None };
    let before = audit_entries(&mut conn).await;
    let early = Timestamp::from_unix_ms(999);
    let e = apply(&mut conn, &at, Change::Expire, Actor::System, &event, early).await.unwrap_err();
    assert!(e.is_lost(), "{e}");
    assert_eq!(status_of(&mut conn, id).await, Pending);
    assert_eq!(audit_entries(&mut conn).await, before);
}

#[tokio::test]
async fn a_second_open_release_for_a_machine_is_refused_at_creation() {
    let mut conn = database().await;
    let (d, m) = (decided_under(), machine(7));
    let event = AuditEvent::ReleaseCancelled;
    create(&mut conn, &new_release(ReleaseId::new(), &m, &d, Move::Request), Actor::System, &event).await.unwrap();
    let e = create(&mut conn, &new_release(ReleaseId::new(), &m, &d, Move::RequestBreakGlass), Actor::System, &event)
        .await
        .unwrap_err();
    assert!(matches!(e, TransitionError::AlreadyOpen), "{e}");
    assert_eq!(audit_entries(&mut conn).await, 1);
}
