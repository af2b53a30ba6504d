use super::*;

fn slot(role: &str, count: u32) -> Slot {
    Slot { role: role.into(), count }
}

fn who(id: &str, roles: &[&str]) -> Approver {
    Approver::new(id, roles.iter().copied())
}

const A: &str = "Release.Approve";
const T: &str = "Tier0.Owner";

fn filled(q: &Quorum) -> Vec<Vec<&str>> {
    q.slots().iter().map(|s| s.filled_by.iter().map(String::as_str).collect()).collect()
}

#[test]
fn the_assignment_fills_the_most_seats_for_each_case() {
    let two = [slot(A, 1), slot(T, 1)];
    type Case<'a> = (&'a str, Vec<Approver>, Vec<Vec<&'a str>>, bool);
    let cases: Vec<Case> = vec![
        ("nobody yet", vec![], vec![vec![], vec![]], false),
        ("one approver with each role", vec![who("a", &[A]), who("t", &[T])], vec![vec!["a"], vec!["t"]], true),
        (
            "one person holding both roles fills only one slot",
            vec![who("both", &[A, T])],
            vec![vec!["both"], vec![]],
            false,
        ),
        (
            "someone holding both roles moves to the slot the other cannot fill",
            vec![who("both", &[A, T]), who("a", &[A])],
            vec![vec!["a"], vec!["both"]],
            true,
        ),
        (
            "two people with the same single role fill one slot",
            vec![who("a1", &[A]), who("a2", &[A])],
            vec![vec!["a1"], vec![]],
            false,
        ),
        (
            "the requester fills nothing whatever they hold",
            vec![who("req", &[A, T]), who("t", &[T])],
            vec![vec![], vec!["t"]],
            false,
        ),
        ("a repeated approval counts once", vec![who("a", &[A]), who("a", &[A, T])], vec![vec!["a"], vec![]], false),
        (
            "roles are compared exactly",
            vec![who("a", &["release.approve"]), who("t", &[T])],
            vec![vec![], vec!["t"]],
            false,
        ),
        (
            "someone with neither role fills nothing",
            vec![who("x", &["Other"]), who("a", &[A])],
            vec![vec!["a"], vec![]],
            false,
        ),
    ];
    for (what, approvers, expected, complete) in cases {
        let q = Quorum::compute(&two, "req", &approvers);
        assert_eq!(filled(&q), expected, "{what}");
        assert_eq!(q.is_complete(), complete, "{what}");
    }
}

#[test]
fn a_slot_with_count_two_needs_two_distinct_people() {
    let q = Quorum::compute(&[slot(A, 2)], "req", &[who("a", &[A])]);
    assert_eq!(q.missing(), vec![slot(A, 1)]);
    assert!(!q.is_complete());
    let q = Quorum::compute(&[slot(A, 2)], "req", &[who("a", &[A]), who("b", &[A])]);
    assert!(q.is_complete());
    assert_eq!(q.filled(), 2);
    assert!(q.missing().is_empty());
}

#[test]
fn earlier_approvers_are_kept_when_later_ones_could_fill_the_same_seat() {
    let q = Quorum::compute(&[slot(A, 1)], "req", &[who("first", &[A]), who("second", &[A]), who("third", &[A])]);
    assert_eq!(filled(&q), vec![vec!["first"]]);
    assert_eq!(q.unused(), ["second", "third"]);
}

#[test]
fn a_chain_of_moves_is_found_when_one_is_needed() {
    // x holds A and T, y holds T and O, z holds only A: the best assignment is z->A, x->T, y->O.
    let slots = [slot(A, 1), slot(T, 1), slot("Ops", 1)];
    let q = Quorum::compute(&slots, "req", &[who("x", &[A, T]), who("y", &[T, "Ops"]), who("z", &[A])]);
    assert_eq!(filled(&q), vec![vec!["z"], vec!["x"], vec!["y"]]);
    assert!(q.is_complete());
}

#[test]
fn within_a_slot_people_are_listed_in_approval_order() {
    let q = Quorum::compute(&[slot(A, 3)], "req", &[who("c", &[A]), who("a", &[A]), who("b", &[A])]);
    assert_eq!(filled(&q), vec![vec!["c", "a", "b"]]);
}

#[test]
fn an_empty_requirement_is_never_complete() {
    let q = Quorum::compute(&[], "req", &[who("a", &[A])]);
    assert!(!q.is_complete());
    assert_eq!(q.unused(), ["a"]);
}

#[test]
fn a_new_approval_is_accepted_only_when_it_fills_another_seat() {
    let two = [slot(A, 1), slot(T, 1)];
    let with_both = Quorum::compute(&two, "req", &[who("both", &[A, T])]);
    let with_a = Quorum::compute(&two, "req", &[who("a", &[A])]);
    let done = Quorum::compute(&two, "req", &[who("a", &[A]), who("t", &[T])]);
    let cases: Vec<(&str, &Quorum, Approver, Result<(), SeatRefusal>)> = vec![
        ("a holder of the open role", &with_a, who("t", &[T]), Ok(())),
        ("a second holder of the filled role", &with_a, who("a2", &[A]), Err(SeatRefusal::NoOpenSeat)),
        ("someone with no needed role", &with_a, who("x", &["Other"]), Err(SeatRefusal::NoOpenSeat)),
        ("a holder of the filled role, by moving the both-roles approver", &with_both, who("a", &[A]), Ok(())),
        ("the requester", &with_a, who("req", &[A, T]), Err(SeatRefusal::Requester)),
        ("someone who already approved", &with_a, who("a", &[T]), Err(SeatRefusal::AlreadyApproved)),
        ("anyone once complete", &done, who("t2", &[T]), Err(SeatRefusal::Complete)),
    ];
    for (what, q, approver, expected) in cases {
        assert_eq!(q.check_add(&approver), expected, "{what}");
        assert_eq!(q.can_add(&approver), expected.is_ok(), "{what}");
    }
}

#[test]
fn slot_states_serialise_as_role_count_and_filled_by() {
    let q = Quorum::compute(&[slot(T, 2)], "req", &[who("t", &[T])]);
    let json = serde_json::to_value(q.slots()).unwrap();
    assert_eq!(json, serde_json::json!([{ "role": T, "count": 2, "filled_by": ["t"] }]));
    assert_eq!(q.slots()[0].open(), 1);
}

#[test]
fn look_alike_identities_are_one_person_for_seats_and_for_the_requester() {
    let two = [slot(A, 2)];
    let q = Quorum::compute(&two, "alice", &[who("bob", &[A]), who("BOB", &[A]), who("\u{430}lice", &[A])]);
    assert_eq!(filled(&q), vec![vec!["bob"]], "BOB is bob, аlice is the requester");
    assert!(!q.is_complete());
    assert_eq!(q.check_add(&who("ｂｏｂ", &[A])), Err(SeatRefusal::AlreadyApproved));
    assert_eq!(q.check_add(&who("ALICE", &[A])), Err(SeatRefusal::Requester));
    assert_eq!(q.check_add(&who("carol", &[A])), Ok(()));
}
