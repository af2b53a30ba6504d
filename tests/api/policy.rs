//! Release policy through the HTTP API, against devices as the MDE simulator describes them.

use crate::helpers::*;
use dualkey::mde::simulator::{FaultAction, RouteKind, SeedMachine, SimulatorConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

const OWNER: &str = "Tier0.Owner";
const DC: &str = "dc00000000000000000000000000000000000001";
const RISKY: &str = "bad0000000000000000000000000000000000001";
const KIOSK: &str = "c105c00000000000000000000000000000000001";
const ISOLATOR_UPN: &str = "analyst@contoso.onmicrosoft.com";

const POLICY: &str = r#"
approvals_required = 1
request_ttl = "24h"
min_comment_len = 10

[[rules]]
name = "high-risk"
match = { risk_scores = ["High"] }
deny = "High-risk devices are released only after the incident is closed in MDE"

[[rules]]
name = "tier0"
match = { rbac_groups = ["Domain Controllers"] }
require = [ { role = "Release.Approve", count = 1 }, { role = "Tier0.Owner", count = 1 } ]
request_ttl = "2h"
exclude_isolator = true

[[rules]]
name = "kiosks"
match = { computer_dns_names = ["kiosk-*"] }
exclude_isolator = true
"#;

fn policy_simulator() -> SimulatorConfig {
    let mut config = test_simulator();
    let mut dc = SeedMachine::isolated(DC, "dc01.contoso.com");
    dc.rbac_group_name = "Domain Controllers".into();
    let mut risky = SeedMachine::isolated(RISKY, "laptop-risky.contoso.com");
    risky.risk_score = "High".into();
    let kiosk = SeedMachine::isolated(KIOSK, "kiosk-lobby-02.contoso.com");
    for m in [&dc, &risky, &kiosk] {
        assert_eq!(m.isolated_by, ISOLATOR_UPN, "the simulator's seeded isolator");
    }
    config.machines.extend([dc, risky, kiosk]);
    config
}

fn with_policy(text: &str) -> impl FnOnce(&mut dualkey::settings::Settings) + use<> {
    let value: toml::Value = toml::from_str(text).unwrap();
    move |s| s.policy = dualkey::rules::PolicyDocument::from_toml(value).unwrap()
}

async fn app_with(text: &str) -> TestApp {
    spawn_with_simulator(policy_simulator(), with_policy(text)).await
}

async fn request(app: &TestApp, token: &str, machine_id: &str) -> reqwest::Response {
    app.post("/api/v1/releases", token, json!({"machine_id": machine_id, "comment": "reimaged and scanned clean"}))
        .await
}

async fn requested(app: &TestApp, machine_id: &str) -> Value {
    let r = request(app, &app.requester(), machine_id).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

#[tokio::test]
async fn a_tier0_device_needs_two_distinct_people_with_two_different_roles() {
    let app = app_with(POLICY).await;
    let release = requested(&app, DC).await;
    let id = release["id"].as_str().unwrap().to_string();
    assert_eq!(release["policy"]["rule"], "tier0");
    assert_eq!(release["approvals_required"], 2);
    assert_eq!(release["policy"]["device"]["rbac_group_name"], "Domain Controllers");
    let both = app.token("bob", &[APPROVER, OWNER]);
    let r: Value = app.approve(&id, &both).await.json().await.unwrap();
    assert_eq!(r["status"], "pending", "one person holding both roles fills only one slot");
    let filled: usize =
        r["policy"]["slots"].as_array().unwrap().iter().map(|s| s["filled_by"].as_array().unwrap().len()).sum();
    assert_eq!(filled, 1);
    let r = app.approve(&id, &app.token("erin", &[OWNER])).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r: Value = r.json().await.unwrap();
    assert_eq!(r["status"], "approved", "bob moves to the slot erin cannot fill");
    let slots = r["policy"]["slots"].as_array().unwrap();
    assert_eq!(slots[0], json!({"role": APPROVER, "count": 1, "filled_by": ["bob"]}));
    assert_eq!(slots[1], json!({"role": OWNER, "count": 1, "filled_by": ["erin"]}));
}

#[tokio::test]
async fn an_approval_that_fills_no_open_slot_is_refused() {
    let app = app_with(POLICY).await;
    let id = requested(&app, DC).await["id"].as_str().unwrap().to_string();
    assert_eq!(app.approve(&id, &app.approver("carol")).await.status(), StatusCode::OK);
    let r = app.approve(&id, &app.approver("dave")).await;
    assert_eq!(error_code(r).await, (StatusCode::CONFLICT, "no_open_slot".into()));
    assert_eq!(app.release(&id).await["status"], "pending");
    let refused = app.audit_actions("approval_refused").await;
    assert_eq!(refused[0]["details"]["reason"], "no_open_slot");
}

#[tokio::test]
async fn whoever_isolated_the_device_may_not_approve_its_release_under_exclude_isolator() {
    let app = app_with(POLICY).await;
    let release = requested(&app, KIOSK).await;
    assert_eq!(release["policy"]["isolated_by"], ISOLATOR_UPN);
    let id = release["id"].as_str().unwrap().to_string();
    let isolator =
        app.token_with(json!({"sub": "oid-of-analyst", "roles": [APPROVER], "upn": ISOLATOR_UPN.to_uppercase()}));
    let r = app.approve(&id, &isolator).await;
    assert_eq!(error_code(r).await, (StatusCode::FORBIDDEN, "isolator_excluded".into()));
    let refused = app.audit_actions("approval_refused").await;
    assert_eq!(refused[0]["details"]["reason"], "isolator_excluded");
    assert_eq!(app.approve(&id, &app.approver("bob")).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_deny_rule_refuses_the_request_with_its_reason_and_stores_nothing() {
    let app = app_with(POLICY).await;
    let r = request(&app, &app.requester(), RISKY).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "denied_by_policy");
    assert_eq!(body["error"]["rule"], "high-risk");
    assert!(body["error"]["message"].as_str().unwrap().contains("incident is closed"));
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 0);
    let refused = app.audit_actions("request_refused").await;
    assert_eq!(refused[0]["details"]["reason"], "denied_by_policy");
    assert_eq!(refused[0]["machine_id"], RISKY);
}

#[tokio::test]
async fn an_unknown_machine_is_refused_at_request_time() {
    let app = app_with(POLICY).await;
    let r = request(&app, &app.requester(), &"e".repeat(40)).await;
    assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "unknown_machine".into()));
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 0);
}

#[tokio::test]
async fn an_unreachable_mde_refuses_the_request_instead_of_guessing() {
    let app = app_with(POLICY).await;
    app.sim.inject(RouteKind::GetMachine, FaultAction::status(503), 1);
    let r = request(&app, &app.requester(), DC).await;
    assert_eq!(error_code(r).await, (StatusCode::SERVICE_UNAVAILABLE, "mde_unavailable".into()));
    assert_eq!(app.count("SELECT COUNT(*) FROM releases").await, 0);
}

#[tokio::test]
async fn velocity_guards_limit_requests_and_approvals_per_hour() {
    let policy = format!("max_requests_per_requester_per_hour = 2\nmax_approvals_per_approver_per_hour = 1\n{POLICY}");
    let app = app_with(&policy).await;
    let first = requested(&app, &machine(1)).await["id"].as_str().unwrap().to_string();
    let second = requested(&app, &machine(2)).await["id"].as_str().unwrap().to_string();
    let r = request(&app, &app.requester(), &machine(3)).await;
    assert_eq!(error_code(r).await, (StatusCode::TOO_MANY_REQUESTS, "request_rate_exceeded".into()));
    assert_eq!(app.approve(&first, &app.approver("bob")).await.status(), StatusCode::OK);
    let r = app.approve(&second, &app.approver("bob")).await;
    assert_eq!(error_code(r).await, (StatusCode::TOO_MANY_REQUESTS, "approval_rate_exceeded".into()));
    // An hour later both guards have room again.
    app.clock.advance(std::time::Duration::from_secs(3601));
    assert_eq!(app.approve(&second, &app.approver("bob")).await.status(), StatusCode::OK);
    assert_eq!(request(&app, &app.requester(), &machine(3)).await.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn the_policy_hash_is_recorded_at_start_up_and_again_only_when_it_changes() {
    let app = app_with(POLICY).await;
    let loaded = app.audit_actions("policy_loaded").await;
    assert_eq!(loaded.len(), 1);
    let hash = loaded[0]["details"]["policy_hash"].as_str().unwrap().to_string();
    let release = requested(&app, DC).await;
    assert_eq!(release["policy"]["policy_hash"], hash.as_str(), "a release keeps the policy it was requested under");
    let db_url = app.db_url.clone();
    let same = spawn_on(app.sim.clone(), &app.clock, {
        let db_url = db_url.clone();
        let set = with_policy(POLICY);
        move |s| {
            set(s);
            s.database.url = db_url;
        }
    })
    .await;
    assert_eq!(same.audit_actions("policy_loaded").await.len(), 1, "same policy, no new entry");
    let changed = spawn_on(app.sim.clone(), &app.clock, {
        let set = with_policy(&POLICY.replace("request_ttl = \"2h\"", "request_ttl = \"3h\""));
        move |s| {
            set(s);
            s.database.url = db_url;
        }
    })
    .await;
    let loaded = changed.audit_actions("policy_loaded").await;
    assert_eq!(loaded.len(), 2);
    assert_ne!(loaded[1]["details"]["policy_hash"], hash.as_str());
}

#[tokio::test]
async fn an_approval_past_its_ttl_is_never_acted_on() {
    let policy = format!("approval_ttl = \"1h\"\n{POLICY}");
    let app = app_with(&policy).await;
    let worker = app.worker.clone().unwrap();
    let id = requested(&app, &machine(1)).await["id"].as_str().unwrap().to_string();
    assert_eq!(app.approve(&id, &app.approver("bob")).await.status(), StatusCode::OK);
    app.clock.advance(std::time::Duration::from_secs(3601));
    worker.run_until_idle().await.unwrap();
    let r = app.release(&id).await;
    assert_eq!(r["status"], "expired");
    assert!(r["last_error"].as_str().unwrap().contains("approval expired"), "{r}");
    assert_eq!(app.sim.count(RouteKind::Unisolate), 0, "nothing was sent");
    assert_eq!(app.audit_actions("approval_expired").await.len(), 1);
}

fn policy_file(dir: &std::path::Path, policy: &str) -> std::path::PathBuf {
    let path = dir.join("dualkey.toml");
    let indented: String = policy
        .lines()
        .map(|l| if l.starts_with("[[rules]]") { "[[policy.rules]]\n".to_string() } else { format!("{l}\n") })
        .collect();
    let text = format!(
        "[auth]\nhs256_secret = \"{}\"\nissuer = \"i\"\naudience = \"a\"\n[mde]\nworker_enabled = false\n[policy]\n{indented}",
        "x".repeat(32)
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn dualkey(args: &[&str], config: &std::path::Path) -> std::process::Output {
    dualkey_command().args(args).arg("--config").arg(config).output().unwrap()
}

#[test]
fn policy_check_prints_the_rules_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let out = dualkey(&["policy", "check"], &policy_file(dir.path(), POLICY));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for words in ["tier0", "Tier0.Owner", "Domain Controllers", "high-risk", "incident is closed", "policy hash:"] {
        assert!(text.contains(words), "{words} missing from:\n{text}");
    }
}

#[test]
fn a_bad_policy_is_refused_by_check_and_at_start_up_naming_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    let bad = POLICY.replace(
        "count = 1 }, { role = \"Tier0.Owner\", count = 1 }",
        "count = 0 }, { role = \"Tier0.Owner\", count = 1 }",
    );
    let config = policy_file(dir.path(), &bad);
    for args in [&["policy", "check"][..], &["serve"][..]] {
        let out = dualkey(args, &config);
        assert!(!out.status.success(), "{args:?} accepted a bad policy");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("tier0") && stderr.contains("count"), "{args:?}: {stderr}");
        let header =
            std::fs::read_to_string(&config).unwrap().lines().filter(|l| l.starts_with("[[policy.rules]]")).count();
        assert_eq!(header, 3);
        assert!(stderr.contains("line "), "start-up names the rule's line: {stderr}");
    }
    let glass = policy_file(
        dir.path(),
        &format!("{POLICY}\n[policy.break_glass]\nenabled = true\nrole = \"Release.Approve\"\n"),
    );
    let out = dualkey(&["policy", "check"], &glass);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("break_glass"), "{}", String::from_utf8_lossy(&out.stderr));
}

async fn count_action(db_url: &str, action: &str) -> i64 {
    let Ok(pool) = crate::backend::try_pool(db_url).await else { return 0 };
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = $1")
        .bind(action)
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
    pool.close().await;
    n
}

async fn wait_for_count(db_url: &str, action: &str, n: i64) {
    for _ in 0..200 {
        if count_action(db_url, action).await == n {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never saw {n} {action} entries (saw {})", count_action(db_url, action).await);
}

#[tokio::test]
async fn sighup_reloads_a_good_policy_and_keeps_the_old_one_on_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}?mode=rwc", dir.path().join("d.db").display());
    let write = |policy: &str| {
        let path = policy_file(dir.path(), policy);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("[server]\nbind = \"127.0.0.1:0\"\n[database]\nurl = \"{db_url}\"\n{text}"))
            .unwrap();
        path
    };
    let config = write(POLICY);
    let mut daemon = Daemon(
        dualkey_command()
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_count(&db_url, "policy_loaded", 1).await;
    let hup = |d: &Daemon| {
        assert!(std::process::Command::new("kill").args(["-HUP", &d.0.id().to_string()]).status().unwrap().success())
    };
    write(&POLICY.replace("request_ttl = \"2h\"", "request_ttl = \"3h\""));
    hup(&daemon);
    wait_for_count(&db_url, "policy_loaded", 2).await;
    write(&POLICY.replace("count = 1 }, { role = \"Tier0.Owner\"", "count = 0 }, { role = \"Tier0.Owner\""));
    hup(&daemon);
    wait_for_count(&db_url, "policy_reload_refused", 1).await;
    assert!(daemon.0.try_wait().unwrap().is_none(), "a bad reload never stops the daemon");
    assert_eq!(count_action(&db_url, "policy_loaded").await, 2, "the previous policy stays in force");
    daemon.kill();
}

#[tokio::test]
async fn a_velocity_guards_429_says_in_retry_after_when_the_window_has_room() {
    let policy = format!("max_requests_per_requester_per_hour = 2\nmax_approvals_per_approver_per_hour = 1\n{POLICY}");
    let app = app_with(&policy).await;
    let minutes = |m: u64| std::time::Duration::from_secs(60 * m);
    let retry_after = |r: &reqwest::Response| -> u64 {
        r.headers().get("retry-after").expect("a 429 carries Retry-After").to_str().unwrap().parse().unwrap()
    };
    let first = requested(&app, &machine(1)).await["id"].as_str().unwrap().to_string();
    app.clock.advance(minutes(10));
    let second = requested(&app, &machine(2)).await["id"].as_str().unwrap().to_string();
    app.clock.advance(minutes(10));
    // The first request (20 minutes ago) leaves the hour in 40 minutes.
    let r = request(&app, &app.requester(), &machine(3)).await;
    let wait = retry_after(&r);
    assert_eq!(error_code(r).await.1, "request_rate_exceeded");
    assert!((2390..=2400).contains(&wait), "Retry-After: {wait}");

    assert_eq!(app.approve(&first, &app.approver("bob")).await.status(), StatusCode::OK);
    app.clock.advance(minutes(15));
    let r = app.approve(&second, &app.approver("bob")).await;
    let wait = retry_after(&r);
    assert_eq!(error_code(r).await.1, "approval_rate_exceeded");
    assert!((2690..=2700).contains(&wait), "Retry-After: {wait}");
    // Waiting that long is enough.
    app.clock.advance(std::time::Duration::from_secs(wait));
    assert_eq!(app.approve(&second, &app.approver("bob")).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_sighup_that_raises_min_comment_len_is_enforced_on_create_and_on_reject() {
    let m = spawn_with_mde(test_simulator(), |_| {}).await;
    let base_config = std::fs::read_to_string(&m.app.config_path).unwrap();
    let config = m.app.config_path.with_file_name("reloading.toml");
    let write =
        |min: u32| std::fs::write(&config, format!("{base_config}[policy]\nmin_comment_len = {min}\n")).unwrap();
    write(12);
    let addr = free_loopback_addr();
    let mut daemon = m.serve_command(&config, &addr).spawn().map(Daemon).unwrap();
    wait_for_count(&m.app.db_url, "policy_loaded", 2).await;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");
    for _ in 0..200 {
        if http.get(url("/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let post = |path: String, token: String, body: Value| {
        let request = http.post(url(&path)).bearer_auth(token).json(&body);
        async move { request.send().await.unwrap() }
    };
    let fifteen = "scanned, clean.";
    let twenty_five = "scanned, clean, reimaged.";
    assert_eq!((fifteen.len(), twenty_five.len()), (15, 25));
    let create = |n: u32, comment: &str| {
        post("/api/v1/releases".into(), m.app.requester(), json!({"machine_id": machine(n), "comment": comment}))
    };

    let r = create(1, fifteen).await;
    assert_eq!(r.status(), StatusCode::CREATED, "15 characters meet the minimum of 12");
    let first = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();

    write(20);
    assert!(std::process::Command::new("kill").args(["-HUP", &daemon.0.id().to_string()]).status().unwrap().success());
    wait_for_count(&m.app.db_url, "policy_loaded", 3).await;

    let r = create(2, fifteen).await;
    assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "invalid_comment".into()), "on create");
    assert_eq!(m.app.count("SELECT COUNT(*) FROM releases").await, 1, "the refused request stored nothing");
    let reject = |comment: &str| {
        post(format!("/api/v1/releases/{first}/reject"), m.app.approver("bob"), json!({"comment": comment}))
    };
    let r = reject(fifteen).await;
    assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "invalid_comment".into()), "on reject");
    assert_eq!(m.app.release(&first).await["status"], "pending");
    assert_eq!(reject(twenty_five).await.status(), StatusCode::OK, "a comment that meets the new minimum");
    assert_eq!(create(2, twenty_five).await.status(), StatusCode::CREATED);
    let recorded = m.app.audit_actions("release_requested").await;
    let in_force = m.app.audit_actions("policy_loaded").await[2]["details"]["policy_hash"].clone();
    assert_eq!(recorded[1]["details"]["policy_hash"], in_force, "requested under the policy that checked it");
    daemon.kill();
}
