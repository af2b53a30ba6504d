//! Exports of the trail: the host's `dualkey audit export` and `GET /api/v1/audit/export`,
//! checked offline with `dualkey audit verify --file EXPORT --key KEY`, and the host's own
//! `dualkey audit verify` over the tree and the stored checkpoints.

use crate::evidence_support::*;
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A signed daemon with some history, a config file for the host commands, and the key.
async fn history() -> (TestApp, PathBuf, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (key, verifier) = keygen(dir.path(), "dualkey-test");
    let k = key.clone();
    let app = spawn_app_with(move |s| {
        s.audit.signing_key_file = Some(k);
        s.audit.origin = Some("dualkey/test".into());
        s.audit.checkpoint_every = 4;
    })
    .await;
    for n in 0..5 {
        let id = app.create_release(n).await["id"].as_str().unwrap().to_string();
        app.approve(&id, &app.approver("bob")).await;
    }
    let config = dir.path().join("signed.toml");
    let base = std::fs::read_to_string(&app.config_path).unwrap();
    std::fs::write(
        &config,
        format!("{base}[audit]\nsigning_key_file = \"{}\"\norigin = \"dualkey/test\"\n", key.display()),
    )
    .unwrap();
    (app, config, verifier, dir)
}

fn verify_file(file: &Path, key: &str, kept: Option<&Path>) -> (bool, String, String) {
    let mut args = vec!["audit", "verify", "--file", file.to_str().unwrap(), "--key", key];
    if let Some(k) = kept {
        args.extend(["--checkpoint", k.to_str().unwrap()]);
    }
    run(&args, &[])
}

fn write_lines(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    path
}

fn fails(result: (bool, String, String), what: &str) {
    assert!(!result.0, "must fail naming {what}: {}", result.1);
    assert!(result.2.contains(what), "names {what}: {}", result.2);
}

#[tokio::test]
async fn a_whole_export_verifies_offline_and_an_edited_removed_or_cut_line_is_named() {
    let (app, config, verifier, dir) = history().await;
    let out = dir.path().join("export.jsonl");
    let (ok, _, stderr) = tokio::task::spawn_blocking({
        let (config, out) = (config.clone(), out.clone());
        move || run(&["audit", "export", "--config", config.to_str().unwrap(), "--out", out.to_str().unwrap()], &[])
    })
    .await
    .unwrap();
    assert!(ok, "{stderr}");
    let text = std::fs::read_to_string(&out).unwrap();
    let (status, http) = app.get_text("/api/v1/audit/export", &app.auditor()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(http, text, "the API and the host export the same bytes");
    let (lines, trailer) = split_export(&text);
    assert_eq!(lines.len() as u64, open_note(trailer["checkpoint"].as_str().unwrap(), &verifier).size);
    assert!(trailer.get("proofs").is_none(), "an export from entry 1 is checked by its root");
    let (ok, stdout, stderr) = verify_file(&out, &verifier, None);
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&format!("entries 1..{}", lines.len())), "{stdout}");

    let trailer_line = text.lines().last().unwrap().to_string();
    let mut edited = lines.clone();
    let i = lines.iter().position(|l| l.contains("\"actor\":\"bob\"")).unwrap();
    edited[i] = edited[i].replace("\"actor\":\"bob\"", "\"actor\":\"mallory\"");
    edited.push(trailer_line.clone());
    fails(verify_file(&write_lines(dir.path(), "edited", &edited), &verifier, None), "leaf_content");
    let mut removed = lines.clone();
    removed.remove(2);
    removed.push(trailer_line.clone());
    fails(verify_file(&write_lines(dir.path(), "removed", &removed), &verifier, None), "entry_missing");
    let mut last_removed = lines.clone();
    last_removed.pop();
    last_removed.push(trailer_line.clone());
    fails(verify_file(&write_lines(dir.path(), "tail", &last_removed), &verifier, None), "entry_missing");
    fails(verify_file(&write_lines(dir.path(), "cut", &lines), &verifier, None), "trailer_missing");
    let (_, other) = keygen(dir.path(), "other");
    fails(verify_file(&out, &other, None), "checkpoint_signature");
}

#[tokio::test]
async fn a_window_export_carries_a_proof_per_line_and_checks_consistency_with_a_kept_checkpoint() {
    let (app, _config, verifier, dir) = history().await;
    let (_, kept_note) = app.get_text("/api/v1/audit/checkpoint", &app.auditor()).await;
    let kept = dir.path().join("kept.note");
    std::fs::write(&kept, &kept_note).unwrap();
    let kept_size = open_note(&kept_note, &verifier).size;
    let all = app.audit().await;
    let from = all[5]["at"].as_str().unwrap().to_string();
    for n in 10..12 {
        app.create_release(n).await;
    }
    let url = format!("/api/v1/audit/export?from={}&consistency_from={kept_size}", urlencode(&from));
    let (status, text) = app.get_text(&url, &app.auditor()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let (lines, trailer) = split_export(&text);
    let first: Value = serde_json::from_str(&lines[0]).unwrap();
    assert!(first["seq"].as_u64().unwrap() > 1);
    assert_eq!(trailer["proofs"].as_object().unwrap().len(), lines.len());
    assert_eq!(trailer["consistency"]["from"], kept_size);
    let file = dir.path().join("window.jsonl");
    std::fs::write(&file, &text).unwrap();
    let (ok, stdout, stderr) = verify_file(&file, &verifier, Some(&kept));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("only grew"), "{stdout}");

    let mut t = trailer.clone();
    let seq = first["seq"].to_string();
    t["proofs"][&seq][0] = Value::String(b64s(&[[9u8; 32]])[0].clone());
    let mut altered = lines.clone();
    altered.push(t.to_string());
    fails(verify_file(&write_lines(dir.path(), "altered", &altered), &verifier, None), "inclusion_proof");
    let mut t = trailer.clone();
    t["consistency"]["hashes"][0] = Value::String(b64s(&[[9u8; 32]])[0].clone());
    let mut rewritten = lines.clone();
    rewritten.push(t.to_string());
    fails(verify_file(&write_lines(dir.path(), "rewritten", &rewritten), &verifier, Some(&kept)), "consistency");
    let (s, c) = error_code(app.get("/api/v1/audit/export?from=yesterday", &app.auditor()).await).await;
    assert_eq!((s, c.as_str()), (StatusCode::BAD_REQUEST, "invalid_query"));
    let (s, c) = error_code(app.get("/api/v1/audit/export?to=2000-01-01T00%3A00%3A00Z", &app.auditor()).await).await;
    assert_eq!((s, c.as_str()), (StatusCode::NOT_FOUND, "no_entries_in_range"));
    let (s, c) = error_code(app.get("/api/v1/audit/export?consistency_from=999999", &app.auditor()).await).await;
    assert_eq!((s, c.as_str()), (StatusCode::UNPROCESSABLE_ENTITY, "consistency_from_beyond_export"));
}

fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}

#[tokio::test]
async fn audit_verify_on_the_host_rebuilds_the_tree_checks_each_checkpoint_and_names_an_edited_node() {
    let (app, config, _verifier, _dir) = history().await;
    let host_verify = |config: PathBuf| async move {
        tokio::task::spawn_blocking(move || run(&["audit", "verify", "--config", config.to_str().unwrap()], &[]))
            .await
            .unwrap()
    };
    let (ok, stdout, stderr) = host_verify(config.clone()).await;
    assert!(ok, "{stderr}");
    assert!(stderr.contains("audit tree intact") && stderr.contains("with their signatures"), "{stderr}");
    let report: Value = serde_json::from_str(&stdout[stdout.find("}\n{").unwrap() + 2..]).unwrap();
    assert!(report["checkpoints_checked"].as_u64().unwrap() >= 3, "{report}");
    let pool = app.raw_db().await;
    crate::backend::drop_trigger(&pool, "audit_tree", "audit_tree_no_update").await;
    sqlx::query("UPDATE audit_tree SET hash = $1 WHERE level = 1 AND idx = 1")
        .bind(vec![0u8; 32])
        .execute(&pool)
        .await
        .unwrap();
    let (ok, _, stderr) = host_verify(config).await;
    assert!(!ok);
    assert!(stderr.contains("stored tree node (1, 1)"), "{stderr}");
}
