//! `dualkey audit verify --file EXPORT --key KEY [--checkpoint OLD]`.

use super::fast::Read;
use super::{Failure, check_kept, fail, hashes, open_checkpoint};
use crate::audit::GENESIS_HASH;
use crate::tlog::{self, Hash, NoteVerifier, TreeBuilder};

/// Lines parsed and hashed in parallel at a time.
const READ_CHUNK: usize = 1 << 16;
use serde_json::Value;
use std::collections::HashMap;

/// Checks an export: the trailer's checkpoint is signed by `key`; every line is an entry whose
/// content matches its hash, linked to the line before; the lines are the whole tree the
/// checkpoint signs (an export from entry 1) or each has a valid inclusion proof; and, with
/// `kept`, the log only grew since that checkpoint. Returns what it checked, in plain words.
pub(crate) fn verify_export(text: &str, key: &NoteVerifier, kept: Option<&str>) -> Result<Vec<String>, Failure> {
    let mut lines: Vec<&str> = text.split('\n').collect();
    while lines.last() == Some(&"") {
        lines.pop();
    }
    let trailer_line = lines.pop().ok_or_else(|| fail("format", "the file is empty"))?;
    let trailer: Value = serde_json::from_str(trailer_line)
        .ok()
        .filter(|t: &Value| t.get("checkpoint").is_some())
        .ok_or_else(|| fail("trailer_missing", "the last line is not the export's trailer: the export was cut"))?;
    let note = trailer["checkpoint"].as_str().ok_or_else(|| fail("format", "the trailer's checkpoint is not text"))?;
    let cp = open_checkpoint(note, key, "the export's")?;
    let proofs = trailer.get("proofs").and_then(Value::as_object);
    let kept = kept.map(|k| open_checkpoint(k, key, "your")).transpose()?;

    let mut builder = TreeBuilder::new();
    let mut kept_root: Option<Hash> = None;
    let mut prev: Option<Read> = None;
    let mut last_of_release: HashMap<String, i64> = HashMap::new();
    let mut first_seq = None;
    // In chunks: parsed and hashed on all cores, then checked in order (bounded memory).
    for (c, chunk) in lines.chunks(READ_CHUNK).enumerate() {
        for (i, read) in super::fast::read_all(chunk).into_iter().enumerate() {
            let e = read.map_err(|err| {
                fail("format", format!("line {} is not an audit entry: {err}", c * READ_CHUNK + i + 1))
            })?;
            let first = *first_seq.get_or_insert(e.seq);
            check_entry(&e, prev.as_ref(), first, &mut last_of_release)?;
            match proofs {
                None => {
                    builder.push(e.leaf);
                    if kept.as_ref().is_some_and(|k| k.size == builder.size()) {
                        kept_root = Some(builder.root());
                    }
                }
                Some(proofs) => {
                    let proof = proofs
                        .get(&e.seq.to_string())
                        .and_then(Value::as_array)
                        .ok_or_else(|| fail("inclusion_proof", format!("entry {} has no inclusion proof", e.seq)))?;
                    let proof = hashes(proof, "an inclusion proof")?;
                    tlog::verify_inclusion((e.seq - 1) as u64, cp.size, &e.leaf, &proof, &cp.root)
                        .map_err(|err| fail("inclusion_proof", format!("entry {}: {err}", e.seq)))?;
                }
            }
            prev = Some(e);
        }
    }
    let (first, last) = (first_seq.unwrap_or(0), prev.as_ref().map_or(0, |e| e.seq));
    let mut report = vec![format!("checkpoint: log `{}`, {} entries, signed by {}", cp.origin, cp.size, key.name())];
    if proofs.is_none() {
        if first > 1 {
            return Err(fail("entry_missing", format!("the export starts at entry {first} and carries no proofs")));
        }
        if builder.size() != cp.size {
            return Err(fail(
                "entry_missing",
                format!("the checkpoint signs {} entries but the export holds {}", cp.size, builder.size()),
            ));
        }
        if builder.root() != cp.root {
            return Err(fail("tree_root", "the entries do not hash to the checkpoint's root"));
        }
        report.push(format!("entries 1..{last}: each matches its hash, each links to the one before, and together they hash to the checkpoint's root"));
    } else {
        report.push(format!(
            "entries {first}..{last}: each matches its hash, links to the one before, and is in the checkpoint's tree"
        ));
    }
    if let Some(k) = &kept {
        let proof = trailer
            .get("consistency")
            .map(|c| -> Result<(u64, Vec<Hash>), Failure> {
                let from = c.get("from").and_then(Value::as_u64).unwrap_or(0);
                Ok((
                    from,
                    hashes(
                        c.get("hashes").and_then(Value::as_array).map_or(&[][..], Vec::as_slice),
                        "the consistency proof",
                    )?,
                ))
            })
            .transpose()?;
        report.push(match (kept_root, proofs) {
            // A whole export holds the kept tree itself: compare roots directly.
            (Some(root), None) if root != k.root => {
                return Err(fail(
                    "consistency",
                    format!(
                        "the first {} entries no longer hash to your checkpoint's root: the history was rewritten",
                        k.size
                    ),
                ));
            }
            (Some(_), None) => {
                super::same_log(k, &cp)?;
                format!("consistent with your checkpoint of {} entries: the log only grew since", k.size)
            }
            _ => check_kept(k, &cp, proof)?,
        });
    }
    Ok(report)
}

/// The checks of one entry against the one before it in the file.
fn check_entry(
    e: &Read,
    prev: Option<&Read>,
    first: i64,
    last_of_release: &mut HashMap<String, i64>,
) -> Result<(), Failure> {
    if let Some(p) = prev {
        if e.seq != p.seq + 1 {
            return Err(fail(
                "entry_missing",
                format!("entry {} is missing (the file goes from {} to {})", p.seq + 1, p.seq, e.seq),
            ));
        }
        if e.prev_hash != p.hash {
            return Err(fail("chain_link", format!("entry {} does not link to entry {}", e.seq, p.seq)));
        }
    } else if e.seq == 1 && e.prev_hash != GENESIS_HASH {
        return Err(fail("chain_link", "entry 1 does not start the chain"));
    }
    if !e.content_ok {
        return Err(fail("leaf_content", format!("entry {}'s content does not match its hash", e.seq)));
    }
    if let Some(rid) = &e.release_id {
        let seen = match last_of_release.get_mut(rid.as_str()) {
            Some(last) => Some(std::mem::replace(last, e.seq)),
            None => {
                last_of_release.insert(rid.clone(), e.seq);
                None
            }
        };
        let linked = match (e.release_prev_seq, seen) {
            (p, Some(s)) => p == Some(s),
            (None, None) => true,
            // Its release's earlier entry is before the file's first line.
            (Some(p), None) => p < first,
        };
        if !linked {
            return Err(fail(
                "release_chain",
                format!(
                    "entry {} names entry {:?} as its release's previous one, which does not match",
                    e.seq, e.release_prev_seq
                ),
            ));
        }
    }
    Ok(())
}
