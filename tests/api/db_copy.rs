//! `dualkey db copy` (the real binary): an installation filled through the HTTP API, copied into
//! a fresh SQLite file and, with `DUALKEY_TEST_POSTGRES`, a fresh PostgreSQL database, row for
//! row and with the same audit head; a daemon then serves the copy. And the refusals, which
//! write nothing.

use crate::evidence_support::keygen;
use crate::helpers::*;
use dualkey::clock::ManualClock;
use dualkey::settings::Settings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Column, Row, TypeInfo, ValueRef};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const GLASS: &str = "Release.BreakGlass";
const LONG: &str = "Ransomware cleanup verified; payroll server must be back before the bank cutoff";

/// A stopped installation on SQLite, filled through the API: its releases' ids by state.
struct Source {
    dir: tempfile::TempDir,
    url: String,
    key: PathBuf,
    verifier: String,
    clock: ManualClock,
    sim: Arc<dualkey::mde::simulator::SimulatorHandle>,
    ids: BTreeMap<&'static str, String>,
}

/// Break-glass on, and the log signed with a checkpoint every 4 entries.
fn settings_of(key: PathBuf) -> impl FnOnce(&mut Settings) {
    move |s| {
        let policy = toml::from_str("[break_glass]\nenabled = true\nratify_within = \"1h\"\n").unwrap();
        s.policy = dualkey::rules::PolicyDocument::from_toml(policy).unwrap();
        s.audit.signing_key_file = Some(key);
        s.audit.checkpoint_every = 4;
    }
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_string()
}

/// Releases pending, succeeded (through the worker and the simulator), approved, rejected,
/// cancelled, a ratified break-glass one and a batch of two; then the daemon stops.
async fn filled_source() -> Source {
    let dir = tempfile::tempdir().unwrap();
    let (key, verifier) = keygen(dir.path(), "dualkey-copy");
    let clock = ManualClock::new();
    let sim = start_simulator(test_simulator(), &clock).await;
    let app = spawn_on_in(sim.clone(), &clock, Some(dir.path()), settings_of(key.clone())).await;
    let url = app.db_url.clone();
    let m = MdeApp { worker: app.worker.clone().unwrap(), sim: sim.clone(), app };
    let mut ids = BTreeMap::new();
    ids.insert("pending", id_of(&m.app.create_release(1).await));
    let r = m
        .app
        .post(
            "/api/v1/releases",
            &m.app.token("gina", &[GLASS]),
            json!({"machine_id": SEEDED, "comment": LONG, "break_glass": true}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let glass = id_of(&r.json().await.unwrap());
    let succeeded = m.approved(&machine(2)).await;
    m.drive_until(&succeeded, "succeeded").await;
    m.drive_until(&glass, "succeeded").await;
    assert_eq!(m.app.approve(&glass, &m.app.approver("bob")).await.status(), StatusCode::OK, "ratified");
    let rejected = id_of(&m.app.create_release(3).await);
    let r = m
        .app
        .post(
            &format!("/api/v1/releases/{rejected}/reject"),
            &m.app.approver("bob"),
            json!({"comment": "malware still present on host"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let cancelled = id_of(&m.app.create_release(4).await);
    let r = m.app.post(&format!("/api/v1/releases/{cancelled}/cancel"), &m.app.requester(), json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    ids.insert("approved", m.approved(&machine(5)).await);
    let batch = json!({"machine_ids": [machine(7), machine(8)], "comment": "reimaged and scanned clean"});
    let r = m.app.post("/api/v1/release-batches", &m.app.requester(), batch).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    ids.extend([("succeeded", succeeded), ("break_glass", glass), ("rejected", rejected), ("cancelled", cancelled)]);
    m.app.stop().await;
    // As after rows were deleted (or SQLite's rebuild of `releases`): the counter is past the
    // largest seq left, and a copy must not hand out the values in between again.
    let pool = crate::backend::pool(&url).await;
    sqlx::query("UPDATE sqlite_sequence SET seq = 1000 WHERE name = 'releases'").execute(&pool).await.unwrap();
    pool.close().await;
    Source { dir, url, key, verifier, clock, sim, ids }
}

/// `dualkey db copy --from FROM --to TO`: success, stdout, stderr.
fn db_copy(from: &str, to: &str) -> (bool, String, String) {
    let out = dualkey_command().args(["db", "copy", "--from", from, "--to", to]).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Every table but `_sqlx_migrations`, each row as `column=value` texts, rows sorted: what must
/// be equal in source and copy, whichever backends they are.
async fn dump(url: &str) -> BTreeMap<String, Vec<Vec<String>>> {
    let pool = crate::backend::pool(url).await;
    let tables = match url.starts_with("postgres") {
        true => "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
        false => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'",
    };
    let names: Vec<String> = sqlx::query_scalar(tables).fetch_all(&pool).await.unwrap();
    let mut dump = BTreeMap::new();
    for name in names.into_iter().filter(|n| n != "_sqlx_migrations") {
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT * FROM {name}"))).fetch_all(&pool).await.unwrap();
        let mut rendered: Vec<Vec<String>> = rows.iter().map(render).collect();
        rendered.sort();
        dump.insert(name, rendered);
    }
    pool.close().await;
    dump
}

fn render(row: &AnyRow) -> Vec<String> {
    use sqlx::any::AnyTypeInfoKind as K;
    (0..row.columns().len())
        .map(|i| {
            let raw = row.try_get_raw(i).unwrap();
            let kind = raw.type_info().kind();
            let value = match kind {
                _ if raw.is_null() => "NULL".to_string(),
                k if k.is_integer() => row.get::<i64, _>(i).to_string(),
                K::Text => format!("{:?}", row.get::<String, _>(i)),
                K::Blob => hex::encode(row.get::<Vec<u8>, _>(i)),
                k => panic!("a column of kind {k:?}: {}", raw.type_info().name()),
            };
            format!("{}={value}", row.column(i).name())
        })
        .collect()
}

/// The newest audit entry's seq and hash.
async fn head(url: &str) -> (i64, String) {
    let pool = crate::backend::pool(url).await;
    let head =
        sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetch_one(&pool).await.unwrap();
    pool.close().await;
    head
}

/// The summary's `<which> audit head: ...` line, after the colon.
fn printed_head<'a>(stdout: &'a str, which: &str) -> &'a str {
    let prefix = format!("{which} audit head: ");
    let line = stdout.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {which} head in {stdout}"));
    &line[prefix.len()..]
}

/// Copies `source` to `to` and checks the copy: every row of every table, the audit head
/// printed and stored, `dualkey audit verify`, and a daemon serving the copied releases.
async fn copies_faithfully(source: &Source, to: &str, serve: impl FnOnce(&mut Settings) + Send + 'static) {
    let (ok, stdout, stderr) = db_copy(&source.url, to);
    assert!(ok, "{stdout}\n{stderr}");
    if let Some(password) = reqwest::Url::parse(to).unwrap().password() {
        assert!(!stdout.contains(password) && !stderr.contains(password), "{stdout}\n{stderr}");
    }
    let (before, after) = (dump(&source.url).await, dump(to).await);
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    for (table, rows) in &before {
        assert_eq!(rows, &after[table], "table {table}");
        let printed = stdout.lines().find(|l| l.split_whitespace().next() == Some(table)).unwrap();
        assert!(printed.contains(&format!(" {} rows", rows.len())), "{printed}");
    }
    for table in ["release_batches", "releases", "approvals", "audit_log", "audit_tree", "audit_checkpoints"] {
        assert!(!before[table].is_empty(), "the source has {table} rows to copy");
    }
    let (seq, hash) = head(&source.url).await;
    assert_eq!(head(to).await, (seq, hash.clone()));
    assert_eq!(printed_head(&stdout, "source"), printed_head(&stdout, "target"));
    assert!(printed_head(&stdout, "target").starts_with(&format!("seq {seq}, hash {hash}, ")), "{stdout}");

    let out = dualkey_command()
        .args(["audit", "verify", "--key", &source.verifier])
        .env("DUALKEY_DATABASE__URL", to)
        .output()
        .unwrap();
    let verified = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{verified}");
    assert!(verified.contains(&format!("audit chain intact: {seq} entries, head {hash}")), "{verified}");
    assert!(verified.contains("checkpoints checked with their signatures"), "{verified}");

    let app = spawn_on(source.sim.clone(), &source.clock, serve).await;
    for (state, id) in &source.ids {
        let r = app.release(id).await;
        let expected = if *state == "break_glass" { "succeeded" } else { state };
        assert_eq!(r["status"], expected, "{state}: {r}");
    }
    assert_eq!(app.release(&source.ids["break_glass"]).await["break_glass"]["ratified_by"], "bob");
    // The counters moved past the source's: a new release's seq follows the source's counter.
    let newer = app.create_release(6).await;
    let r = app.get("/api/v1/releases?limit=1", &app.auditor()).await;
    assert_eq!(r.json::<Value>().await.unwrap()["items"][0]["id"], newer["id"]);
    let pool = crate::backend::pool(to).await;
    let seq: i64 = sqlx::query_scalar("SELECT seq FROM releases WHERE id = $1")
        .bind(id_of(&newer))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(seq, 1001);
    // The triggers are back: the database refuses an approval of an approved release itself.
    let refused = sqlx::query("INSERT INTO approvals (release_id, approver, at) VALUES ($1, 'mallory', 0)")
        .bind(&source.ids["approved"])
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("release_not_pending"), "{refused}");
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn an_installation_is_copied_to_a_new_sqlite_file_row_for_row_with_the_same_audit_head() {
    let source = filled_source().await;
    let target_dir = tempfile::tempdir().unwrap();
    let to = format!("sqlite://{}", target_dir.path().join("dualkey.db").display());
    let (key, dir) = (source.key.clone(), target_dir.path().to_path_buf());
    copies_faithfully(&source, &to, move |s| {
        settings_of(key)(s);
        s.database.url = format!("sqlite://{}?mode=rwc", dir.join("dualkey.db").display());
    })
    .await;
    drop(source.dir);
}

#[tokio::test]
async fn an_installation_is_copied_from_sqlite_to_postgres_with_the_same_audit_head_and_no_password_shown() {
    let Some(run) = crate::backend::postgres() else { return };
    let source = filled_source().await;
    let fresh = crate::backend::fresh_postgres(&run).await;
    // The test server trusts local connections, so the password is only there to be hidden.
    let mut with_password = reqwest::Url::parse(&fresh).unwrap();
    with_password.set_password(Some("pa55-w0rd")).unwrap();
    let (ok, stdout, stderr) = db_copy(&source.url, "postgres://nobody:pa55-w0rd@127.0.0.1:1/none");
    assert!(!ok && !stdout.contains("pa55-w0rd") && !stderr.contains("pa55-w0rd"), "{stdout}\n{stderr}");
    let key = source.key.clone();
    let url = fresh.clone();
    copies_faithfully(&source, with_password.as_str(), move |s| {
        settings_of(key)(s);
        s.database.url = url;
    })
    .await;
}

/// Row counts of every table, and the audit head.
async fn state(url: &str) -> (BTreeMap<String, usize>, (i64, String)) {
    (dump(url).await.into_iter().map(|(t, rows)| (t, rows.len())).collect(), head(url).await)
}

#[tokio::test]
async fn a_copy_into_a_database_that_holds_rows_is_refused_and_changes_nothing() {
    let source = filled_source().await;
    let target = spawn_app().await;
    let on_postgres = target.db_url.starts_with("postgres");
    assert_eq!(on_postgres, crate::backend::is_postgres(), "the target is on the suite's backend");
    target.create_release(9).await;
    let before = state(&target.db_url).await;
    let (ok, stdout, stderr) = db_copy(&source.url, &target.db_url);
    assert!(!ok, "{stdout}");
    assert!(stderr.contains("the target is not empty"), "{stderr}");
    assert_eq!(state(&target.db_url).await, before);
    target.stop().await;
}

#[tokio::test]
async fn a_copy_onto_itself_or_from_a_source_that_is_unreachable_or_not_migrated_is_refused() {
    let source = filled_source().await;
    let before = state(&source.url).await;
    let path = source.url.trim_start_matches("sqlite://").split('?').next().unwrap().to_string();
    let (ok, _, stderr) = db_copy(&source.url, &format!("sqlite://{path}"));
    assert!(!ok && stderr.contains("--from and --to are the same database"), "{stderr}");
    assert_eq!(state(&source.url).await, before);

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("new.db");
    let to = format!("sqlite://{}", target.display());
    let missing = format!("sqlite://{}?mode=rwc", dir.path().join("missing.db").display());
    let (ok, _, stderr) = db_copy(&missing, &to);
    assert!(!ok && stderr.contains("cannot open the source database"), "{stderr}");
    assert!(!Path::new(&dir.path().join("missing.db")).exists(), "the source is never created");

    let empty = dir.path().join("empty.db");
    std::fs::File::create(&empty).unwrap();
    let (ok, _, stderr) = db_copy(&format!("sqlite://{}", empty.display()), &to);
    assert!(!ok && stderr.contains("holds no dualkey database"), "{stderr}");
    assert!(!target.exists(), "nothing written: {stderr}");
}
