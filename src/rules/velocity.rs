//! Velocity guards: how many requests or approvals one person may make per hour.

use super::Policy;

/// True when one more event would exceed `limit`, given the events already counted in the last
/// hour (not including the new one). `None` means no guard: never over.
pub fn over_limit(events_in_last_hour: u32, limit: Option<u32>) -> bool {
    limit.is_some_and(|max| events_in_last_hour >= max)
}

impl Policy {
    /// True when a requester who made `requests_in_last_hour` requests may not make another.
    pub fn requests_over_limit(&self, requests_in_last_hour: u32) -> bool {
        over_limit(requests_in_last_hour, self.max_requests_per_requester_per_hour)
    }

    /// True when an approver who gave `approvals_in_last_hour` approvals may not give another.
    pub fn approvals_over_limit(&self, approvals_in_last_hour: u32) -> bool {
        over_limit(approvals_in_last_hour, self.max_approvals_per_approver_per_hour)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::PolicyDocument;

    #[test]
    fn the_limit_allows_exactly_that_many_events_per_hour() {
        let cases = [
            (0, None, false),
            (1_000_000, None, false),
            (0, Some(1), false),
            (1, Some(1), true),
            (2, Some(3), false),
            (3, Some(3), true),
            (4, Some(3), true),
        ];
        for (count, limit, over) in cases {
            assert_eq!(over_limit(count, limit), over, "count {count}, limit {limit:?}");
        }
    }

    #[test]
    fn the_policy_applies_each_guard_to_its_own_counter() {
        let doc = PolicyDocument {
            max_requests_per_requester_per_hour: Some(2),
            max_approvals_per_approver_per_hour: Some(5),
            ..PolicyDocument::default()
        };
        let policy = doc.validate("Release.Approve").unwrap();
        assert!(!policy.requests_over_limit(1));
        assert!(policy.requests_over_limit(2));
        assert!(!policy.approvals_over_limit(4));
        assert!(policy.approvals_over_limit(5));
        let open = PolicyDocument::default().validate("Release.Approve").unwrap();
        assert!(!open.requests_over_limit(u32::MAX));
        assert!(!open.approvals_over_limit(u32::MAX));
    }
}
