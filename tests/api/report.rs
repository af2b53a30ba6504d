//! `dualkey report`, the separation-of-duties report: the real binary against the database of a
//! running daemon whose releases were made, decided and sent through its HTTP API and worker.

use crate::helpers::*;
use crate::report_support::*;
use dualkey::clock::Clock;
use serde_json::{Value, json};

#[tokio::test]
async fn the_csv_report_has_one_row_per_release_in_the_window_with_who_approved_under_which_roles() {
    let m = report_app().await;
    let h = history(&m).await;
    let app = &m.app;
    let args = h.window();
    let (ok, stdout, stderr) = report(app, &args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(ok, "{stderr}");
    assert!(stderr.contains("5 releases requested in"), "{stderr}");
    let rows = csv_records(&stdout);
    let ids: Vec<&str> = rows.iter().map(|r| r["release_id"].as_str()).collect();
    assert_eq!(ids, h.ids.iter().map(String::as_str).collect::<Vec<_>>(), "in request order, and only the window");
    let [tier0, rejected, cancelled, glass, expired] = &h.ids;
    let (t, r, c, g, e) = (
        app.release(tier0).await,
        app.release(rejected).await,
        app.release(cancelled).await,
        app.release(glass).await,
        app.release(expired).await,
    );
    let s = |v: &Value| v.as_str().unwrap().to_string();

    let (dispatched, finished) =
        (entry_at(app, tier0, "unisolate_accepted").await, entry_at(app, tier0, "release_succeeded").await);
    expect(
        &rows[0],
        &[
            ("machine_id", DC),
            ("device_name", "dc01.contoso.com"),
            ("requester", "alice"),
            ("requested_at", &s(&t["requested_at"])),
            ("rule", "tier0"),
            ("policy_hash", &s(&t["policy"]["policy_hash"])),
            ("approvals_required", "2"),
            ("approvers", "bob (Release.Approve); erin (Tier0.Owner)"),
            ("decided_at", &s(&t["approved_at"])),
            ("decided_by", "erin"),
            ("dispatched_at", &dispatched),
            ("finished_at", &finished),
            ("break_glass", "false"),
            ("ratified_by", ""),
            ("outcome", "succeeded"),
            ("mde_action_id", &s(&t["mde_action_id"])),
            ("mde_action_status", "Succeeded"),
        ],
    );
    assert!(rows[0]["mde_action_id"].len() > 10);
    expect(
        &rows[1],
        &[
            ("requester", "alice"),
            ("rule", "default"),
            ("approvals_required", "1"),
            ("approvers", ""),
            ("decided_at", &s(&r["decided_at"])),
            ("decided_by", "carol"),
            ("decision_comment", "not scanned"),
            ("dispatched_at", ""),
            ("finished_at", ""),
            ("outcome", "rejected"),
            ("mde_action_id", ""),
        ],
    );
    expect(&rows[2], &[("decided_at", &s(&c["decided_at"])), ("decided_by", "alice"), ("outcome", "cancelled")]);
    let glass_sent = entry_at(app, glass, "unisolate_accepted").await;
    expect(
        &rows[3],
        &[
            ("machine_id", SEEDED),
            ("device_name", &s(&g["policy"]["device"]["computer_dns_name"])),
            ("requester", "gina"),
            ("comment", LONG),
            ("approvers", "bob (Release.Approve)"),
            ("decided_at", &s(&g["requested_at"])),
            ("decided_by", "gina"),
            ("dispatched_at", &glass_sent),
            ("break_glass", "true"),
            ("ratified_by", "bob"),
            ("ratified_at", &s(&g["break_glass"]["ratified_at"])),
            ("outcome", "succeeded"),
            ("mde_action_id", &s(&g["mde_action_id"])),
        ],
    );
    expect(
        &rows[4],
        &[
            ("requested_at", &s(&e["requested_at"])),
            ("expires_at", &s(&e["expires_at"])),
            ("decided_at", &entry_at(app, expired, "release_expired").await),
            ("decided_by", "system:dualkey"),
            ("approvers", ""),
            ("outcome", "expired"),
        ],
    );
}

#[tokio::test]
async fn the_json_report_has_the_same_rows_with_approvers_as_objects_and_out_writes_a_file() {
    let m = report_app().await;
    let h = history(&m).await;
    let app = &m.app;
    let args = h.window();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, csv, _) = report(app, &args);
    assert!(ok);
    let (ok, stdout, stderr) = report(app, &[&args[..], &["--format", "json"]].concat());
    assert!(ok, "{stderr}");
    let rows: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let csv_rows = csv_records(&csv);
    assert_eq!(rows.len(), 5);
    for (json, csv) in rows.iter().zip(&csv_rows) {
        let object = json.as_object().unwrap();
        assert_eq!(object.len(), csv.len(), "the same fields");
        for (name, cell) in csv {
            let as_csv = match &object[name] {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                Value::Array(_) => cell.clone(),
                other => other.to_string(),
            };
            assert_eq!(&as_csv, cell, "{name}");
        }
    }
    let approvers = &rows[0]["approvers"];
    assert_eq!(approvers[0]["approver"], "bob");
    assert_eq!(approvers[0]["roles"], json!([APPROVER]));
    assert_eq!(approvers[1], json!({"approver": "erin", "roles": [OWNER], "at": rows[0]["decided_at"]}));
    assert_eq!((rows[3]["break_glass"].clone(), rows[0]["approvals_required"].clone()), (json!(true), json!(2)));
    assert!(rows[1]["mde_action_id"].is_null());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sod.json");
    let (ok, out, _) = report(app, &[&args[..], &["--format", "json", "--out", file.to_str().unwrap()]].concat());
    assert!(ok && out.is_empty());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), stdout);
}

#[tokio::test]
async fn a_formula_in_a_comment_is_neutralised_in_the_csv_and_kept_as_written_in_json() {
    let m = report_app().await;
    let app = &m.app;
    let from = app.clock.now();
    let formula = r#"=HYPERLINK("http://evil.example/","reimaged, click")"#;
    let id = plain(app, &machine(1), formula).await;
    reject(app, &id, "carol", "-1 not scanned").await;
    let to = step(app);
    let window = ["--from", &from.rfc3339(), "--to", &to.rfc3339()];
    let (ok, csv, stderr) = report(app, &window);
    assert!(ok, "{stderr}");
    assert!(csv.contains(r#","'=HYPERLINK(""http://evil.example/"",""reimaged, click"")","#), "{csv}");
    let rows = csv_records(&csv);
    expect(&rows[0], &[("comment", &format!("'{formula}")), ("decision_comment", "'-1 not scanned")]);
    let (_, json, _) = report(app, &[&window[..], &["--format", "json"]].concat());
    let rows: Vec<Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(
        (rows[0]["comment"].as_str(), rows[0]["decision_comment"].as_str()),
        (Some(formula), Some("-1 not scanned"))
    );
}

#[tokio::test]
async fn a_plain_date_means_midnight_utc_and_an_empty_window_is_a_header_or_an_empty_array() {
    let m = report_app().await;
    let app = &m.app;
    let id = plain(app, &machine(1), "reimaged and scanned clean").await;
    let today = app.clock.now().to_datetime().date();
    let (yesterday, tomorrow) = (today.previous_day().unwrap().to_string(), today.next_day().unwrap().to_string());
    let (ok, csv, _) = report(app, &["--from", &yesterday, "--to", &tomorrow]);
    assert!(ok);
    let rows = csv_records(&csv);
    assert_eq!(rows.len(), 1);
    expect(&rows[0], &[("release_id", &id), ("outcome", "pending"), ("decided_at", "")]);
    let (ok, csv, stderr) = report(app, &["--from", "2020-01-01", "--to", "2020-01-02"]);
    assert!(ok && stderr.contains("0 releases"), "{stderr}");
    assert_eq!(parse_csv(&csv).len(), 1, "the header alone: {csv}");
    let (ok, json, _) = report(app, &["--from", "2020-01-01", "--to", "2020-01-02", "--format", "json"]);
    assert!(ok);
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), json!([]));
}

#[tokio::test]
async fn a_bad_window_is_refused_with_a_clear_error_and_a_non_zero_exit() {
    let app = spawn_app().await;
    for (args, says) in [
        (["--from", "yesterday", "--to", "2026-03-04"], "invalid value 'yesterday' for '--from <TIME>'"),
        (["--from", "2026-03-03", "--to", "03/04/2026"], "invalid value '03/04/2026' for '--to <TIME>'"),
        (["--from", "2026-03-04", "--to", "2026-03-03"], "must be before --to"),
    ] {
        let (ok, stdout, stderr) = report(&app, &args);
        assert!(!ok, "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{stdout}");
    }
    let (_, _, stderr) = report(&app, &["--from", "yesterday", "--to", "2026-03-04"]);
    assert!(stderr.contains("RFC 3339") && stderr.contains("2026-03-03"), "says what it takes: {stderr}");
}

#[test]
fn the_report_never_creates_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("none.db");
    let out = dualkey_command()
        .args(["report", "--from", "2026-03-03", "--to", "2026-03-04"])
        .env("DUALKEY_DATABASE__URL", format!("sqlite://{}?mode=rwc", db.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"));
    assert!(!db.exists(), "a report only reads");
}
