//! For the `dualkey report` tests: a daemon with a two-role rule and break-glass, a history of
//! releases with every outcome made through its API and worker, the binary, and a CSV reader.

use crate::helpers::*;
use dualkey::clock::{Clock, Timestamp};
use dualkey::mde::simulator::SeedMachine;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

pub const OWNER: &str = "Tier0.Owner";
pub const GLASS: &str = "Release.BreakGlass";
pub const DC: &str = "dc00000000000000000000000000000000000001";
pub const LONG: &str = "Ransomware cleanup verified; payroll server must be back before the bank cutoff";
const POLICY: &str = r#"
approvals_required = 1
request_ttl = "1h"

[[rules]]
name = "tier0"
match = { rbac_groups = ["Domain Controllers"] }
require = [ { role = "Release.Approve", count = 1 }, { role = "Tier0.Owner", count = 1 } ]

[break_glass]
enabled = true
ratify_within = "1h"
"#;

/// A daemon whose policy has a tier0 rule (an approver and a Tier0.Owner, two people) for the
/// domain controller `DC` (`dc01.contoso.com`), and break-glass.
pub async fn report_app() -> MdeApp {
    let mut sim = test_simulator();
    let mut dc = SeedMachine::isolated(DC, "dc01.contoso.com");
    dc.rbac_group_name = "Domain Controllers".into();
    sim.machines.push(dc);
    let policy: toml::Value = toml::from_str(POLICY).unwrap();
    spawn_with_mde(sim, move |s| s.policy = dualkey::rules::PolicyDocument::from_toml(policy).unwrap()).await
}

/// Runs `dualkey report ARGS --config <the app's>`: (success, stdout, stderr).
pub fn report(app: &TestApp, args: &[&str]) -> (bool, String, String) {
    let out = dualkey_command().arg("report").args(args).arg("--config").arg(&app.config_path).output().unwrap();
    (out.status.success(), String::from_utf8(out.stdout).unwrap(), String::from_utf8_lossy(&out.stderr).into())
}

/// Parses RFC 4180 CSV, checking that every record ends with CRLF.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field, mut quoted, mut prev) = (vec![], vec![], String::new(), false, '\0');
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => field.push(chars.next().unwrap()),
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                assert_eq!(prev, '\r', "records end with CRLF: {text:?}");
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
        prev = c;
    }
    assert!(row.is_empty() && field.is_empty() && !quoted, "the last record ends with CRLF: {text:?}");
    rows
}

/// The CSV's records as maps from the header's names, in order.
pub fn csv_records(text: &str) -> Vec<HashMap<String, String>> {
    let mut rows = parse_csv(text).into_iter();
    let header = rows.next().expect("a header row");
    rows.map(|r| {
        assert_eq!(r.len(), header.len());
        header.iter().cloned().zip(r).collect()
    })
    .collect()
}

/// Asserts the named cells of a record.
pub fn expect(row: &HashMap<String, String>, fields: &[(&str, &str)]) {
    for (name, value) in fields {
        assert_eq!(row[*name], *value, "{name} of {}", row["release_id"]);
    }
}

pub async fn request(app: &TestApp, token: &str, body: Value) -> String {
    let r = app.post("/api/v1/releases", token, body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

/// Alice asks to release `machine_id`; returns the id.
pub async fn plain(app: &TestApp, machine_id: &str, comment: &str) -> String {
    request(app, &app.requester(), json!({"machine_id": machine_id, "comment": comment})).await
}

pub async fn reject(app: &TestApp, id: &str, by: &str, comment: &str) {
    let (path, token) = (format!("/api/v1/releases/{id}/reject"), app.approver(by));
    assert_eq!(app.post(&path, &token, json!({"comment": comment})).await.status(), StatusCode::OK);
}

/// Alice cancels her release.
pub async fn cancel(app: &TestApp, id: &str) {
    let (path, token) = (format!("/api/v1/releases/{id}/cancel"), app.requester());
    assert_eq!(app.post(&path, &token, json!({})).await.status(), StatusCode::OK);
}

/// The `at` of the release's audit entry with this action.
pub async fn entry_at(app: &TestApp, id: &str, action: &str) -> String {
    let e = app.audit_actions(action).await.into_iter().find(|e| e["release_id"] == id);
    e.unwrap_or_else(|| panic!("no {action} for {id}"))["at"].as_str().unwrap().to_string()
}

/// One second on the daemon's clock, so every release has a time of its own.
pub fn step(app: &TestApp) -> Timestamp {
    app.clock.advance(Duration::from_secs(1));
    app.clock.now()
}

/// Releases with every outcome inside `[from, to)`, one released before and one after.
pub struct History {
    pub from: Timestamp,
    pub to: Timestamp,
    /// In request order: tier0 (two people, sent, succeeded), rejected by carol, cancelled,
    /// break-glass by gina (sent, ratified by bob), expired.
    pub ids: [String; 5],
}

impl History {
    pub fn window(&self) -> Vec<String> {
        vec!["--from".into(), self.from.rfc3339(), "--to".into(), self.to.rfc3339()]
    }
}

pub async fn history(m: &MdeApp) -> History {
    let app = &m.app;
    let early = plain(app, &machine(9), "before the window").await;
    cancel(app, &early).await;
    let from = step(app);
    let tier0 = plain(app, DC, "reimaged and scanned clean").await;
    step(app);
    assert_eq!(app.approve(&tier0, &app.approver("bob")).await.status(), StatusCode::OK);
    step(app);
    assert_eq!(app.approve(&tier0, &app.token("erin", &[OWNER])).await.status(), StatusCode::OK);
    m.drive_until(&tier0, "succeeded").await;
    step(app);
    let rejected = plain(app, &machine(1), "scanned, please release").await;
    reject(app, &rejected, "carol", "not scanned").await;
    step(app);
    let cancelled = plain(app, &machine(2), "asked by mistake, sorry").await;
    cancel(app, &cancelled).await;
    step(app);
    let body = json!({"machine_id": SEEDED, "comment": LONG, "break_glass": true});
    let glass = request(app, &app.token("gina", &[GLASS]), body).await;
    m.drive_until(&glass, "succeeded").await;
    step(app);
    assert_eq!(app.approve(&glass, &app.approver("bob")).await.status(), StatusCode::OK);
    step(app);
    let expired = plain(app, &machine(3), "nobody will look at this one").await;
    app.clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(app.release(&expired).await["status"], "expired");
    let to = app.clock.now();
    step(app);
    plain(app, &machine(5), "after the window").await;
    History { from, to, ids: [tier0, rejected, cancelled, glass, expired] }
}
