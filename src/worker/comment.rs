//! The Comment sent to MDE: it says who asked and who approved, and carries a marker that ties
//! the MDE action back to the release (how a resent release finds the action it already made).

use crate::domain::ReleaseId;

/// MDE documents no limit; stay well inside what its portal shows comfortably.
const MAX_CHARS: usize = 1000;

/// `[dualkey:<id>] Released by dualkey two-person rule. Requested by alice; approved by bob,
/// carol. Reason: <comment>`, cut to 1000 characters (the marker always survives).
pub fn build(id: ReleaseId, requester: &str, approvers: &[String], reason: &str) -> String {
    let head = format!(
        "{} Released by dualkey two-person rule. Requested by {requester}; approved by {}. Reason: ",
        id.marker(),
        approvers.join(", ")
    );
    let room = MAX_CHARS.saturating_sub(head.chars().count());
    let reason: String = reason.chars().map(|c| if c == '\n' { ' ' } else { c }).take(room).collect();
    let mut out = head;
    out.push_str(&reason);
    out.chars().take(MAX_CHARS).collect()
}

/// True when an MDE action's comment names this release.
pub(super) fn names(comment: Option<&str>, id: ReleaseId) -> bool {
    comment.is_some_and(|c| c.contains(&id.marker()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comment_names_the_release_the_people_and_the_reason() {
        let id = ReleaseId::new();
        let c = build(id, "alice", &["bob".into(), "carol".into()], "Reimaged\nand clean");
        assert!(c.starts_with(&format!("[dualkey:{id}]")));
        assert!(c.contains("Requested by alice; approved by bob, carol."));
        assert!(c.ends_with("Reason: Reimaged and clean"));
        assert!(names(Some(&c), id));
        assert!(!names(Some(&c), ReleaseId::new()));
        assert!(!names(None, id));
    }

    #[test]
    fn a_long_reason_is_cut_but_the_marker_survives() {
        let id = ReleaseId::new();
        let c = build(id, "alice", &["bob".into()], &"x".repeat(5000));
        assert_eq!(c.chars().count(), 1000);
        assert!(names(Some(&c), id));
    }
}
