//! The host-side check of the Merkle tree (`dualkey audit verify`): rebuild it from the
//! entries, compare every stored node, and check every stored checkpoint's root and signature.

use super::tree::leaf_hash;
use crate::db;
use crate::tlog::{Checkpoint, Hash, NodeId, NoteVerifier, TreeBuilder};
use base64::Engine;
use serde::Serialize;
use std::collections::BTreeMap;

/// What the tree check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeReport {
    pub ok: bool,
    pub entries: u64,
    /// Base64 root of the rebuilt tree.
    pub root: String,
    pub checkpoints_checked: u64,
    /// Whether signatures were checked (a key was configured or given).
    pub signatures_checked: bool,
    /// The first problem, in plain words.
    pub problem: Option<String>,
}

const PAGE: i64 = 1000;

/// Rebuilds the tree page by page (bounded memory) and compares it with what is stored.
pub(crate) async fn verify_tree(database: &db::Db, key: Option<&NoteVerifier>) -> Result<TreeReport, sqlx::Error> {
    let mut conn = database.reader().await?;
    let mut builder = TreeBuilder::new();
    let mut checkpoints = db::checkpoints::page(&mut conn, 0, i64::MAX).await?.into_iter().peekable();
    let mut checked = 0;
    let mut after = 0;
    let report = |problem: Option<String>, b: &TreeBuilder, checked| TreeReport {
        ok: problem.is_none(),
        entries: b.size(),
        root: base64::engine::general_purpose::STANDARD.encode(b.root()),
        checkpoints_checked: checked,
        signatures_checked: key.is_some(),
        problem,
    };
    loop {
        let page = db::audit::list(&mut conn, after, PAGE, None).await?;
        let mut emitted: BTreeMap<u8, Vec<(u64, Hash)>> = BTreeMap::new();
        for e in &page {
            for (id, hash) in builder.push(leaf_hash(e)) {
                emitted.entry(id.level).or_default().push((id.index, hash));
            }
            while let Some(cp) = checkpoints.next_if(|c| c.size as u64 == builder.size()) {
                if let Some(problem) = check_checkpoint(&cp, builder.root(), key) {
                    return Ok(report(Some(problem), &builder, checked));
                }
                checked += 1;
            }
        }
        for (level, nodes) in emitted {
            let stored = db::tree::level_page(&mut conn, level, nodes[0].0, nodes.len() as i64).await?;
            if let Some(((idx, _), _)) =
                nodes.iter().zip(stored.iter().map(Some).chain(std::iter::repeat(None))).find(|(n, s)| Some(*n) != *s)
            {
                let id = NodeId { level, index: *idx };
                let problem = format!(
                    "stored tree node ({}, {}) differs from the tree rebuilt from the entries",
                    id.level, id.index
                );
                return Ok(report(Some(problem), &builder, checked));
            }
        }
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = last.seq,
            _ => break,
        }
    }
    let problem = checkpoints
        .next()
        .map(|cp| format!("a checkpoint of {} entries is stored but the log has {}", cp.size, builder.size()));
    Ok(report(problem, &builder, checked))
}

fn check_checkpoint(row: &db::checkpoints::CheckpointRow, root: Hash, key: Option<&NoteVerifier>) -> Option<String> {
    let size = row.size;
    if row.root.as_slice() != root {
        return Some(format!("the stored checkpoint of {size} entries has a root the entries do not hash to"));
    }
    let parsed = match key {
        Some(k) => Checkpoint::open(&row.note, k).map_err(|e| e.to_string()),
        None => Checkpoint::parse_unverified(&row.note).map_err(|e| e.to_string()),
    };
    match parsed {
        Err(e) => Some(format!("the stored checkpoint of {size} entries does not verify: {e}")),
        Ok(c) if c.size != size as u64 || c.root != root => {
            Some(format!("the note of the stored checkpoint of {size} entries signs another tree"))
        }
        Ok(_) => None,
    }
}
