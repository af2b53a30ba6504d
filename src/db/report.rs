//! SQL of `dualkey report`: releases requested in a window, a page at a time, with the audit
//! entries that say who decided them and when they went out. Read-only, on a connection of its
//! own that SQLite itself keeps from writing, so the report can run beside the daemon.
//!
//! One query per table per page, never one per release. Releases are read in the order of the
//! index `releases_requested_at_by` (requested time, then requester, then seq), with a keyset
//! cursor on the same three values: each page is a range scan of that index, no sort.

use super::{Backend, Conn};
use crate::clock::Timestamp;
use crate::settings::DatabaseSettings;
use sqlx::{Any, Connection, Transaction};
use std::collections::HashMap;

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

/// Opens the database named by `[database]` for reading only (never created, never migrated):
/// SQLite opens the file read-only; PostgreSQL reads in read-only transactions.
pub(crate) async fn open(settings: &DatabaseSettings) -> Result<Conn, sqlx::Error> {
    sqlx::any::install_default_drivers();
    let url = super::connect_url(settings)?;
    match Backend::of_url(&settings.url) {
        Backend::Sqlite => {
            let mut conn = Conn::connect(&read_only_sqlite(url.expose())).await?;
            let wait = settings.busy_timeout.get().as_millis();
            sqlx::query(sqlx::AssertSqlSafe(format!("PRAGMA busy_timeout = {wait}"))).execute(&mut conn).await?;
            Ok(conn)
        }
        Backend::Postgres => Conn::connect(url.expose()).await,
    }
}

/// `url` with its `mode` set to `ro`.
fn read_only_sqlite(url: &str) -> String {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty() && !p.starts_with("mode=")).collect();
    params.push("mode=ro");
    format!("{path}?{}", params.join("&"))
}

/// A read transaction: every page read through it sees the same snapshot of the database,
/// whatever the daemon commits meanwhile (WAL readers neither block writers nor see them; on
/// PostgreSQL a `REPEATABLE READ` transaction).
pub(crate) async fn snapshot(conn: &mut Conn) -> Result<Transaction<'_, Any>, sqlx::Error> {
    match Backend::of(conn) {
        Backend::Sqlite => conn.begin().await,
        Backend::Postgres => conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await,
    }
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
    /// 1 for a break-glass release (stored as 0 or 1 on both backends).
    pub break_glass: i64,
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
    conn: &mut Conn,
    cursor: &Cursor,
    to: Timestamp,
    limit: i64,
) -> Result<Vec<ReleaseFacts>, sqlx::Error> {
    let backend = Backend::of(conn);
    let (device_name, indexed_by) = match backend {
        Backend::Sqlite => (backend.json_text("device", "computer_dns_name"), "INDEXED BY releases_requested_at_by"),
        Backend::Postgres => (backend.json_text("device", "computer_dns_name"), ""),
    };
    let sql = format!(
        "SELECT seq, id, machine_id, {device_name} AS device_name,
                requested_by, requested_at, expires_at, comment, ticket, status, policy_rule, policy_hash,
                approvals_required, approved_at, decided_by, decided_at, decision_comment, dispatched_at,
                finished_at, break_glass, ratified_by, ratified_at, reisolation_action_id, mde_action_id,
                mde_action_status
         FROM releases {indexed_by}
         WHERE (requested_at, requested_by, seq) > ($1, $2, $3) AND requested_at < $4
         ORDER BY requested_at, requested_by, seq
         LIMIT $5"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
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
    conn: &mut Conn,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, Vec<TrailEntry>>, sqlx::Error> {
    let ids = super::releases::encode_json(&ids.collect::<Vec<_>>())?;
    let actions = super::releases::encode_json(&TRAIL_ACTIONS)?;
    let backend = Backend::of(conn);
    let (ids_in, actions_in) = (backend.json_values(1), backend.json_values(2));
    let rows: Vec<TrailEntry> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT release_id, at, actor, action FROM audit_log
         WHERE release_id IN ({ids_in})
           AND action IN ({actions_in})
         ORDER BY release_id, seq",
    )))
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
