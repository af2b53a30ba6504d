//! The MDE budget every replica shares: `mde_calls` (each call of the last hour, per API) and
//! `mde_pauses` (an API paused after a 429). The caller owns the write transaction that reads
//! the [`Crowding`] and records the call, so no other replica's call slips in between.

use crate::clock::Timestamp;
use crate::db::Conn;
use crate::mde::{Api, Crowding, Limits, Share, ledger::Blockers};

/// What `mde_calls` and `mde_pauses` hold for `api` at `now`: the pause, and for each share the
/// call that must leave each window before one more fits (see [`Blockers`]). One statement.
pub(crate) async fn crowding(
    conn: &mut Conn,
    api: Api,
    limits: Limits,
    now: Timestamp,
) -> Result<Crowding, sqlx::Error> {
    // The n-th newest call inside a window, when it holds n: `OFFSET n - 1` walks the
    // (api, at) index from its newest end. $2 and $3 start the minute and the hour.
    const SQL: &str = "SELECT (SELECT until FROM mde_pauses WHERE api = $1) AS paused_until,
        (SELECT at FROM mde_calls WHERE api = $1 AND at > $2 ORDER BY at DESC LIMIT 1 OFFSET $4) AS minute_full,
        (SELECT at FROM mde_calls WHERE api = $1 AND at > $2 ORDER BY at DESC LIMIT 1 OFFSET $5) AS minute_backlog,
        (SELECT at FROM mde_calls WHERE api = $1 AND at > $3 ORDER BY at DESC LIMIT 1 OFFSET $6) AS hour_full,
        (SELECT at FROM mde_calls WHERE api = $1 AND at > $3 ORDER BY at DESC LIMIT 1 OFFSET $7) AS hour_backlog";
    let offset = |n: usize| i64::try_from(n.saturating_sub(1)).unwrap_or(i64::MAX);
    let row: Row = sqlx::query_as(SQL)
        .bind(api.name())
        .bind(now.minus(limits.minute()))
        .bind(now.minus(limits.hour()))
        .bind(offset(limits.per_minute(Share::Full)))
        .bind(offset(limits.per_minute(Share::Backlog)))
        .bind(offset(limits.per_hour(Share::Full)))
        .bind(offset(limits.per_hour(Share::Backlog)))
        .fetch_one(conn)
        .await?;
    Ok(Crowding {
        paused_until: row.paused_until,
        full: Blockers { minute: row.minute_full, hour: row.hour_full },
        backlog: Blockers { minute: row.minute_backlog, hour: row.hour_backlog },
    })
}

/// What [`crowding`] reads, one column per value.
#[derive(sqlx::FromRow)]
struct Row {
    paused_until: Option<Timestamp>,
    minute_full: Option<Timestamp>,
    minute_backlog: Option<Timestamp>,
    hour_full: Option<Timestamp>,
    hour_backlog: Option<Timestamp>,
}

/// Records a call of `api` at `at`.
pub(crate) async fn record(conn: &mut Conn, api: Api, at: Timestamp) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO mde_calls (api, at) VALUES ($1, $2)").bind(api.name()).bind(at).execute(conn).await?;
    Ok(())
}

/// Pauses `api` until `until`, or keeps the later pause already recorded.
pub(crate) async fn pause(conn: &mut Conn, api: Api, until: Timestamp) -> Result<(), sqlx::Error> {
    let greatest = super::Backend::of(conn).greatest();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO mde_pauses (api, until) VALUES ($1, $2)
         ON CONFLICT (api) DO UPDATE SET until = {greatest}(mde_pauses.until, excluded.until)"
    )))
    .bind(api.name())
    .bind(until)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the calls that no longer count at `now` (older than `limits.hour()`) and the pauses
/// that have ended; answers how many rows went.
pub(crate) async fn prune(conn: &mut Conn, limits: Limits, now: Timestamp) -> Result<u64, sqlx::Error> {
    let calls =
        sqlx::query("DELETE FROM mde_calls WHERE at <= $1").bind(now.minus(limits.hour())).execute(&mut *conn).await?;
    let pauses = sqlx::query("DELETE FROM mde_pauses WHERE until <= $1").bind(now).execute(conn).await?;
    Ok(calls.rows_affected() + pauses.rows_affected())
}
