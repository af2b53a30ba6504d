//! The policy's fingerprint, recorded in the audit chain and with every release.

use super::Policy;
use crate::canonical::canonical_json;
use sha2::{Digest, Sha256};

impl Policy {
    /// Lower-case hex SHA-256 of the validated policy as canonical JSON (keys sorted, no
    /// whitespace, durations in milliseconds, match values sorted). The same for any two files
    /// that differ only in layout, key order, comments or the order of values within a match
    /// list; different when any rule, role, count, lifetime, guard or break-glass setting
    /// differs, or when rules are reordered (the first match wins, so order matters).
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical().as_bytes()))
    }

    /// The canonical JSON document the hash is taken over (kept with the trail, so evidence can
    /// carry the policy a release was decided under).
    pub fn canonical(&self) -> String {
        // Serialising plain structs of strings, numbers and vectors cannot fail.
        let value = serde_json::to_value(self).expect("a Policy serialises to JSON");
        canonical_json(&value)
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::validate_tests::load;

    const BASE: &str = r#"
[policy]
request_ttl = "24h"
[[policy.rules]]
name = "tier0"
match = { rbac_groups = ["Domain Controllers"], tags = ["crown-jewel", "tier0"] }
require = [ { role = "Release.Approve", count = 1 }, { role = "Tier0.Owner", count = 1 } ]
exclude_isolator = true
[[policy.rules]]
name = "high-risk"
match = { risk_scores = ["High"] }
deny = "Close the incident first"
"#;

    fn hash(text: &str) -> String {
        load(text).unwrap().hash()
    }

    #[test]
    fn the_hash_is_sha256_hex() {
        let h = hash(BASE);
        assert_eq!(h.len(), 64);
        assert!(h.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')));
    }

    #[test]
    fn layout_key_order_comments_and_match_value_order_do_not_change_the_hash() {
        let same = r#"
# reordered and reformatted
[policy]
request_ttl = "1day"   # the same duration, written differently

[[policy.rules]]
exclude_isolator = true
require = [{ role = "Release.Approve", count = 1 }, { role = "Tier0.Owner", count = 1 }]
match = { tags = ["tier0", "crown-jewel"], rbac_groups = ["Domain Controllers"] }
name = "tier0"

[[policy.rules]]
deny = "Close the incident first"
name = "high-risk"
match = { risk_scores = ["high"] }
"#;
        assert_eq!(hash(same), hash(BASE));
    }

    #[test]
    fn every_semantic_change_changes_the_hash() {
        let base = hash(BASE);
        let changes = [
            ("approvals_required", BASE.replace("[policy]\n", "[policy]\napprovals_required = 2\n")),
            ("request_ttl", BASE.replace("\"24h\"", "\"12h\"")),
            ("approval_ttl", BASE.replace("[policy]\n", "[policy]\napproval_ttl = \"1h\"\n")),
            ("min_comment_len", BASE.replace("[policy]\n", "[policy]\nmin_comment_len = 11\n")),
            ("require_ticket", BASE.replace("[policy]\n", "[policy]\nrequire_ticket = true\n")),
            ("guard", BASE.replace("[policy]\n", "[policy]\nmax_approvals_per_approver_per_hour = 9\n")),
            ("match value", BASE.replace("\"tier0\"]", "\"tier1\"]")),
            ("match key", BASE.replace("tags = [", "computer_dns_names = [")),
            ("role", BASE.replace("Tier0.Owner", "Tier0.Admin")),
            ("count", BASE.replace("\"Tier0.Owner\", count = 1", "\"Tier0.Owner\", count = 2")),
            ("exclude_isolator", BASE.replace("exclude_isolator = true", "exclude_isolator = false")),
            ("deny reason", BASE.replace("Close the incident first", "Close the incident")),
            ("rule name", BASE.replace("\"high-risk\"", "\"risky\"")),
            ("break-glass", format!("{BASE}[policy.break_glass]\nenabled = true\n")),
        ];
        let off = format!("{BASE}[policy.break_glass]\nenabled = false\nratify_within = \"2h\"\n");
        assert_eq!(hash(&off), base, "a disabled break-glass block decides nothing");
        for (what, text) in changes {
            assert_ne!(hash(&text), base, "{what}");
        }
        let swapped = BASE.split("[[policy.rules]]").collect::<Vec<_>>();
        let reordered = format!("{}[[policy.rules]]{}[[policy.rules]]{}", swapped[0], swapped[2], swapped[1]);
        assert_ne!(hash(&reordered), base, "rule order");
        let t: toml::Table = toml::from_str(BASE).unwrap();
        let other_role =
            crate::rules::PolicyDocument::from_toml(t["policy"].clone()).unwrap().validate("Release.Approver");
        assert_ne!(other_role.unwrap().hash(), base, "approver role");
    }
}
