//! Migration 20261201000003 gives an existing trail its release chains and its Merkle tree:
//! a database written before it upgrades with every entry a leaf, and the tree verifies.

use crate::audit::{AuditEntry, GENESIS_HASH, entry_hash, leaf_line};
use crate::clock::Timestamp;
use crate::db::Db;
use crate::settings::DatabaseSettings;
use crate::tlog::{TreeBuilder, leaf_hash};
use sqlx::{ConnectOptions, Connection, sqlite::SqliteConnectOptions};
use std::str::FromStr;

#[tokio::test]
async fn an_existing_trail_gets_its_release_chains_and_its_tree_when_dualkey_migrates() {
    let dir = tempfile::tempdir().unwrap();
    let old = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir("migrations/sqlite").unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.as_str() < "20261201000003" {
            std::fs::copy(&path, old.path().join(name)).unwrap();
        }
    }
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let mut conn = SqliteConnectOptions::from_str(&url).unwrap().connect().await.unwrap();
    sqlx::migrate::Migrator::new(old.path()).await.unwrap().run(&mut conn).await.unwrap();
    // Five entries as the old code wrote them: two about release r1, one about r2, two about none.
    let subjects = [None, Some("r1"), Some("r2"), Some("r1"), None];
    let mut prev = GENESIS_HASH.to_string();
    for (i, rid) in subjects.iter().enumerate() {
        let mut e = AuditEntry {
            seq: i as i64 + 1,
            at: Timestamp::from_unix_ms(1_764_000_000_000 + i as i64),
            actor: "alice".into(),
            action: "release_requested".into(),
            release_id: rid.map(str::to_string),
            machine_id: None,
            release_prev_seq: None,
            details: "{}".into(),
            prev_hash: prev.clone(),
            hash: String::new(),
        };
        e.hash = entry_hash(&e).unwrap();
        prev = e.hash.clone();
        sqlx::query("INSERT INTO audit_log (seq, at, actor, action, release_id, machine_id, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(e.seq).bind(e.at).bind(&e.actor).bind(&e.action).bind(&e.release_id).bind(&e.machine_id).bind(&e.details).bind(&e.prev_hash).bind(&e.hash)
            .execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let db = Db::connect(&DatabaseSettings { url, ..Default::default() }).await.unwrap();
    db.migrate().await.unwrap();
    let mut c = db.reader().await.unwrap();
    let entries = crate::db::audit::list(&mut c, 0, 100, None).await.unwrap();
    let chains: Vec<Option<i64>> = entries.iter().map(|e| e.release_prev_seq).collect();
    assert_eq!(chains, [None, None, None, Some(2), None]);
    assert!(crate::audit::verify_entries(&entries).is_ok(), "the hash chain is unchanged");
    let mut builder = TreeBuilder::new();
    for e in &entries {
        builder.push(leaf_hash(leaf_line(e).as_bytes()));
    }
    assert_eq!(crate::db::tree::size(&mut c).await.unwrap(), 5);
    assert_eq!(crate::audit::tree::root(&mut c, 5).await.unwrap(), builder.root());
    let report = crate::audit::verify_tree(&db, None).await.unwrap();
    assert!(report.ok, "{report:?}");
    // A second start adds nothing.
    drop(c);
    db.migrate().await.unwrap();
    let mut c = db.reader().await.unwrap();
    assert_eq!(crate::db::tree::size(&mut c).await.unwrap(), 5);
}
