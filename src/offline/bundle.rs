//! `dualkey evidence verify FILE --key KEY [--checkpoint OLD]`.

use super::{Failure, check_kept, fail, hashes, open_checkpoint, story};
use crate::audit::{AuditEntry, entry_hash, parse_leaf_line};
use crate::tlog::{self, NoteVerifier};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Checks an evidence bundle and tells the release's story. Fails, naming what, when the
/// checkpoint is not signed by `key`, an entry's content does not match its hash, an entry is
/// not in the checkpoint's tree, one of the release's entries is missing, the policy document
/// does not match its hash, or (with `kept`) the log did not only grow since that checkpoint.
pub(crate) fn verify_bundle(text: &str, key: &NoteVerifier, kept: Option<&str>) -> Result<Vec<String>, Failure> {
    let b: Value = serde_json::from_str(text).map_err(|e| fail("format", format!("not a JSON document: {e}")))?;
    if b.get("format").and_then(Value::as_str) != Some(crate::service::evidence::FORMAT) {
        return Err(fail("format", format!("not a `{}` evidence bundle", crate::service::evidence::FORMAT)));
    }
    let note = b["checkpoint"].as_str().ok_or_else(|| fail("format", "the bundle has no checkpoint"))?;
    let cp = open_checkpoint(note, key, "the bundle's")?;
    let release_id = b["release"]["id"].as_str().ok_or_else(|| fail("format", "the bundle names no release"))?;
    let lines =
        b["entries"].as_array().filter(|l| !l.is_empty()).ok_or_else(|| fail("format", "the bundle has no entries"))?;
    let mut entries: Vec<AuditEntry> = Vec::with_capacity(lines.len());
    for line in lines {
        let line = line.as_str().ok_or_else(|| fail("format", "an entry is not a text line"))?;
        let e =
            parse_leaf_line(line).map_err(|err| fail("format", format!("an entry is not an audit entry: {err}")))?;
        if !matches!(entry_hash(&e), Ok(h) if h == e.hash) {
            return Err(fail("leaf_content", format!("entry {}'s content does not match its hash", e.seq)));
        }
        if e.release_id.as_deref() != Some(release_id) {
            return Err(fail("format", format!("entry {} is not about release {release_id}", e.seq)));
        }
        let proof = b["proofs"][e.seq.to_string()]
            .as_array()
            .ok_or_else(|| fail("inclusion_proof", format!("entry {} has no inclusion proof", e.seq)))?;
        let proof = hashes(proof, "an inclusion proof")?;
        tlog::verify_inclusion((e.seq - 1) as u64, cp.size, &tlog::leaf_hash(line.as_bytes()), &proof, &cp.root)
            .map_err(|err| fail("inclusion_proof", format!("entry {}: {err}", e.seq)))?;
        let expected_prev = entries.last().map(|p| p.seq);
        if e.release_prev_seq != expected_prev {
            return Err(fail(
                "entry_missing",
                match e.release_prev_seq {
                    Some(p) => {
                        format!("entry {} follows entry {p} of this release, which the bundle does not hold", e.seq)
                    }
                    None => {
                        format!("entry {} claims to be the release's first, after entry {:?}", e.seq, expected_prev)
                    }
                },
            ));
        }
        entries.push(e);
    }
    let mut report = vec![
        format!("checkpoint: log `{}`, {} entries, signed by {}", cp.origin, cp.size, key.name()),
        format!(
            "release {release_id}: {} entries, each matching its hash, in the checkpoint's tree, none missing between the first and the last",
            entries.len()
        ),
    ];
    report.push(check_policy(&b["policy"], &entries)?);
    if let Some(kept) = kept {
        let kept = open_checkpoint(kept, key, "your")?;
        let proof = match b.get("consistency") {
            Some(c) => Some((
                c["from"].as_u64().unwrap_or(0),
                hashes(c["hashes"].as_array().map_or(&[][..], Vec::as_slice), "the consistency proof")?,
            )),
            None => None,
        };
        report.push(check_kept(&kept, &cp, proof)?);
    }
    report.push(String::new());
    report.extend(story::tell(&entries));
    Ok(report)
}

/// The policy document must hash to the policy hash the entries name.
fn check_policy(policy: &Value, entries: &[AuditEntry]) -> Result<String, Failure> {
    let Some(named) = crate::audit::policy_named(entries) else { return Ok("policy: no entry names one".into()) };
    if policy["hash"].as_str() != Some(named.as_str()) {
        return Err(fail("policy", format!("the entries name policy {named}, the bundle carries another")));
    }
    match &policy["document"] {
        Value::Null => Ok(format!("policy {named}: its document was not kept (in force before dualkey kept them)")),
        doc => {
            let hash = hex::encode(Sha256::digest(crate::canonical::canonical_json(doc).as_bytes()));
            if hash != named {
                return Err(fail("policy", format!("the policy document does not hash to {named}")));
            }
            Ok(format!("policy {named}: the document matches its hash"))
        }
    }
}
