//! Hashing and verifying the chain.
//!
//! `hash = hex(SHA-256(prev_hash_hex || "\n" || canonical))`, where `canonical` is the entry's
//! fields (`action`, `actor`, `at`, `details`, `machine_id`, `release_id`, `seq`) as JSON with
//! keys sorted at every level and no whitespace. The first entry's `prev_hash` is 64 zeros.

use crate::canonical::canonical_json;
use crate::clock::Timestamp;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub seq: i64,
    /// Hashed as milliseconds since the Unix epoch.
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub release_id: Option<String>,
    pub machine_id: Option<String>,
    /// The seq of the previous entry about the same release; `None` for its first entry and for
    /// entries about no release. In the leaf data (so in the Merkle tree), not in the chain hash.
    pub release_prev_seq: Option<i64>,
    /// Canonical JSON text.
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

/// The hash an entry must carry, computed from its content and `prev_hash`.
/// Fails only when `details` is not JSON, which for a stored entry means it was altered.
pub fn entry_hash(entry: &AuditEntry) -> Result<String, serde_json::Error> {
    let details: Value = serde_json::from_str(&entry.details)?;
    let body = serde_json::json!({
        "seq": entry.seq,
        "at": entry.at.unix_ms(),
        "actor": entry.actor,
        "action": entry.action,
        "release_id": entry.release_id,
        "machine_id": entry.machine_id,
        "details": details,
    });
    let mut h = Sha256::new();
    h.update(entry.prev_hash.as_bytes());
    h.update(b"\n");
    h.update(canonical_json(&body).as_bytes());
    Ok(hex::encode(h.finalize()))
}

/// The outcome of checking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum VerifyReport {
    Intact { ok: bool, entries: i64, head: String },
    Broken { ok: bool, first_bad_seq: i64, reason: &'static str, message: String, entries_checked: i64 },
}

impl VerifyReport {
    pub fn is_ok(&self) -> bool {
        matches!(self, VerifyReport::Intact { .. })
    }
}

/// Incremental verifier: feed entries in `seq` order, then call [`ChainVerifier::finish`].
#[derive(Debug)]
pub(super) struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
    broken: Option<VerifyReport>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self { expected_seq: 1, prev_hash: GENESIS_HASH.to_string(), broken: None }
    }
}

impl ChainVerifier {
    /// Checks one entry; after the first bad one, later entries are ignored.
    pub(super) fn push(&mut self, e: &AuditEntry) {
        if self.broken.is_some() {
            return;
        }
        let checked = self.expected_seq - 1;
        let fail = |reason: &'static str, message: String| VerifyReport::Broken {
            ok: false,
            first_bad_seq: e.seq.min(self.expected_seq),
            reason,
            message,
            entries_checked: checked,
        };
        if e.seq != self.expected_seq {
            self.broken = Some(fail(
                "sequence_gap",
                format!("expected entry {} but found {}: entries were removed or reordered", self.expected_seq, e.seq),
            ));
            return;
        }
        if e.prev_hash != self.prev_hash {
            self.broken = Some(fail("link_broken", format!("entry {} does not link to the entry before it", e.seq)));
            return;
        }
        match entry_hash(e) {
            Ok(h) if h == e.hash => {}
            _ => {
                self.broken = Some(fail("content_altered", format!("entry {} does not match its hash", e.seq)));
                return;
            }
        }
        self.prev_hash = e.hash.clone();
        self.expected_seq += 1;
    }

    pub(super) fn finish(self) -> VerifyReport {
        self.broken.unwrap_or(VerifyReport::Intact { ok: true, entries: self.expected_seq - 1, head: self.prev_hash })
    }
}

/// Verifies a whole chain held in memory (tests and small logs).
pub fn verify_entries<'a>(entries: impl IntoIterator<Item = &'a AuditEntry>) -> VerifyReport {
    let mut v = ChainVerifier::default();
    for e in entries {
        v.push(e);
    }
    v.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut prev = GENESIS_HASH.to_string();
        (1..=n)
            .map(|seq| {
                let mut e = AuditEntry {
                    seq,
                    at: Timestamp::from_unix_ms(1_700_000_000_000 + seq),
                    actor: "alice".into(),
                    action: "release_requested".into(),
                    release_id: Some("r".into()),
                    machine_id: None,
                    release_prev_seq: None,
                    details: canonical_json(&serde_json::json!({"b": 1, "a": [true, null]})),
                    prev_hash: prev.clone(),
                    hash: String::new(),
                };
                e.hash = entry_hash(&e).unwrap();
                prev = e.hash.clone();
                e
            })
            .collect()
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let c = chain(5);
        assert_eq!(verify_entries(&c), VerifyReport::Intact { ok: true, entries: 5, head: c[4].hash.clone() });
    }

    #[test]
    fn altered_content_is_reported_at_the_altered_entry() {
        let mut c = chain(5);
        c[2].actor = "mallory".into();
        assert!(matches!(verify_entries(&c), VerifyReport::Broken { first_bad_seq: 3, reason: "content_altered", .. }));
    }

    #[test]
    fn a_rehashed_entry_breaks_the_next_link() {
        let mut c = chain(5);
        c[1].actor = "mallory".into();
        c[1].hash = entry_hash(&c[1]).unwrap();
        assert!(matches!(verify_entries(&c), VerifyReport::Broken { first_bad_seq: 3, reason: "link_broken", .. }));
    }

    #[test]
    fn a_removed_entry_is_a_gap() {
        let mut c = chain(5);
        c.remove(1);
        assert!(matches!(verify_entries(&c), VerifyReport::Broken { first_bad_seq: 2, reason: "sequence_gap", .. }));
    }
}
