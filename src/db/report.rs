//! SQL of `dualkey report`: releases requested in a window, a page at a time, with the audit
//! entries that say who decided them and when they went out. Read-only, on a connection of its
//! own that SQLite itself keeps from writing, so the report can run beside the daemon.
//!
//! One query per table per page, never one per release. Releases are read in the order of the
//! index `releases_requested_at_by` (requested time, then requester, then seq), with a keyset
//! cursor on the same three values: each page is a range scan of that index, no sort.

use crate::clock::Timestamp;
use crate::settings::DatabaseSettings;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Sqlite, SqliteConnection, Transaction};
use std::collections::HashMap;
use std::str::FromStr;

/// Audit actions the report reads: the decisions, the dispatch and the end of each release.
pub(crate) const TRAIL_ACTIONS: &[&str] = &[
    "release_approved",
    "break_glass_released",
    "release_expired",
    "unisolate_accepted",
    "mde_action_adopted",
    "release_succeeded",
    "release_failed",
    "approval_expired",
];

/// Opens the database named by `[database]` read-only (never created, never migrated).
pub(crate) async fn open(settings: &DatabaseSettings) -> Result<SqliteConnection, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(&settings.url)?
        .create_if_missing(false)
        .read_only(true)
        .busy_timeout(settings.busy_timeout.get());
    SqliteConnection::connect_with(&options).await
}

/// A read transaction: every page read through it sees the same snapshot of the database,
/// whatever the daemon commits meanwhile (WAL readers neither block writers nor see them).
pub(crate) async fn snapshot(conn: &mut SqliteConnection) -> Result<Transaction<'_, Sqlite>, sqlx::Error> {
    conn.begin().await
}

/// What the `releases` table says about one release.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct ReleaseFacts {
    pub seq: i64,
    pub id: String,
    pub machine_id: String,
    /// `computer_dns_name` of the device snapshot taken at request time.
    pub device_name: Option<String>,
    pub requested_by: String,
    pub requested_at: Timestamp,
    pub expires_at: Timestamp,
    pub comment: String,
    pub ticket: Option<String>,
    pub status: String,
    pub policy_rule: Option<String>,
    pub policy_hash: Option<String>,
    pub approvals_required: i64,
    pub approved_at: Option<Timestamp>,
    pub decided_by: Option<String>,
    pub decided_at: Option<Timestamp>,
    pub decision_comment: Option<String>,
    pub dispatched_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub break_glass: bool,
    pub ratified_by: Option<String>,
    pub ratified_at: Option<Timestamp>,
    pub reisolation_action_id: Option<String>,
    pub mde_action_id: Option<String>,
    pub mde_action_status: Option<String>,
}

/// Where the next page starts: after this (requested_at, requested_by, seq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    requested_at: Timestamp,
    requested_by: String,
    seq: i64,
}

impl Cursor {
    /// Before every release requested at or after `from` (a requester is never empty).
    pub(crate) fn start(from: Timestamp) -> Self {
        Self { requested_at: from, requested_by: String::new(), seq: 0 }
    }

    /// Just after `r`.
    pub(crate) fn after(r: &ReleaseFacts) -> Self {
        Self { requested_at: r.requested_at, requested_by: r.requested_by.clone(), seq: r.seq }
    }
}

/// At most `limit` releases after `cursor` and requested before `to`, in index order.
/// `INDEXED BY` makes the plan a promise: were the index gone, this fails instead of sorting
/// the window once per page.
pub(crate) async fn releases_page(
    conn: &mut SqliteConnection,
    cursor: &Cursor,
    to: Timestamp,
    limit: i64,
) -> Result<Vec<ReleaseFacts>, sqlx::Error> {
    sqlx::query_as(
        "SELECT seq, id, machine_id, json_extract(device, '$.computer_dns_name') AS device_name,
                requested_by, requested_at, expires_at, comment, ticket, status, policy_rule, policy_hash,
                approvals_required, approved_at, decided_by, decided_at, decision_comment, dispatched_at,
                finished_at, break_glass, ratified_by, ratified_at, reisolation_action_id, mde_action_id,
                mde_action_status
         FROM releases INDEXED BY releases_requested_at_by
         WHERE (requested_at, requested_by, seq) > (?1, ?2, ?3) AND requested_at < ?4
         ORDER BY requested_at, requested_by, seq
         LIMIT ?5",
    )
    .bind(cursor.requested_at)
    .bind(&cursor.requested_by)
    .bind(cursor.seq)
    .bind(to)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// One audit entry about a release, as far as the report needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct TrailEntry {
    pub release_id: String,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
}

/// The [`TRAIL_ACTIONS`] entries about `ids`, oldest first, by release id: one query.
pub(crate) async fn trail_of_page<'a>(
    conn: &mut SqliteConnection,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, Vec<TrailEntry>>, sqlx::Error> {
    let ids = super::releases::encode_json(&ids.collect::<Vec<_>>())?;
    let actions = super::releases::encode_json(&TRAIL_ACTIONS)?;
    let rows: Vec<TrailEntry> = sqlx::query_as(
        "SELECT release_id, at, actor, action FROM audit_log
         WHERE release_id IN (SELECT value FROM json_each(?1))
           AND action IN (SELECT value FROM json_each(?2))
         ORDER BY release_id, seq",
    )
    .bind(ids)
    .bind(actions)
    .fetch_all(conn)
    .await?;
    let mut by_release: HashMap<String, Vec<TrailEntry>> = HashMap::new();
    for row in rows {
        by_release.entry(row.release_id.clone()).or_default().push(row);
    }
    Ok(by_release)
}
