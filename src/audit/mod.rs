//! The tamper-evident audit trail: typed events, appended in the caller's transaction to a
//! SHA-256 hash chain, and a verifier that finds the first altered, reordered or missing entry.

mod chain;
pub(crate) mod checkpoint;
mod event;
mod leaf;
pub(crate) mod signing;
pub(crate) mod tree;
mod verify_tree;

pub use chain::{AuditEntry, GENESIS_HASH, VerifyReport, entry_hash, verify_entries};
pub use event::AuditEvent;
pub(crate) use leaf::policy_named;
pub use leaf::{LeafError, leaf_line, leaf_value, parse_leaf_line};
pub use verify_tree::TreeReport;
pub(crate) use verify_tree::verify_tree;

use crate::canonical::canonical_json;
use crate::clock::Timestamp;
use crate::db;

/// Who or what caused an audit entry.
#[derive(Debug, Clone)]
pub enum Actor<'a> {
    /// An authenticated caller, by principal id.
    Principal(&'a str),
    /// dualkey itself (sweeper, worker, start-up).
    System,
}

impl Actor<'_> {
    fn name(&self) -> &str {
        match self {
            Actor::Principal(p) => p,
            Actor::System => "system:dualkey",
        }
    }
}

/// What an entry is about.
#[derive(Debug, Clone, Copy, Default)]
pub struct Subject<'a> {
    pub release_id: Option<&'a str>,
    pub machine_id: Option<&'a str>,
}

/// Appends `event` to the chain and the tree inside `tx`, the caller's write transaction. The
/// caller's change and this entry commit or fail together: if the entry cannot be written, the
/// error must abort the change (fail closed). When it brings `checkpoint_every` entries since
/// the last checkpoint, the checkpoint is written right after it, in the same transaction.
/// Inside an HTTP request, `details.request_id` is that request's id (see [`crate::request_id`]);
/// elsewhere (the worker, the sweepers, start-up) there is none.
pub(crate) async fn record(
    tx: &mut db::Tx,
    now: Timestamp,
    actor: Actor<'_>,
    subject: Subject<'_>,
    event: &AuditEvent,
) -> Result<AuditEntry, sqlx::Error> {
    let (prev_seq, prev_hash) = db::audit::head(tx).await?.unwrap_or((0, GENESIS_HASH.to_string()));
    let release_prev_seq = match subject.release_id {
        Some(id) => db::audit::last_seq_of_release(tx, id).await?,
        None => None,
    };
    let mut entry = AuditEntry {
        seq: prev_seq + 1,
        at: now,
        actor: actor.name().to_string(),
        action: event.action().to_string(),
        release_id: subject.release_id.map(str::to_string),
        machine_id: subject.machine_id.map(str::to_string),
        release_prev_seq,
        details: canonical_json(&details_of(event)),
        prev_hash,
        hash: String::new(),
    };
    entry.hash = entry_hash(&entry).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    db::audit::insert(tx, &entry).await?;
    tree::append(tx, &entry).await?;
    tx.appended_audit();
    // The entry that makes `checkpoint_every` since the last checkpoint is signed at once, in
    // this transaction (so exactly every N entries, and never a count left unsigned).
    if let Some(log) = tx.log()
        && !matches!(event, AuditEvent::Checkpoint { .. })
        && checkpoint::pending_at(tx, entry.seq as u64).await? >= log.every
    {
        Box::pin(checkpoint::write(tx, now, &log)).await?;
    }
    Ok(entry)
}

/// The event's details, with the id of the request that caused it, if one did.
fn details_of(event: &AuditEvent) -> serde_json::Value {
    let mut details = event.details();
    if let (Some(id), Some(map)) = (crate::request_id::current(), details.as_object_mut()) {
        map.insert("request_id".into(), id.as_str().into());
    }
    details
}

const VERIFY_PAGE: i64 = 1000;

/// Recomputes the whole chain from the database, page by page (bounded memory), and reports
/// the first entry whose content, order or link was altered.
pub async fn verify_db(database: &db::Db) -> Result<VerifyReport, sqlx::Error> {
    let mut verifier = chain::ChainVerifier::default();
    let mut conn = database.reader().await?;
    let mut after = 0;
    loop {
        let page = db::audit::list(&mut conn, after, VERIFY_PAGE, None).await?;
        for e in &page {
            verifier.push(e);
        }
        match page.last() {
            Some(last) if page.len() as i64 == VERIFY_PAGE => after = last.seq,
            _ => return Ok(verifier.finish()),
        }
    }
}
