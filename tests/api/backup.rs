//! `dualkey backup` and `dualkey restore` (the real binary) against a daemon on a SQLite file:
//! a backup taken while releases are being written restores to a database whose chain verifies
//! and that holds every release acknowledged before the backup began; and the refusals (a
//! tampered copy, a running daemon, an existing database without --force, PostgreSQL), each of
//! which leaves nothing behind.

use crate::helpers::*;
use dualkey::clock::ManualClock;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A daemon on a SQLite file in `dir` (whatever backend the suite runs on).
async fn sqlite_app(dir: &Path) -> TestApp {
    let clock = ManualClock::new();
    let sim = start_simulator(test_simulator(), &clock).await;
    spawn_on_in(sim, &clock, Some(dir), |_| {}).await
}

/// `app`'s configuration with `database.url` naming `db`, written beside it.
fn config_for(app: &TestApp, db: &Path) -> PathBuf {
    let base = std::fs::read_to_string(&app.config_path).unwrap();
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let config = db.with_extension("toml");
    std::fs::write(&config, base.replace(&app.db_url, &url)).unwrap();
    config
}

/// `dualkey ARGS --config CONFIG`: success, stdout, stderr.
fn dualkey(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = dualkey_command().args(args).arg("--config").arg(config).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// The ids of the releases stored in the SQLite file `db`.
async fn stored_ids(db: &Path) -> Vec<String> {
    let pool = crate::backend::pool(&format!("sqlite://{}?mode=ro", db.display())).await;
    let ids = sqlx::query_scalar("SELECT id FROM releases").fetch_all(&pool).await.unwrap();
    pool.close().await;
    ids
}

#[tokio::test]
async fn a_backup_taken_under_write_load_restores_to_a_verified_database_with_every_acknowledged_release() {
    let dir = tempfile::tempdir().unwrap();
    let app = Arc::new(sqlite_app(dir.path()).await);
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (app, acked, writing) = (app.clone(), acked.clone(), writing.clone());
        tokio::spawn(async move {
            for n in 0..=255 {
                if !writing.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let body = json!({"machine_id": machine(n), "comment": "reimaged and scanned clean"});
                let r = app.post("/api/v1/releases", &app.requester(), body).await;
                assert_eq!(r.status(), StatusCode::CREATED);
                let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
                acked.lock().unwrap().push(id);
            }
        })
    };
    eventually("20 releases acknowledged", async || acked.lock().unwrap().len() >= 20).await;
    let before = acked.lock().unwrap().clone();
    let out = dir.path().join("backup.db");
    let (config, args) = (app.config_path.clone(), ["backup", "--out", path(&out)].map(String::from));
    let backup =
        tokio::task::spawn_blocking(move || dualkey(&config, &args.iter().map(String::as_str).collect::<Vec<_>>()))
            .await
            .unwrap();
    writing.store(false, std::sync::atomic::Ordering::SeqCst);
    writer.await.unwrap();
    let (ok, stdout, stderr) = backup;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("audit chain and tree intact"), "{stdout}");
    let written = acked.lock().unwrap().len();

    let elsewhere = tempfile::tempdir().unwrap();
    let restored = elsewhere.path().join("dualkey.db");
    let config = config_for(&app, &restored);
    let (ok, stdout, stderr) = dualkey(&config, &["restore", "--from", path(&out)]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("restored"), "{stdout}");
    assert_eq!(
        names(elsewhere.path()),
        ["dualkey.db", "dualkey.db-serve.lock", "dualkey.toml"],
        "one file, no temporary"
    );
    let (ok, _, stderr) = dualkey(&config, &["audit", "verify"]);
    assert!(ok, "the restored chain verifies: {stderr}");
    let ids = stored_ids(&restored).await;
    let missing: Vec<&String> = before.iter().filter(|id| !ids.contains(id)).collect();
    assert!(missing.is_empty(), "acknowledged before the backup but not restored: {missing:?}");
    assert!(ids.len() <= written, "the copy holds only releases that were written");
    eprintln!("acknowledged: {} before the backup, {written} by its end; in the copy: {}", before.len(), ids.len());
}

#[tokio::test]
async fn restore_refuses_a_tampered_copy_naming_the_first_bad_entry_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = sqlite_app(dir.path()).await;
    for n in 1..=3 {
        app.create_release(n).await;
    }
    let out = dir.path().join("backup.db");
    let (ok, _, stderr) = dualkey(&app.config_path, &["backup", "--out", path(&out)]);
    assert!(ok, "{stderr}");
    let pool = crate::backend::pool(&format!("sqlite://{}?mode=rw", out.display())).await;
    crate::backend::drop_trigger(&pool, "audit_log", "audit_log_no_update").await;
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3").execute(&pool).await.unwrap();
    pool.close().await;

    let elsewhere = tempfile::tempdir().unwrap();
    let config = config_for(&app, &elsewhere.path().join("dualkey.db"));
    let (ok, _, stderr) = dualkey(&config, &["restore", "--from", path(&out)]);
    assert!(!ok, "a tampered copy is refused");
    assert!(stderr.contains("audit chain broken at entry 3"), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(names(elsewhere.path()), ["dualkey.db-serve.lock", "dualkey.toml"], "no database, no temporary file");
}

#[tokio::test]
async fn restore_refuses_while_a_daemon_holds_the_database_and_replaces_an_idle_one_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let app = sqlite_app(dir.path()).await;
    let kept = app.create_release(1).await["id"].as_str().unwrap().to_string();
    let out = dir.path().join("backup.db");
    let (ok, _, stderr) = dualkey(&app.config_path, &["backup", "--out", path(&out)]);
    assert!(ok, "{stderr}");
    let later = app.create_release(2).await["id"].as_str().unwrap().to_string();

    let db = dir.path().join("dualkey.db");
    let (ok, _, stderr) = dualkey(&app.config_path, &["restore", "--from", path(&out), "--force"]);
    assert!(!ok, "refused while the daemon runs");
    assert!(stderr.contains("a running dualkey daemon holds"), "{stderr}");
    assert_eq!(app.release(&later).await["status"], "pending", "the daemon's database is untouched");
    let config = config_for(&app, &db);
    app.stop().await;

    let (ok, _, stderr) = dualkey(&config, &["restore", "--from", path(&out)]);
    assert!(!ok, "an existing database is replaced only with --force");
    assert!(stderr.contains("pass --force"), "{stderr}");
    assert!(stored_ids(&db).await.contains(&later));

    let (ok, _, stderr) = dualkey(&config, &["restore", "--from", path(&out), "--force"]);
    assert!(ok, "{stderr}");
    assert_eq!(stored_ids(&db).await, [kept], "the database is the backup's");
    let leftovers: Vec<String> = names(dir.path()).into_iter().filter(|n| n.ends_with(".tmp")).collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let (ok, _, stderr) = dualkey(&config, &["audit", "verify"]);
    assert!(ok, "{stderr}");
}

#[tokio::test]
async fn backup_refuses_an_existing_file_without_force_and_a_postgresql_database() {
    let dir = tempfile::tempdir().unwrap();
    let app = sqlite_app(dir.path()).await;
    app.create_release(1).await;
    let out = dir.path().join("backup.db");
    std::fs::write(&out, "an older backup").unwrap();
    let (ok, _, stderr) = dualkey(&app.config_path, &["backup", "--out", path(&out)]);
    assert!(!ok);
    assert!(stderr.contains("exists: pass --force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "an older backup");
    let (ok, _, stderr) = dualkey(&app.config_path, &["backup", "--out", path(&out), "--force"]);
    assert!(ok, "{stderr}");
    assert_eq!(stored_ids(&out).await.len(), 1, "the old file was replaced by the backup");

    let base = std::fs::read_to_string(&app.config_path).unwrap();
    let postgres = dir.path().join("postgres.toml");
    std::fs::write(&postgres, base.replace(&app.db_url, "postgres://dualkey@127.0.0.1:1/dualkey")).unwrap();
    let fresh = dir.path().join("fresh.db");
    let (ok, _, stderr) = dualkey(&postgres, &["backup", "--out", path(&fresh)]);
    assert!(!ok);
    assert!(stderr.contains("PostgreSQL") && stderr.contains("pg_dump"), "{stderr}");
    let (ok, _, stderr) = dualkey(&postgres, &["restore", "--from", path(&out)]);
    assert!(!ok);
    assert!(stderr.contains("pg_restore"), "{stderr}");
    assert!(!fresh.exists());
}
