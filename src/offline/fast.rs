//! Reading an export's lines fast: a borrowed parse of each leaf line, its chain hash computed
//! from the line's own (canonical) `details` text, and its leaf hash, in parallel over the
//! machine's cores. The checks that need order (links, the tree) run after, in one pass.

use crate::audit::{AuditEntry, entry_hash, parse_leaf_line};
use crate::tlog::{Hash, leaf_hash};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use std::borrow::Cow;

#[derive(Deserialize)]
struct LeafRef<'a> {
    seq: i64,
    #[serde(borrow)]
    at: Cow<'a, str>,
    #[serde(borrow)]
    actor: Cow<'a, str>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    release_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    machine_id: Option<Cow<'a, str>>,
    release_prev_seq: Option<i64>,
    #[serde(borrow)]
    details: &'a RawValue,
    #[serde(borrow)]
    prev_hash: Cow<'a, str>,
    #[serde(borrow)]
    hash: Cow<'a, str>,
}

/// What the ordered pass needs of one line.
pub(super) struct Read {
    pub(super) seq: i64,
    pub(super) release_id: Option<String>,
    pub(super) release_prev_seq: Option<i64>,
    pub(super) prev_hash: String,
    pub(super) hash: String,
    /// The line's content matches its `hash`.
    pub(super) content_ok: bool,
    pub(super) leaf: Hash,
}

fn json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// The chain hash of a line, built as `entry_hash` builds it but from the line's `details` text
/// as it stands (exports write it canonical). `None` when the line cannot give one this way.
fn quick_hash(l: &LeafRef<'_>) -> Option<String> {
    let ms = crate::clock::Timestamp::parse_rfc3339(&l.at)?.unix_ms();
    let mut body = Vec::with_capacity(256 + l.details.get().len());
    body.extend_from_slice(b"{\"action\":");
    json_str(&mut body, &l.action);
    body.extend_from_slice(b",\"actor\":");
    json_str(&mut body, &l.actor);
    body.extend_from_slice(format!(",\"at\":{ms},\"details\":").as_bytes());
    body.extend_from_slice(l.details.get().as_bytes());
    body.extend_from_slice(b",\"machine_id\":");
    match &l.machine_id {
        Some(m) => json_str(&mut body, m),
        None => body.extend_from_slice(b"null"),
    }
    body.extend_from_slice(b",\"release_id\":");
    match &l.release_id {
        Some(r) => json_str(&mut body, r),
        None => body.extend_from_slice(b"null"),
    }
    body.extend_from_slice(format!(",\"seq\":{}}}", l.seq).as_bytes());
    let mut h = Sha256::new();
    h.update(l.prev_hash.as_bytes());
    h.update(b"\n");
    h.update(&body);
    Some(hex::encode(h.finalize()))
}

fn read_one(line: &str) -> Result<Read, String> {
    let leaf = leaf_hash(line.as_bytes());
    let l: LeafRef<'_> = match serde_json::from_str(line) {
        Ok(l) => l,
        // Not the shape exports write: the strict reader says precisely what is wrong.
        Err(_) => return slow(line, leaf),
    };
    if !l.details.get().starts_with('{') {
        return Err("field `details` is missing or has the wrong type".into());
    }
    let content_ok = match quick_hash(&l) {
        Some(h) if h == l.hash => true,
        // Details not in the chain's canonical form, or altered: decide the slow, exact way.
        _ => return slow(line, leaf),
    };
    Ok(Read {
        seq: l.seq,
        release_id: l.release_id.map(Cow::into_owned),
        release_prev_seq: l.release_prev_seq,
        prev_hash: l.prev_hash.into_owned(),
        hash: l.hash.into_owned(),
        content_ok,
        leaf,
    })
}

fn slow(line: &str, leaf: Hash) -> Result<Read, String> {
    let e: AuditEntry = parse_leaf_line(line).map_err(|e| e.to_string())?;
    let content_ok = matches!(entry_hash(&e), Ok(h) if h == e.hash);
    Ok(Read {
        seq: e.seq,
        release_id: e.release_id,
        release_prev_seq: e.release_prev_seq,
        prev_hash: e.prev_hash,
        hash: e.hash,
        content_ok,
        leaf,
    })
}

/// Reads every line, on all cores, keeping their order.
pub(super) fn read_all(lines: &[&str]) -> Vec<Result<Read, String>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
    let chunk = lines.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> =
            lines.chunks(chunk).map(|c| s.spawn(move || c.iter().map(|l| read_one(l)).collect::<Vec<_>>())).collect();
        handles.into_iter().flat_map(|h| h.join().expect("a reader thread panicked")).collect()
    })
}
