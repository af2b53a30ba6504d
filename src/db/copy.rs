//! `dualkey db copy`: every row of an installation, in every table but sqlx's own
//! `_sqlx_migrations`, into an empty database of either backend, with the same values, so the
//! audit chain verifies there with the same head. The source must be at this binary's
//! migrations; the target is migrated by this binary first (its own `_sqlx_migrations`), then
//! filled in one transaction: a failure leaves it empty.
//!
//! Triggers: the schema's INSERT triggers judge a new row against the present (an approval is
//! refused unless its release is still pending), so historical rows cannot pass them in any
//! order. The copy writes rows that were judged when they were first written (and whose audit
//! chain is verified before and after), so the target's triggers are off for the copy's
//! transaction only, and only for it: SQLite drops them and re-creates them from their stored
//! text before committing; PostgreSQL runs `ALTER TABLE .. DISABLE TRIGGER USER` then `ENABLE`,
//! whose lock keeps every other session out until the commit. Unlike
//! `session_replication_role = replica` this needs the tables' owner (the role that migrated
//! them), not a superuser, and keeps foreign keys checked: tables are filled parents first.
//! CHECK, NOT NULL and UNIQUE constraints stay on throughout.

use super::{Backend, Conn, Db, sql::Builder};
use crate::settings::DatabaseSettings;
use anyhow::{Context, bail};
use sqlx::any::{AnyRow, AnyTypeInfoKind};
use sqlx::{AssertSqlSafe, Column, Connection, Executor, Row, TypeInfo};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// sqlx's record of the migrations applied to a database: each database keeps its own.
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";
/// Rows read from the source in one page.
const PAGE: usize = 2_000;
/// Binds in one INSERT. Far under both backends' limits (SQLite 32766, PostgreSQL 65535) because
/// sqlx looks up each of a SQLite statement's `$N` by name, in time quadratic in their number: on
/// a log of 900,000 rows, 10,000 binds per INSERT copied 9,700 rows/s, 1,000 36,000, 500 75,000.
const MAX_BINDS: usize = 500;

/// The audit log as its verifier recomputed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    /// The head's seq (the log is dense from 1, so also the number of entries).
    pub(crate) seq: i64,
    /// The head's hash (64 zeros for an empty log).
    pub(crate) hash: String,
    /// The Merkle tree's root, base64.
    pub(crate) root: String,
}

/// What a copy did.
#[derive(Debug)]
pub(crate) struct Report {
    /// Rows copied per table, in the order the tables were filled.
    pub(crate) tables: Vec<(String, u64)>,
    pub(crate) source: Head,
    pub(crate) target: Head,
    /// The time the copying transaction took (without migrating and verifying).
    pub(crate) elapsed: Duration,
}

/// Copies the installation at `from` into the empty database at `to`, then verifies the target's
/// audit log and tree and that its head is the source's. Refuses, writing nothing, when the
/// source is unreachable or not at this binary's migrations, when its audit log does not verify,
/// when both are the same database, or when the target holds any row.
#[tracing::instrument(skip_all)]
pub(crate) async fn copy(from: &str, to: &str) -> anyhow::Result<Report> {
    let source = Db::connect(&settings(from)).await.context("cannot open the source database")?;
    check_migrated(&source).await?;
    let source_head = verified_head(&source).await.context("the source's audit log does not verify; nothing copied")?;
    let target = Db::connect(&settings(to)).await.context("cannot open the target database")?;
    if let (Some(a), Some(b)) = (identity(&source).await?, identity(&target).await?)
        && a == b
    {
        bail!("--from and --to are the same database");
    }
    refuse_rows(&mut *target.reader().await?, target.backend()).await?;
    target.migrate().await.context("migrating the target")?;
    let started = Instant::now();
    let tables = copy_rows(&source, &target).await?;
    let elapsed = started.elapsed();
    let target_head = verified_head(&target)
        .await
        .context("the copy was committed but its audit log does not verify: drop the target database and copy again")?;
    source.close().await;
    target.close().await;
    if target_head != source_head {
        bail!(
            "the copy's audit head (seq {}, {}) is not the source's (seq {}, {}): did a daemon write to the \
             source meanwhile? Stop it, drop the target database and copy again",
            target_head.seq,
            target_head.hash,
            source_head.seq,
            source_head.hash
        );
    }
    Ok(Report { tables, source: source_head, target: target_head, elapsed })
}

fn settings(url: &str) -> DatabaseSettings {
    DatabaseSettings { url: url.to_string(), ..Default::default() }
}

/// What tells two databases apart whatever URLs name them: SQLite's file (canonical path), or a
/// PostgreSQL server's start time and the database's name. `None` for an in-memory database.
async fn identity(db: &Db) -> anyhow::Result<Option<String>> {
    let mut conn = db.reader().await?;
    Ok(match db.backend() {
        Backend::Sqlite => {
            let file: String = sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_one(&mut *conn)
                .await?;
            Some(file).filter(|f| !f.is_empty()).map(|f| {
                let path = std::fs::canonicalize(&f).unwrap_or_else(|_| f.into());
                format!("sqlite:{}", path.display())
            })
        }
        Backend::Postgres => Some(
            sqlx::query_scalar("SELECT 'postgres:' || pg_postmaster_start_time()::text || ':' || current_database()")
                .fetch_one(&mut *conn)
                .await?,
        ),
    })
}

/// Refuses a source that is not at this binary's migrations, neither behind nor ahead.
pub(super) async fn check_migrated(db: &Db) -> anyhow::Result<()> {
    let migrator = super::migrator(db.backend());
    let known: BTreeSet<i64> =
        migrator.iter().filter(|m| !m.migration_type.is_down_migration()).map(|m| m.version).collect();
    let mut conn = db.reader().await?;
    if !table_names(&mut conn, db.backend()).await?.iter().any(|t| t == MIGRATIONS_TABLE) {
        bail!("the source holds no dualkey database (no {MIGRATIONS_TABLE}): is --from the right URL?");
    }
    let failed: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE NOT success ORDER BY version")
            .fetch_all(&mut *conn)
            .await?;
    let applied: BTreeSet<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success")
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .collect();
    if let Some(v) = failed.first() {
        bail!("migration {v} failed on the source: repair it with `dualkey migrate` first");
    }
    if let Some(v) = applied.difference(&known).next() {
        bail!(
            "the source was migrated by a newer dualkey (migration {v} is unknown to this one): copy with that version"
        );
    }
    if let Some(v) = known.difference(&applied).next() {
        bail!("the source lacks migration {v}: run `dualkey migrate` on it first (database.url = the --from URL)");
    }
    Ok(())
}

/// Verifies the chain and the tree with the code behind `dualkey audit verify`.
pub(super) async fn verified_head(db: &Db) -> anyhow::Result<Head> {
    let chain = crate::audit::verify_db(db).await.context("reading the audit log")?;
    let tree = crate::audit::verify_tree(db, None).await.context("reading the audit tree")?;
    let (seq, hash) = match chain {
        crate::audit::VerifyReport::Intact { entries, head, .. } => (entries, head),
        crate::audit::VerifyReport::Broken { first_bad_seq, reason, message, .. } => {
            bail!("audit chain broken at entry {first_bad_seq} ({reason}): {message}")
        }
    };
    if let Some(problem) = tree.problem {
        bail!("audit tree broken: {problem}");
    }
    Ok(Head { seq, hash, root: tree.root })
}

/// Refuses a database that holds a row in any table but `_sqlx_migrations`.
async fn refuse_rows(conn: &mut Conn, backend: Backend) -> anyhow::Result<()> {
    for table in table_names(conn, backend).await?.into_iter().filter(|t| t != MIGRATIONS_TABLE) {
        let sql = format!("SELECT COUNT(*) FROM (SELECT 1 FROM {} LIMIT 1) AS any_row", quoted(&table));
        let rows: i64 = sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(&mut *conn).await?;
        if rows > 0 {
            bail!("the target is not empty (table {table} holds rows): copy only into a new, empty database");
        }
    }
    Ok(())
}

/// Fills the target's tables from a snapshot of the source's, parents first, in one transaction;
/// returns the rows copied per table.
async fn copy_rows(source: &Db, target: &Db) -> anyhow::Result<Vec<(String, u64)>> {
    let mut read = source.reader().await?;
    let mut snapshot = read
        .begin_with(match source.backend() {
            Backend::Sqlite => "BEGIN",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        })
        .await?;
    let mut tx = target.begin().await?;
    let tables = fk_order(describe(&mut tx, target.backend()).await?)?;
    let theirs = describe(&mut snapshot, source.backend()).await?;
    for t in &tables {
        match theirs.iter().find(|s| s.name == t.name) {
            Some(s) if s.columns == t.columns => {}
            Some(s) => {
                bail!("table {}: the source's columns {:?} are not the target's {:?}", t.name, s.columns, t.columns)
            }
            None => bail!("the source has no table {}", t.name),
        }
    }
    if let Some(extra) = theirs.iter().find(|s| !tables.iter().any(|t| t.name == s.name)) {
        bail!("the source has a table the target lacks: {}", extra.name);
    }
    // Inside the transaction too: nothing may have been written since the first look.
    refuse_rows(&mut tx, target.backend()).await?;
    let triggers = Triggers::off(&mut tx, target.backend(), &tables).await?;
    let mut copied = Vec::with_capacity(tables.len());
    for t in &tables {
        let rows = copy_table(&mut snapshot, &mut tx, t).await.with_context(|| format!("copying table {}", t.name))?;
        copied.push((t.name.clone(), rows));
    }
    triggers.on(&mut tx).await?;
    for t in &tables {
        if let Some(column) = &t.counter {
            let used = counter(&mut snapshot, source.backend(), &t.name, column).await?;
            advance_counter(&mut tx, target.backend(), &t.name, column, used)
                .await
                .with_context(|| format!("moving the counter of {}.{column}", t.name))?;
        }
    }
    tx.commit().await.context("committing the copy")?;
    Ok(copied)
}

/// Reads one table page by page in primary-key order (keyset pagination: each page starts
/// after the last key of the one before) and inserts each page in batches.
#[tracing::instrument(skip_all, fields(table = %t.name))]
async fn copy_table(from: &mut Conn, to: &mut Conn, t: &Table) -> anyhow::Result<u64> {
    let list = |names: &[String]| names.iter().map(|c| quoted(c)).collect::<Vec<_>>().join(", ");
    let (columns, key) = (list(&t.columns), list(&t.key));
    let key_at: Vec<usize> = t.key.iter().filter_map(|k| t.columns.iter().position(|c| c == k)).collect();
    if key_at.is_empty() || key_at.len() != t.key.len() {
        bail!("table {} has no primary key to page through", t.name);
    }
    let insert = format!("INSERT INTO {} ({columns}) VALUES ", quoted(&t.name));
    let per_insert = (MAX_BINDS / t.columns.len()).max(1);
    let (mut after, mut copied) = (None::<AnyRow>, 0);
    loop {
        let mut q = Builder::new(format!("SELECT {columns} FROM {}", quoted(&t.name)));
        if let Some(last) = &after {
            q.push(format!(" WHERE ({key}) > ("));
            for (n, &i) in key_at.iter().enumerate() {
                q.push(if n == 0 { "" } else { ", " });
                bind_value(&mut q, last, i)?;
            }
            q.push(")");
        }
        q.push(format!(" ORDER BY {key} LIMIT {PAGE}"));
        let mut page = q.build()?.fetch_all(&mut *from).await?;
        for rows in page.chunks(per_insert) {
            let mut q = Builder::new(insert.as_str());
            for (n, row) in rows.iter().enumerate() {
                q.push(if n == 0 { "(" } else { ", (" });
                for i in 0..row.columns().len() {
                    q.push(if i == 0 { "" } else { ", " });
                    bind_value(&mut q, row, i)?;
                }
                q.push(")");
            }
            q.build()?.execute(&mut *to).await?;
        }
        copied += page.len() as u64;
        if page.len() < PAGE {
            return Ok(copied);
        }
        after = page.pop();
    }
}

/// Binds the row's value at `i` as what its column holds: integer, real, text or bytes, a NULL
/// typed as its column (PostgreSQL checks a NULL's type too).
fn bind_value(q: &mut Builder, row: &AnyRow, i: usize) -> Result<(), sqlx::Error> {
    let column = &row.columns()[i];
    match column.type_info().kind() {
        k if k.is_integer() => q.push_bind(row.try_get::<Option<i64>, _>(i)?),
        AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => q.push_bind(row.try_get::<Option<f64>, _>(i)?),
        AnyTypeInfoKind::Text => q.push_bind(row.try_get::<Option<String>, _>(i)?),
        AnyTypeInfoKind::Blob => q.push_bind(row.try_get::<Option<Vec<u8>>, _>(i)?),
        _ => {
            return Err(sqlx::Error::ColumnDecode {
                index: column.name().to_string(),
                source: format!("a column of type {} cannot be copied", column.type_info().name()).into(),
            });
        }
    };
    Ok(())
}

/// `name` as a quoted identifier (both dialects read double quotes).
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `tables` ordered so that every table comes after the tables its foreign keys reference.
fn fk_order(tables: Vec<Table>) -> anyhow::Result<Vec<Table>> {
    let names: BTreeSet<String> = tables.iter().map(|t| t.name.clone()).collect();
    if let Some((t, p)) = tables.iter().find_map(|t| t.parents.iter().find(|p| !names.contains(*p)).map(|p| (t, p))) {
        bail!("table {} references {p}, which is not copied", t.name);
    }
    let (mut left, mut ordered) = (tables, Vec::new());
    while !left.is_empty() {
        let ready = left
            .iter()
            .position(|t| t.parents.iter().all(|p| *p == t.name || ordered.iter().any(|done: &Table| done.name == *p)));
        let Some(i) = ready else {
            let names: Vec<&str> = left.iter().map(|t| t.name.as_str()).collect();
            bail!("the foreign keys of {names:?} form a cycle: no order fills them");
        };
        ordered.push(left.remove(i));
    }
    Ok(ordered)
}

/// One table as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Table {
    name: String,
    /// Every column, in the table's order.
    columns: Vec<String>,
    /// The primary key's columns, in the key's order (empty: none).
    key: Vec<String>,
    /// The column a counter fills (SQLite's AUTOINCREMENT, PostgreSQL's identity), if any.
    counter: Option<String>,
    /// The tables its foreign keys reference.
    parents: Vec<String>,
}

/// Every table of the database (`_sqlx_migrations` too; not SQLite's own `sqlite_*`), by name.
async fn table_names(conn: &mut Conn, backend: Backend) -> Result<Vec<String>, sqlx::Error> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT relname::text FROM pg_class WHERE relkind IN ('r', 'p') \
             AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) ORDER BY 1"
        }
    };
    sqlx::query_scalar(sql).fetch_all(conn).await
}

/// Every table to copy (all but `_sqlx_migrations`), described from the catalog.
async fn describe(conn: &mut Conn, backend: Backend) -> Result<Vec<Table>, sqlx::Error> {
    let mut tables = Vec::new();
    for name in table_names(conn, backend).await?.into_iter().filter(|t| t != MIGRATIONS_TABLE) {
        let q = quoted(&name);
        let table = match backend {
            Backend::Sqlite => {
                let info: Vec<(String, i64)> =
                    sqlx::query_as("SELECT name, pk FROM pragma_table_info($1) ORDER BY cid")
                        .bind(&name)
                        .fetch_all(&mut *conn)
                        .await?;
                let mut key: Vec<(i64, String)> = info.iter().filter(|c| c.1 > 0).map(|c| (c.1, c.0.clone())).collect();
                key.sort();
                let sql: String =
                    sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1")
                        .bind(&name)
                        .fetch_one(&mut *conn)
                        .await?;
                // AUTOINCREMENT is only allowed on an INTEGER PRIMARY KEY, the one key column.
                let autoincrement = key.len() == 1 && sql.to_ascii_uppercase().contains("AUTOINCREMENT");
                let counter = autoincrement.then(|| key[0].1.clone());
                Table {
                    columns: info.into_iter().map(|c| c.0).collect(),
                    key: key.into_iter().map(|k| k.1).collect(),
                    counter,
                    parents: sqlx::query_scalar("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list($1)")
                        .bind(&name)
                        .fetch_all(&mut *conn)
                        .await?,
                    name,
                }
            }
            Backend::Postgres => {
                let of = |sql: &'static str| sqlx::query_scalar::<_, String>(sql).bind(q.clone());
                Table {
                    columns: of("SELECT attname::text FROM pg_attribute WHERE attrelid = $1::regclass \
                                 AND attnum > 0 AND NOT attisdropped ORDER BY attnum")
                    .fetch_all(&mut *conn)
                    .await?,
                    key: of("SELECT a.attname::text FROM pg_index i \
                             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
                             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                             WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.n")
                    .fetch_all(&mut *conn)
                    .await?,
                    counter: of("SELECT attname::text FROM pg_attribute WHERE attrelid = $1::regclass \
                                 AND attidentity IN ('a', 'd') AND NOT attisdropped")
                    .fetch_optional(&mut *conn)
                    .await?,
                    parents: of("SELECT DISTINCT confrelid::regclass::text FROM pg_constraint \
                                 WHERE conrelid = $1::regclass AND contype = 'f'")
                    .fetch_all(&mut *conn)
                    .await?,
                    name,
                }
            }
        };
        tables.push(table);
    }
    Ok(tables)
}

/// The target's triggers, switched off for the copying transaction (see the module's comment).
enum Triggers {
    /// SQLite: the `CREATE TRIGGER` text of each dropped trigger, to run again.
    Dropped(Vec<String>),
    /// PostgreSQL: the tables whose user triggers are disabled.
    Disabled(Vec<String>),
}

impl Triggers {
    async fn off(conn: &mut Conn, backend: Backend, tables: &[Table]) -> anyhow::Result<Self> {
        match backend {
            Backend::Sqlite => {
                let triggers: Vec<(String, String)> =
                    sqlx::query_as("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
                        .fetch_all(&mut *conn)
                        .await?;
                for (name, _) in &triggers {
                    conn.execute(AssertSqlSafe(format!("DROP TRIGGER {}", quoted(name)))).await?;
                }
                Ok(Self::Dropped(triggers.into_iter().map(|t| t.1).collect()))
            }
            Backend::Postgres => {
                for t in tables {
                    conn.execute(AssertSqlSafe(format!("ALTER TABLE {} DISABLE TRIGGER USER", quoted(&t.name))))
                        .await
                        .with_context(|| {
                            format!("switching off the triggers of {} needs its owner: copy as the role that ran the target's migrations", t.name)
                        })?;
                }
                Ok(Self::Disabled(tables.iter().map(|t| t.name.clone()).collect()))
            }
        }
    }

    async fn on(self, conn: &mut Conn) -> Result<(), sqlx::Error> {
        let statements: Vec<String> = match self {
            Self::Dropped(creates) => creates,
            Self::Disabled(tables) => {
                tables.iter().map(|t| format!("ALTER TABLE {} ENABLE TRIGGER USER", quoted(t))).collect()
            }
        };
        for sql in statements {
            conn.execute(AssertSqlSafe(sql)).await?;
        }
        Ok(())
    }
}

/// The last value a table's counter handed out (0: none), which may exceed the largest value
/// left in the table when rows were deleted (`mde_calls` is pruned).
async fn counter(conn: &mut Conn, backend: Backend, table: &str, column: &str) -> Result<i64, sqlx::Error> {
    let q = match backend {
        Backend::Sqlite => sqlx::query_scalar("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = $1), 0)")
            .bind(table.to_string()),
        Backend::Postgres => {
            sqlx::query_scalar("SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence($1, $2)::regclass), 0)")
                .bind(quoted(table))
                .bind(column.to_string())
        }
    };
    q.fetch_one(conn).await
}

/// Moves the target's counter past both the largest copied value and the source's counter, so
/// that no value is ever handed out twice. (SQLite moves it past the largest value by itself.)
async fn advance_counter(
    conn: &mut Conn,
    backend: Backend,
    table: &str,
    column: &str,
    used: i64,
) -> anyhow::Result<()> {
    let max: Option<i64> =
        sqlx::query_scalar(AssertSqlSafe(format!("SELECT MAX({}) FROM {}", quoted(column), quoted(table))))
            .fetch_one(&mut *conn)
            .await?;
    let last = max.unwrap_or(0).max(used);
    if last == 0 {
        return Ok(());
    }
    match backend {
        Backend::Sqlite => {
            let moved = sqlx::query("UPDATE sqlite_sequence SET seq = $2 WHERE name = $1")
                .bind(table.to_string())
                .bind(last)
                .execute(&mut *conn)
                .await?;
            if moved.rows_affected() == 0 {
                sqlx::query("INSERT INTO sqlite_sequence (name, seq) VALUES ($1, $2)")
                    .bind(table.to_string())
                    .bind(last)
                    .execute(&mut *conn)
                    .await?;
            }
        }
        Backend::Postgres => {
            sqlx::query_scalar::<_, i64>("SELECT setval(pg_get_serial_sequence($1, $2), $3)")
                .bind(quoted(table))
                .bind(column.to_string())
                .bind(last)
                .fetch_one(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, parents: &[&str]) -> Table {
        let parents = parents.iter().map(|p| p.to_string()).collect();
        Table { name: name.into(), columns: vec!["a".into()], key: vec![], counter: None, parents }
    }

    fn names(tables: &[Table]) -> Vec<&str> {
        tables.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn tables_are_filled_after_the_tables_they_reference() {
        let tables = vec![table("approvals", &["releases"]), table("audit_log", &[]), table("releases", &["batches"])];
        let ordered = fk_order([tables, vec![table("batches", &[]), table("tree", &["tree"])]].concat()).unwrap();
        assert_eq!(names(&ordered), ["audit_log", "batches", "releases", "approvals", "tree"]);
    }

    #[test]
    fn a_cycle_or_a_reference_to_a_table_not_copied_is_refused() {
        let cycle = fk_order(vec![table("a", &["b"]), table("b", &["a"])]).unwrap_err().to_string();
        assert!(cycle.contains("cycle"), "{cycle}");
        let outside = fk_order(vec![table("a", &["elsewhere"])]).unwrap_err().to_string();
        assert!(outside.contains("references elsewhere"), "{outside}");
    }

    async fn migrated(dir: &std::path::Path, name: &str) -> Db {
        let url = format!("sqlite://{}?mode=rwc", dir.join(name).display());
        let db = Db::connect(&settings(&url)).await.unwrap();
        db.migrate().await.unwrap();
        db
    }

    #[tokio::test]
    async fn a_table_of_many_pages_is_copied_whole_through_its_composite_key() {
        let dir = tempfile::tempdir().unwrap();
        let (source, target) = (migrated(dir.path(), "source.db").await, migrated(dir.path(), "target.db").await);
        let mut tx = source.begin().await.unwrap();
        for n in 0..(2 * PAGE as i64 + 7) {
            sqlx::query("INSERT INTO audit_tree (level, idx, hash) VALUES ($1, $2, $3)")
                .bind(n % 3)
                .bind(n / 3)
                .bind(n.to_be_bytes().repeat(4))
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        let mut from = source.reader().await.unwrap();
        let tables = describe(&mut from, Backend::Sqlite).await.unwrap();
        let tree = tables.iter().find(|t| t.name == "audit_tree").unwrap();
        assert_eq!(tree.key, ["level", "idx"]);
        let mut tx = target.begin().await.unwrap();
        assert_eq!(copy_table(&mut from, &mut tx, tree).await.unwrap(), 2 * PAGE as u64 + 7);
        tx.commit().await.unwrap();
        let all = "SELECT level, idx, hash FROM audit_tree ORDER BY level, idx";
        let copied: Vec<(i64, i64, Vec<u8>)> =
            sqlx::query_as(all).fetch_all(&mut *target.reader().await.unwrap()).await.unwrap();
        let original: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(all).fetch_all(&mut *from).await.unwrap();
        assert_eq!(copied, original);
    }
}
