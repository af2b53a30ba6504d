//! SQL for the audit log's Merkle tree (`audit_tree`): one hash per complete subtree. Only
//! INSERT and SELECT: the table refuses UPDATE and DELETE.

use crate::db::Conn;
use crate::tlog::{Hash, NodeId};

fn hash_of(bytes: Vec<u8>, id: NodeId) -> Result<Hash, sqlx::Error> {
    bytes.try_into().map_err(|_| {
        sqlx::Error::Decode(format!("stored tree node ({}, {}) is not 32 bytes", id.level, id.index).into())
    })
}

/// The stored hashes of `ids`, in the same order, read in one statement (a plan is O(log n)
/// nodes, and one round trip instead of one per node is most of a proof's cost). A node that is
/// not stored is an error: the plans only ask for nodes of the tree as it is.
pub(crate) async fn read(conn: &mut Conn, ids: &[NodeId]) -> Result<Vec<Hash>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut q = super::sql::Builder::new("SELECT level, idx, hash FROM audit_tree WHERE (level, idx) IN (VALUES ");
    for (i, id) in ids.iter().enumerate() {
        q.push(if i == 0 { "(" } else { ", (" }).push_bind(i64::from(id.level)).push(", ");
        q.push_bind(id.index as i64).push(")");
    }
    q.push(")");
    let rows: Vec<(i64, i64, Vec<u8>)> = q.build_query_as()?.fetch_all(&mut *conn).await?;
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for (level, idx, bytes) in rows {
        let id = NodeId { level: level as u8, index: idx as u64 };
        found.insert(id, hash_of(bytes, id)?);
    }
    ids.iter()
        .map(|id| {
            found
                .get(id)
                .copied()
                .ok_or_else(|| sqlx::Error::Decode(format!("tree node ({}, {}) is missing", id.level, id.index).into()))
        })
        .collect()
}

/// Stores new nodes (those an appended leaf completes).
pub(crate) async fn insert(conn: &mut Conn, nodes: &[(NodeId, Hash)]) -> Result<(), sqlx::Error> {
    for (id, hash) in nodes {
        sqlx::query("INSERT INTO audit_tree (level, idx, hash) VALUES ($1, $2, $3)")
            .bind(i64::from(id.level))
            .bind(id.index as i64)
            .bind(&hash[..])
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// How many leaves the stored tree has.
pub(crate) async fn size(conn: &mut Conn) -> Result<u64, sqlx::Error> {
    let n: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM audit_tree WHERE level = 0").fetch_one(conn).await?;
    Ok(n as u64)
}

/// The stored nodes of one level from `from_index` on, in order, at most `limit` (for `audit
/// verify`, which compares them with the tree it rebuilds).
pub(crate) async fn level_page(
    conn: &mut Conn,
    level: u8,
    from_index: u64,
    limit: i64,
) -> Result<Vec<(u64, Hash)>, sqlx::Error> {
    let rows: Vec<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT idx, hash FROM audit_tree WHERE level = $1 AND idx >= $2 ORDER BY idx LIMIT $3")
            .bind(i64::from(level))
            .bind(from_index as i64)
            .bind(limit)
            .fetch_all(conn)
            .await?;
    rows.into_iter()
        .map(|(idx, bytes)| Ok((idx as u64, hash_of(bytes, NodeId { level, index: idx as u64 })?)))
        .collect()
}
