use super::*;

const T0: i64 = 1_772_530_200_000;

fn at(s: i64) -> Timestamp {
    Timestamp::from_unix_ms(T0 + s * 1000)
}

fn facts(status: &str) -> ReleaseFacts {
    ReleaseFacts {
        seq: 1,
        id: "0195f0c2-0000-7000-8000-000000000001".into(),
        machine_id: "ab".repeat(20),
        device_name: Some("host.contoso.com".into()),
        requested_by: "alice".into(),
        requested_at: at(0),
        expires_at: at(3600),
        comment: "reimaged and scanned clean".into(),
        ticket: None,
        status: status.into(),
        policy_rule: Some("default".into()),
        policy_hash: Some("f".repeat(64)),
        approvals_required: 2,
        approved_at: None,
        decided_by: None,
        decided_at: None,
        decision_comment: None,
        dispatched_at: None,
        finished_at: None,
        break_glass: 0,
        ratified_by: None,
        ratified_at: None,
        reisolation_action_id: None,
        mde_action_id: None,
        mde_action_status: None,
    }
}

fn entry(action: &str, actor: &str, s: i64) -> TrailEntry {
    TrailEntry { release_id: String::new(), at: at(s), actor: actor.into(), action: action.into() }
}

fn approval(who: &str, roles: &[&str], s: i64) -> Approval {
    Approval { approver: who.into(), comment: None, at: at(s), roles: roles.iter().map(|r| r.to_string()).collect() }
}

#[test]
fn the_json_keys_are_the_csv_header_in_the_same_order() {
    let row = Row::new(facts("pending"), vec![], &[]);
    let json = serde_json::to_string(&row).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value.as_object().unwrap().len(), Row::COLUMNS.len());
    let positions: Vec<usize> =
        Row::COLUMNS.iter().map(|c| json.find(&format!("\"{c}\":")).unwrap_or_else(|| panic!("no {c}"))).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{json}");
    assert_eq!(row.cells().len(), Row::COLUMNS.len());
}

#[test]
fn an_approved_release_was_decided_when_quorum_was_reached_by_the_last_approver() {
    let mut f = facts("succeeded");
    (f.approved_at, f.dispatched_at, f.finished_at) = (Some(at(20)), Some(at(21)), Some(at(30)));
    let approvals =
        vec![approval("bob", &["Release.Approve"], 10), approval("carol", &["Release.Approve", "Tier0.Owner"], 20)];
    let row = Row::new(f, approvals, &[entry("release_approved", "carol", 20)]);
    assert_eq!((row.decided_at, row.decided_by.as_deref()), (Some(at(20)), Some("carol")));
    assert_eq!(row.approvers_cell(), "bob (Release.Approve); carol (Release.Approve, Tier0.Owner)");
    assert_eq!((row.dispatched_at, row.finished_at), (Some(at(21)), Some(at(30))));
}

#[test]
fn a_rejection_or_cancellation_is_decided_by_whoever_the_table_names() {
    let mut f = facts("rejected");
    (f.decided_at, f.decided_by, f.decision_comment) = (Some(at(5)), Some("bob".into()), Some("no".into()));
    let row = Row::new(f, vec![], &[]);
    assert_eq!((row.decided_at, row.decided_by.as_deref()), (Some(at(5)), Some("bob")));
    assert_eq!(row.cells()[14], "no");
}

#[test]
fn a_pending_release_that_expired_was_decided_by_the_expiry_entry() {
    let row = Row::new(facts("expired"), vec![], &[entry("release_expired", "system:dualkey", 3601)]);
    assert_eq!((row.decided_at, row.decided_by.as_deref()), (Some(at(3601)), Some("system:dualkey")));
    assert_eq!(row.finished_at, None);
    let pending = Row::new(facts("pending"), vec![], &[]);
    assert_eq!((pending.decided_at, pending.decided_by), (None, None));
}

#[test]
fn an_approval_that_expired_before_dispatch_keeps_its_decision_and_ends_at_the_expiry() {
    let mut f = facts("expired");
    (f.approved_at, f.finished_at) = (Some(at(10)), Some(at(900)));
    let entries = [entry("release_approved", "bob", 10), entry("approval_expired", "system:dualkey", 900)];
    let row = Row::new(f, vec![approval("bob", &["Release.Approve"], 10)], &entries);
    assert_eq!((row.decided_at, row.decided_by.as_deref()), (Some(at(10)), Some("bob")));
    assert_eq!((row.finished_at, row.outcome.as_str()), (Some(at(900)), "expired"));
}

#[test]
fn a_release_approved_again_after_reopening_was_decided_by_its_second_quorum() {
    let mut f = facts("approved");
    f.approved_at = Some(at(50));
    let entries = [entry("release_approved", "bob", 10), entry("release_approved", "erin", 50)];
    assert_eq!(Row::new(f, vec![], &entries).decided_by.as_deref(), Some("erin"));
}

#[test]
fn times_missing_from_the_table_come_from_the_audit_trail() {
    let mut f = facts("failed");
    f.approved_at = Some(at(10));
    let entries = [entry("mde_action_adopted", "system:dualkey", 12), entry("release_failed", "system:dualkey", 40)];
    let row = Row::new(f, vec![], &entries);
    assert_eq!((row.dispatched_at, row.finished_at), (Some(at(12)), Some(at(40))));
}

#[test]
fn a_break_glass_release_was_decided_by_its_requester_and_shows_its_ratification() {
    let mut f = facts("succeeded");
    (f.approved_at, f.break_glass, f.ratified_by, f.ratified_at) = (Some(at(0)), 1, Some("bob".into()), Some(at(60)));
    let row = Row::new(f, vec![approval("bob", &[], 60)], &[entry("break_glass_released", "alice", 0)]);
    assert_eq!((row.decided_at, row.decided_by.as_deref()), (Some(at(0)), Some("alice")));
    let cells = row.cells();
    assert_eq!((cells[11].as_str(), cells[17].as_str(), cells[18].as_str()), ("bob", "true", "bob"));
    assert_eq!(cells[19], at(60).rfc3339());
}
