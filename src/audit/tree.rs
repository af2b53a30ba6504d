//! The audit log's Merkle tree (RFC 6962 / RFC 9162 §2.1) over the entries' leaf lines, kept
//! in `audit_tree` as each entry is appended, and the roots and proofs computed from it.

use super::{AuditEntry, leaf_line};
use crate::db;
use crate::db::Conn;
use crate::tlog::{self, Hash, TreeError};

fn tree_error(e: TreeError) -> sqlx::Error {
    sqlx::Error::Protocol(format!("audit tree: {e}"))
}

/// The leaf hash of an entry: SHA-256(0x00 ‖ leaf line).
pub(crate) fn leaf_hash(e: &AuditEntry) -> Hash {
    tlog::leaf_hash(leaf_line(e).as_bytes())
}

/// Adds `e`, the entry just inserted, to the tree, in the same transaction.
pub(crate) async fn append(conn: &mut Conn, e: &AuditEntry) -> Result<(), sqlx::Error> {
    let n = (e.seq - 1) as u64;
    let needed = db::tree::read(conn, &tlog::append_plan(n)).await?;
    let nodes = tlog::append(n, leaf_hash(e), &needed).map_err(tree_error)?;
    db::tree::insert(conn, &nodes).await
}

/// The root of the tree of the first `size` entries (`size` at most the tree's size).
pub(crate) async fn root(conn: &mut Conn, size: u64) -> Result<Hash, sqlx::Error> {
    let hashes = db::tree::read(conn, &tlog::root_plan(size)).await?;
    tlog::root(size, &hashes).map_err(tree_error)
}

/// The inclusion proof of leaf `index` in the tree of `size` entries.
pub(crate) async fn inclusion(conn: &mut Conn, index: u64, size: u64) -> Result<Vec<Hash>, sqlx::Error> {
    let plan = tlog::inclusion_plan(index, size).map_err(tree_error)?;
    let hashes = db::tree::read(conn, &plan).await?;
    tlog::inclusion_proof(index, size, &hashes).map_err(tree_error)
}

/// The consistency proof from the tree of `m` entries to the tree of `n`.
pub(crate) async fn consistency(conn: &mut Conn, m: u64, n: u64) -> Result<Vec<Hash>, sqlx::Error> {
    let plan = tlog::consistency_plan(m, n).map_err(tree_error)?;
    let hashes = db::tree::read(conn, &plan).await?;
    tlog::consistency_proof(m, n, &hashes).map_err(tree_error)
}

/// Hashes as the API and the files show them: standard base64.
pub(crate) fn to_b64(hashes: &[Hash]) -> Vec<String> {
    use base64::Engine;
    hashes.iter().map(|h| base64::engine::general_purpose::STANDARD.encode(h)).collect()
}

const CATCH_UP_PAGE: i64 = 1000;

/// Adds to the tree every entry it does not hold yet: the entries of a database from before the
/// tree existed (run once, when dualkey migrates it). Returns how many were added.
pub(crate) async fn catch_up(database: &db::Db) -> Result<u64, sqlx::Error> {
    let mut added = 0;
    loop {
        let mut tx = database.begin().await?;
        let size = db::tree::size(&mut tx).await?;
        let page = db::audit::list(&mut tx, size as i64, CATCH_UP_PAGE, None).await?;
        if page.is_empty() {
            return Ok(added);
        }
        for (i, e) in page.iter().enumerate() {
            let expected = size as i64 + i as i64 + 1;
            if e.seq != expected {
                // The tree cannot be built past a missing entry; refusing here keeps the daemon
                // from signing a tree over a trail someone cut.
                return Err(sqlx::Error::Protocol(format!(
                    "the audit trail has no entry {expected} (the next is {}); run `dualkey audit verify`",
                    e.seq
                )));
            }
            append(&mut tx, e).await?;
        }
        added += page.len() as u64;
        tx.commit().await?;
    }
}
