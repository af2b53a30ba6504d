//! Checkpoints: signed tree heads, written every `checkpoint_every` entries (right after the
//! entry that reaches the count, in its transaction), every `checkpoint_interval` when entries
//! were added, and at shutdown. Each is stored and recorded in the trail as a `checkpoint` entry.

use super::{Actor, AuditEvent, Subject, signing::LogSigner, tree};
use crate::clock::Timestamp;
use crate::db::Conn;
use crate::db::{self, checkpoints::CheckpointRow};
use crate::tlog::Hash;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

fn signing_error(e: anyhow::Error) -> sqlx::Error {
    sqlx::Error::Protocol(format!("{e:#}"))
}

/// How many entries the trail holds.
pub(crate) async fn head_size(conn: &mut Conn) -> Result<u64, sqlx::Error> {
    Ok(db::audit::head(conn).await?.map_or(0, |(seq, _)| seq as u64))
}

/// Entries other than checkpoint records added since the last checkpoint. Checkpoint records
/// are only ever the entry right after the size they sign, so everything after the newest one
/// counts.
pub(crate) async fn pending(conn: &mut Conn) -> Result<u64, sqlx::Error> {
    let head = head_size(conn).await?;
    pending_at(conn, head).await
}

/// [`pending`] when the trail is known to hold `head` entries.
pub(crate) async fn pending_at(conn: &mut Conn, head: u64) -> Result<u64, sqlx::Error> {
    let last = db::checkpoints::latest(conn).await?.map_or(0, |c| c.recorded_seq as u64);
    Ok(head.saturating_sub(last))
}

/// Signs the tree as it is in `tx` and records the checkpoint (stored, and as the next entry of
/// the trail). Nothing when the trail is empty or its newest entry is a checkpoint record.
pub(crate) async fn write(tx: &mut db::Tx, now: Timestamp, log: &LogSigner) -> Result<Option<u64>, sqlx::Error> {
    if pending(tx).await? == 0 {
        return Ok(None);
    }
    let size = head_size(tx).await?;
    let root = tree::root(tx, size).await?;
    let note = log.sign(size, root).map_err(signing_error)?;
    let row = CheckpointRow {
        size: size as i64,
        root: root.to_vec(),
        note: note.clone(),
        key_name: log.key_name().to_string(),
        created_at: now,
        recorded_seq: size as i64 + 1,
    };
    db::checkpoints::insert(tx, row).await?;
    let event = AuditEvent::Checkpoint { size, root: B64.encode(root), note };
    super::record(tx, now, Actor::System, Subject::default(), &event).await?;
    Ok(Some(size))
}

/// A checkpoint of exactly `size` entries: the stored one, or one signed now (not stored: any
/// signed head of this log is as good as a stored one, and reading must not write).
pub(crate) async fn at_size(conn: &mut Conn, log: &LogSigner, size: u64) -> Result<String, sqlx::Error> {
    if let Some(row) = db::checkpoints::at_size(conn, size as i64).await? {
        return Ok(row.note);
    }
    let root: Hash = tree::root(conn, size).await?;
    log.sign(size, root).map_err(signing_error)
}

/// A checkpoint covering at least `size` entries: the newest stored one if it does, else one
/// signed now over the whole tree.
pub(crate) async fn covering(conn: &mut Conn, log: &LogSigner, size: u64) -> Result<(u64, String), sqlx::Error> {
    if let Some(row) = db::checkpoints::latest(conn).await?
        && row.size as u64 >= size
    {
        return Ok((row.size as u64, row.note));
    }
    let head = db::tree::size(conn).await?;
    Ok((head, at_size(conn, log, head).await?))
}
