//! Exports of the audit trail: JSON Lines of leaf lines, then a trailer with a checkpoint that
//! covers them (and, for a window that does not start at entry 1, each line's inclusion proof).
//!
//! Trailer: `{"checkpoint": NOTE}`, plus `"proofs": {"<seq>": [base64, ...]}` when the export
//! starts after entry 1, plus `"consistency": {"from": M, "hashes": [...]}` when asked for one
//! from an older checkpoint of M entries.

use crate::audit::signing::LogSigner;
use crate::audit::{checkpoint, leaf_line, tree};
use crate::clock::Timestamp;
use crate::db::{self, Db};
use crate::error::ApiError;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

/// Which entries to export.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ExportRange {
    /// Entries written at or after this time (default: from entry 1).
    pub(crate) from: Option<Timestamp>,
    /// Entries written before this time (default: up to the newest).
    pub(crate) to: Option<Timestamp>,
    /// Add a consistency proof from the tree of this many entries to the trailer's checkpoint.
    pub(crate) consistency_from: Option<u64>,
}

const PAGE: i64 = 1000;

/// The seqs `first..=last` the range covers, and the size of the checkpoint the trailer carries.
struct Plan {
    first: i64,
    last: i64,
    with_proofs: bool,
}

async fn plan(conn: &mut crate::db::Conn, range: &ExportRange) -> Result<Plan, ApiError> {
    let head = db::tree::size(conn).await? as i64;
    if head == 0 {
        return Err(ApiError::not_found("log_empty", "the audit log has no entries yet"));
    }
    let first = match range.from {
        Some(t) => db::audit::first_seq_at_or_after(conn, t).await?.unwrap_or(head + 1),
        None => 1,
    };
    let last = match range.to {
        Some(t) => db::audit::last_seq_before(conn, t).await?.unwrap_or(0).min(head),
        None => head,
    };
    if range.from.is_none() && last == 0 {
        return Err(ApiError::not_found("no_entries_in_range", "no entry was written before `to`"));
    }
    Ok(Plan { first, last, with_proofs: range.from.is_some() })
}

/// Streams the export into `out`, one line per message (without newlines). Stops early, with
/// no trailer, if the receiver goes away or the database fails: an export without its trailer
/// does not verify, so a cut export is never mistaken for a whole one.
pub(crate) async fn export(
    database: &Db,
    log: &LogSigner,
    range: ExportRange,
    out: mpsc::Sender<String>,
) -> Result<(), ApiError> {
    let mut conn = database.reader().await?;
    let plan = plan(&mut conn, &range).await?;
    let m = range.consistency_from;
    // The checkpoint first, so the proofs are all against one tree. An export from entry 1 is
    // checked by recomputing the root, so its checkpoint is of exactly the exported entries.
    let (size, note) = if plan.with_proofs {
        let need = plan.last.max(m.unwrap_or(0) as i64).max(1);
        checkpoint::covering(&mut conn, log, need as u64).await?
    } else {
        let size = plan.last.max(1) as u64;
        (size, checkpoint::at_size(&mut conn, log, size).await?)
    };
    let consistency = match m {
        Some(m) if m == 0 || m > size => {
            return Err(ApiError::unprocessable(
                "consistency_from_beyond_export",
                format!("this export's checkpoint has {size} entries; a consistency proof from {m} cannot exist"),
            ));
        }
        Some(m) => Some((m, tree::to_b64(&tree::consistency(&mut conn, m, size).await?))),
        None => None,
    };
    let mut proofs = Map::new();
    let mut after = plan.first - 1;
    while after < plan.last {
        let page = db::audit::list(&mut conn, after, PAGE.min(plan.last - after), None).await?;
        let Some(tail) = page.last() else { break };
        after = tail.seq;
        for e in &page {
            if plan.with_proofs {
                let proof = tree::inclusion(&mut conn, (e.seq - 1) as u64, size).await?;
                proofs.insert(e.seq.to_string(), json!(tree::to_b64(&proof)));
            }
            if out.send(leaf_line(e)).await.is_err() {
                return Ok(());
            }
        }
    }
    let mut trailer = Map::new();
    trailer.insert("checkpoint".into(), Value::String(note));
    if plan.with_proofs {
        trailer.insert("proofs".into(), Value::Object(proofs));
    }
    if let Some((m, hashes)) = consistency {
        trailer.insert("consistency".into(), json!({ "from": m, "hashes": hashes }));
    }
    let _ = out.send(Value::Object(trailer).to_string()).await;
    Ok(())
}
