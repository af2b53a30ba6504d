//! The signed Merkle log: keys, checkpoints, and proofs checked against an independent RFC 6962
//! implementation (tests/api/evidence_support.rs) and the C2SP signed-note spec.

use crate::evidence_support::*;
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// A daemon whose log is signed by a key made with `dualkey audit keygen`, with a checkpoint
/// every `every` entries.
pub async fn signed_app(dir: &Path, every: u64) -> (TestApp, String) {
    let (key, verifier) = keygen(dir, "dualkey-test");
    let app = spawn_app_with(|s| {
        s.audit.signing_key_file = Some(key);
        s.audit.origin = Some("dualkey/test".into());
        s.audit.checkpoint_every = every;
    })
    .await;
    (app, verifier)
}

async fn grow(app: &TestApp, releases: u32) {
    for n in 0..releases {
        let id = app.create_release(n).await["id"].as_str().unwrap().to_string();
        assert_eq!(app.approve(&id, &app.approver("bob")).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn keygen_writes_a_key_only_its_owner_can_read_prints_the_verifier_key_and_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let (file, verifier) = keygen(dir.path(), "dualkey-prod");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    let private = std::fs::read_to_string(&file).unwrap();
    assert!(private.starts_with("PRIVATE+KEY+dualkey-prod+"), "Go's signer key format");
    let parts: Vec<&str> = verifier.split('+').collect();
    assert_eq!((parts[0], parts[1].len()), ("dualkey-prod", 8), "{verifier}");
    assert!(!verifier.contains(&private.trim()[20..]), "the verifier key holds no private part");
    let (ok, _, stderr) = run(&["audit", "keygen", "--name", "other", "--out", file.to_str().unwrap()], &[]);
    assert!(!ok && stderr.contains("never overwritten"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), private);
    let (ok, _, stderr) = run(&["audit", "keygen", "--name", "has space", "--out", "/dev/null"], &[]);
    assert!(!ok, "{stderr}");
}

#[tokio::test]
async fn a_checkpoint_every_n_entries_signs_the_root_an_independent_rfc_6962_tree_computes() {
    let dir = tempfile::tempdir().unwrap();
    let (app, verifier) = signed_app(dir.path(), 5).await;
    grow(&app, 6).await;
    let (status, note) = app.get_text("/api/v1/audit/checkpoint", &app.auditor()).await;
    assert_eq!(status, StatusCode::OK, "{note}");
    let cp = open_note(&note, &verifier);
    assert_eq!(cp.origin, "dualkey/test");
    let lines = app.leaf_lines().await;
    let leaves: Vec<H> = lines.iter().map(|l| leaf(l.as_bytes())).collect();
    assert_eq!(
        mth(&leaves[..cp.size as usize]),
        cp.root,
        "the checkpoint signs the tree of the first {} leaves",
        cp.size
    );
    // Every checkpoint record follows the size it signs and comes 5 entries after the last.
    let records = app.audit_actions("checkpoint").await;
    assert!(records.len() >= 2, "{records:?}");
    let mut last_record = 0;
    for r in &records {
        let size = r["details"]["size"].as_u64().unwrap();
        assert_eq!(r["seq"].as_u64().unwrap(), size + 1);
        assert_eq!(size - last_record, 5, "counted from the last checkpoint record");
        last_record = size + 1;
        let opened = open_note(r["details"]["note"].as_str().unwrap(), &verifier);
        assert_eq!((opened.size, opened.root), (size, mth(&leaves[..size as usize])));
        let (status, stored) = app.get_text(&format!("/api/v1/audit/checkpoint?size={size}"), &app.auditor()).await;
        assert_eq!((status, stored.as_str()), (StatusCode::OK, r["details"]["note"].as_str().unwrap()));
    }
    let (status, body) = app.get_text("/api/v1/audit/checkpoint?size=3", &app.auditor()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("checkpoint_not_found"), "{body}");
}

#[tokio::test]
async fn inclusion_and_consistency_proofs_are_the_ones_rfc_6962_defines() {
    let dir = tempfile::tempdir().unwrap();
    let (app, _) = signed_app(dir.path(), 7).await;
    grow(&app, 9).await;
    let leaves: Vec<H> = app.leaf_lines().await.iter().map(|l| leaf(l.as_bytes())).collect();
    let n = leaves.len();
    assert!(n >= 20, "{n}");
    let auditor = app.auditor();
    for size in [1, 2, 3, 7, 8, 13, n] {
        for seq in 1..=size {
            let r: Value = app
                .get(&format!("/api/v1/audit/proof/inclusion?seq={seq}&size={size}"), &auditor)
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(r["index"], seq - 1);
            assert_eq!(r["size"], size);
            assert_eq!(r["hashes"], serde_json::json!(b64s(&path(seq - 1, &leaves[..size]))), "seq {seq} size {size}");
        }
        for from in 1..=size {
            let r: Value = app
                .get(&format!("/api/v1/audit/proof/consistency?from={from}&to={size}"), &auditor)
                .await
                .json()
                .await
                .unwrap();
            assert_eq!(r["hashes"], serde_json::json!(b64s(&proof(from, &leaves[..size]))), "from {from} to {size}");
        }
    }
    for (query, status, code) in [
        (format!("inclusion?seq=0&size={n}"), 400, "invalid_query"),
        ("inclusion?seq=5&size=4".to_string(), 400, "invalid_query"),
        (format!("inclusion?seq=1&size={}", n + 1000), 422, "size_beyond_log"),
        ("inclusion?seq=x&size=3".to_string(), 400, "invalid_query"),
        ("consistency?from=5&to=4".to_string(), 400, "invalid_query"),
        (format!("consistency?from=0&to={n}"), 400, "invalid_query"),
        (format!("consistency?from=1&to={}", n + 1000), 422, "size_beyond_log"),
    ] {
        let (s, c) = error_code(app.get(&format!("/api/v1/audit/proof/{query}"), &auditor).await).await;
        assert_eq!((s.as_u16(), c.as_str()), (status, code), "{query}");
    }
    let (s, c) = error_code(app.get("/api/v1/audit/proof/inclusion?seq=1&size=1", &app.requester()).await).await;
    assert_eq!((s, c.as_str()), (StatusCode::FORBIDDEN, "missing_role"));
}

#[tokio::test]
async fn the_verifier_key_is_public_and_an_unsigned_log_answers_404_log_unsigned() {
    let dir = tempfile::tempdir().unwrap();
    let (app, verifier) = signed_app(dir.path(), 100).await;
    let r = app.http.get(app.url("/api/v1/audit/verifier-key")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    assert_eq!(r.text().await.unwrap().trim(), verifier);

    let unsigned = spawn_app().await;
    let r = unsigned.http.get(unsigned.url("/api/v1/audit/verifier-key")).send().await.unwrap();
    assert_eq!(error_code(r).await, (StatusCode::NOT_FOUND, "log_unsigned".into()));
    for path in [
        "/api/v1/audit/checkpoint",
        "/api/v1/audit/checkpoint?size=1",
        "/api/v1/audit/proof/inclusion?seq=1&size=1",
        "/api/v1/audit/proof/consistency?from=1&to=1",
        "/api/v1/audit/export",
    ] {
        let (s, c) = error_code(unsigned.get(path, &unsigned.auditor()).await).await;
        assert_eq!((s, c.as_str()), (StatusCode::NOT_FOUND, "log_unsigned"), "{path}");
    }
}

#[tokio::test]
async fn a_checkpoint_is_written_each_interval_only_when_entries_were_added_and_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (key, verifier) = keygen(dir.path(), "dualkey-test");
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_simulator(test_simulator(), &clock).await;
    let db_dir = tempfile::tempdir().unwrap();
    let app = spawn_on_in(sim, &clock, Some(db_dir.path()), |s| {
        s.audit.signing_key_file = Some(key);
        s.audit.checkpoint_every = 1000;
        s.audit.checkpoint_interval = "5m".parse().unwrap();
    })
    .await;
    app.create_release(1).await;
    let records = || async { app.audit_actions("checkpoint").await.len() };
    assert_eq!(records().await, 0);
    app.clock.advance(Duration::from_secs(300));
    eventually("the interval's checkpoint", async || records().await == 1).await;
    // Two idle intervals: nothing new, so nothing written (a checkpoint record alone does not
    // count). Had they written one, the next record would not sign release 2's entries.
    app.clock.advance(Duration::from_secs(300));
    app.clock.advance(Duration::from_secs(300));
    app.create_release(2).await;
    let after_two = app.audit().await.last().unwrap()["seq"].as_u64().unwrap();
    app.clock.advance(Duration::from_secs(300));
    eventually("the second interval's checkpoint", async || records().await >= 2).await;
    let second = &app.audit_actions("checkpoint").await[1];
    assert_eq!(second["details"]["size"].as_u64().unwrap(), after_two);
    app.create_release(3).await;
    let head = app.audit().await.last().unwrap()["seq"].as_u64().unwrap();
    app.stop().await;
    let pool =
        sqlx::SqlitePool::connect(&format!("sqlite://{}", db_dir.path().join("dualkey.db").display())).await.unwrap();
    let note: String = sqlx::query_scalar("SELECT note FROM audit_checkpoints ORDER BY size DESC LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(open_note(&note, &verifier).size, head, "the shutdown checkpoint signs every entry");
}
