use crate::backend::{drop_trigger, refuse_inserts};
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;

async fn verify(app: &TestApp) -> Value {
    let r = app.get("/api/v1/audit/verify", &app.auditor()).await;
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

fn cli_verify(app: &TestApp) -> (bool, String, String) {
    let out = dualkey_command().args(["audit", "verify", "--config"]).arg(&app.config_path).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// A small history: two releases requested, one approved, one refused self-approval.
async fn history(app: &TestApp) -> String {
    let id = app.create_release(1).await["id"].as_str().unwrap().to_string();
    app.create_release(2).await;
    app.approve(&id, &app.approver("bob")).await;
    app.approve(&id, &app.token("alice", &[APPROVER])).await;
    id
}

#[tokio::test]
async fn every_entry_links_to_the_one_before_and_the_chain_verifies() {
    let app = spawn_app().await;
    let id = history(&app).await;
    let entries = app.audit().await;
    assert_eq!(entries.len(), 6);
    assert_eq!(entries[0]["prev_hash"], "0".repeat(64));
    assert_eq!(entries[0]["action"], "policy_loaded", "the policy in force comes first");
    assert_eq!(entries[0]["actor"], "system:dualkey");
    for (i, pair) in entries.windows(2).enumerate() {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"], "link {i}");
        assert_eq!(pair[1]["seq"].as_i64().unwrap(), pair[0]["seq"].as_i64().unwrap() + 1);
    }
    let first = &entries[1];
    assert_eq!(first["actor"], "alice");
    assert_eq!(first["action"], "release_requested");
    assert_eq!(first["release_id"], id.as_str());
    assert_eq!(first["machine_id"], machine(1));
    assert_eq!(first["details"]["comment"], "reimaged and scanned clean");
    assert!(first["at"].as_str().unwrap().ends_with('Z'));

    let report = verify(&app).await;
    assert_eq!(report["ok"], true);
    assert_eq!(report["entries"], 6);
    assert_eq!(report["head"], entries[5]["hash"]);
    let (ok, stdout, _) = cli_verify(&app);
    assert!(ok, "{stdout}");
}

#[tokio::test]
async fn audit_entries_page_and_filter_by_release() {
    let app = spawn_app().await;
    let id = history(&app).await;
    let page: Value = app.get("/api/v1/audit?limit=2", &app.auditor()).await.json().await.unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    assert_eq!(page["next_after_seq"], 2);
    let page: Value = app.get("/api/v1/audit?after_seq=2&limit=10", &app.auditor()).await.json().await.unwrap();
    assert_eq!(page["items"][0]["seq"], 3);
    assert!(page["next_after_seq"].is_null());
    let mine: Value = app.get(&format!("/api/v1/audit?release_id={id}"), &app.auditor()).await.json().await.unwrap();
    assert!(mine["items"].as_array().unwrap().iter().all(|e| e["release_id"] == id.as_str()));
    assert_eq!(mine["items"].as_array().unwrap().len(), 4);
    let r = app.get("/api/v1/audit?release_id=nope", &app.auditor()).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_audit_api_needs_the_auditor_role() {
    let app = spawn_app().await;
    for path in ["/api/v1/audit", "/api/v1/audit/verify"] {
        let r = app.get(path, &app.approver("bob")).await;
        assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "missing_role".into()), "{path}");
    }
}

#[tokio::test]
async fn the_database_refuses_to_update_or_delete_audit_entries() {
    let app = spawn_app().await;
    history(&app).await;
    let pool = app.raw_db().await;
    let update = sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1").execute(&pool).await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = sqlx::query("DELETE FROM audit_log WHERE seq = 1").execute(&pool).await;
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    let approvals = sqlx::query("DELETE FROM approvals").execute(&pool).await;
    assert!(approvals.is_err());
}

#[tokio::test]
async fn tampering_with_a_row_after_dropping_the_triggers_is_caught_by_verify() {
    let app = spawn_app().await;
    history(&app).await;
    let pool = app.raw_db().await;
    drop_trigger(&pool, "audit_log", "audit_log_no_update").await;
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3").execute(&pool).await.unwrap();
    pool.close().await;

    let report = verify(&app).await;
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_bad_seq"], 3);
    assert_eq!(report["reason"], "content_altered");
    let (ok, stdout, stderr) = cli_verify(&app);
    assert!(!ok, "the CLI must exit non-zero");
    assert!(stderr.contains("entry 3"), "{stderr}");
    assert!(stdout.contains("\"first_bad_seq\": 3"), "{stdout}");
}

#[tokio::test]
async fn a_rehashed_forgery_breaks_the_next_link_and_a_deleted_entry_leaves_a_gap() {
    let app = spawn_app().await;
    history(&app).await;
    let pool = app.raw_db().await;
    drop_trigger(&pool, "audit_log", "audit_log_no_update").await;
    drop_trigger(&pool, "audit_log", "audit_log_no_delete").await;
    // Forge entry 2 completely, with a correct hash of its own: entry 3 no longer links to it.
    let entries = app.audit().await;
    let mut forged = dualkey::audit::AuditEntry {
        seq: 2,
        at: dualkey::clock::Timestamp::from_unix_ms(entries[1]["at_ms"].as_i64().unwrap()),
        actor: "mallory".into(),
        action: entries[1]["action"].as_str().unwrap().into(),
        release_id: entries[1]["release_id"].as_str().map(Into::into),
        machine_id: entries[1]["machine_id"].as_str().map(Into::into),
        release_prev_seq: entries[1]["release_prev_seq"].as_i64(),
        details: dualkey::canonical::canonical_json(&entries[1]["details"]),
        prev_hash: entries[1]["prev_hash"].as_str().unwrap().into(),
        hash: String::new(),
    };
    forged.hash = dualkey::audit::entry_hash(&forged).unwrap();
    sqlx::query("UPDATE audit_log SET actor = $1, hash = $2 WHERE seq = 2")
        .bind(&forged.actor)
        .bind(&forged.hash)
        .execute(&pool)
        .await
        .unwrap();
    let report = verify(&app).await;
    assert_eq!((report["first_bad_seq"].clone(), report["reason"].clone()), (3.into(), "link_broken".into()));

    sqlx::query("DELETE FROM audit_log WHERE seq = 2").execute(&pool).await.unwrap();
    let report = verify(&app).await;
    assert_eq!(report["reason"], "sequence_gap");
    assert_eq!(report["first_bad_seq"], 2);
}

#[tokio::test]
async fn the_changes_and_their_entries_commit_together_or_not_at_all() {
    let app = spawn_app().await;
    app.create_release(1).await;
    // Break the audit table for writers: every change must now fail, and leave nothing behind.
    let pool = app.raw_db().await;
    refuse_inserts(&pool, "audit_log", "disk full").await;
    let r = app
        .post(
            "/api/v1/releases",
            &app.requester(),
            serde_json::json!({"machine_id": machine(2), "comment": "reimaged and scanned clean"}),
        )
        .await;
    assert!(r.status().is_server_error());
    let body: Value = r.json().await.unwrap();
    assert!(!body.to_string().contains("disk full"), "internals never reach clients: {body}");
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 1, "no release without its audit entry");
}
