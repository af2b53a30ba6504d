//! The `dualkey` binary itself: `serve --dev`, `token`, `migrate`, and refusing bad settings.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn dualkey() -> Command {
    dualkey_command()
}

#[tokio::test]
async fn a_minted_token_is_accepted_by_the_daemon() {
    let app = spawn_app().await;
    let out = dualkey()
        .args(["token", "--sub", "carol", "--role", REQUESTER, "--role", AUDITOR, "--ttl", "10m", "--config"])
        .arg(&app.config_path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let r = app
        .post("/api/v1/releases", &token, json!({"machine_id": machine(3), "comment": "reimaged and scanned clean"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.json::<Value>().await.unwrap()["requested_by"], "carol");
}

#[tokio::test]
async fn migrate_creates_the_schema_in_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fresh.db");
    let out = dualkey()
        .arg("migrate")
        .env("DUALKEY_DATABASE__URL", format!("sqlite://{}?mode=rwc", db.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .fetch_all(&pool)
        .await
        .unwrap();
    for table in ["approvals", "audit_log", "releases"] {
        assert!(names.iter().any(|n| n == table), "{names:?}");
    }
}

#[test]
fn an_invalid_setting_stops_start_up_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (var, value, key) in [
        ("DUALKEY_POLICY__REQUEST_TTL", "soon", "policy.request_ttl"),
        ("DUALKEY_SERVER__BIND", "nowhere", "server.bind"),
        ("DUALKEY_MDE__RATE_PER_MINUTE", "0", "mde.rate_per_minute"),
        ("DUALKEY_AUTH__HS256_SECRET", "short", "auth.hs256_secret"),
    ] {
        let out = dualkey()
            .arg("serve")
            .current_dir(dir.path())
            .env(var, value)
            .env("DUALKEY_DATABASE__URL", format!("sqlite://{}/x.db?mode=rwc", dir.path().display()))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{var}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(key), "{var}: {stderr}");
        assert!(!stderr.contains(value) || var != "DUALKEY_AUTH__HS256_SECRET", "secrets are never echoed: {stderr}");
    }
    let out = dualkey().args(["serve", "--config", "/nonexistent/dualkey.toml"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/dualkey.toml"));
}

#[test]
fn a_missing_config_file_is_reported_with_its_os_error_once() {
    let out = dualkey().args(["serve", "--config", "/nonexistent/dualkey.toml"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot read config file /nonexistent/dualkey.toml"), "{stderr}");
    assert_eq!(stderr.matches("os error").count(), 1, "{stderr}");
}

/// Starts `cmd` (a `serve`), waits for its "dualkey listening" log line and returns the daemon,
/// its address and the log lines up to then; stderr keeps draining in the background.
async fn serve_until_listening(mut cmd: Command) -> (Daemon, String, String) {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().map(Daemon).unwrap();
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut log = String::new();
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log.push_str(&line);
            log.push('\n');
            if line.contains("dualkey listening")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(log.clone());
            }
        }
        if let Some(tx) = tx.take() {
            let _ = tx.send(log);
        }
    });
    let log = tokio::time::timeout(std::time::Duration::from_secs(60), rx).await.unwrap().unwrap();
    let start = log.find("addr=").unwrap_or_else(|| panic!("no listening address in {log}")) + "addr=".len();
    let addr: String = log[start..].chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':').collect();
    (child, addr, log)
}

#[tokio::test]
async fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = dualkey();
    cmd.arg("serve")
        .current_dir(dir.path())
        .env("DUALKEY_SERVER__BIND", "127.0.0.1:0")
        .env("DUALKEY_DATABASE__URL", format!("sqlite://{}/x.db?mode=rwc", dir.path().display()));
    let (_daemon, addr, log) = serve_until_listening(cmd).await;
    assert!(addr.starts_with("127.0.0.1:"), "{log}");
    assert!(log.contains("INFO"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape codes in a log that is not a terminal: {log:?}");
}

#[test]
fn environment_variables_reach_nested_settings_and_a_mistyped_one_is_named() {
    let out = dualkey().args(["policy", "check"]).env("DUALKEY_POLICY__BREAK_GLASS__ENABLED", "true").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("break-glass: on"));

    let out = dualkey().args(["policy", "check"]).env("DUALKEY_POLICY__BREAK_GLASS__ENABLD", "true").output().unwrap();
    assert!(!out.status.success(), "a mistyped security setting is never ignored");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("DUALKEY_POLICY__BREAK_GLASS__ENABLD"), "{stderr}");

    let out = dualkey().args(["policy", "check"]).env("DUALKEY_POLICY__MIN_COMMENT_LEN", "abc").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DUALKEY_POLICY__MIN_COMMENT_LEN: policy.min_comment_len: `abc` is not a whole number"),
        "{stderr}"
    );
}

#[tokio::test]
async fn serve_dev_prints_tokens_that_work_and_keeps_the_configured_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dev.db");
    let mut child = dualkey()
        .args(["serve", "--dev"])
        .current_dir(dir.path())
        .env("DUALKEY_SERVER__BIND", "127.0.0.1:0")
        .env("DUALKEY_DATABASE__URL", format!("sqlite://{}?mode=rwc", db.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(Daemon)
        .unwrap();
    let stdout = child.0.stdout.take().unwrap();
    // Read the banner, then keep draining stdout so the daemon never writes to a closed pipe.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            lines.push(line);
            if lines.last().is_some_and(|l| l.contains("ALL_ROLES_TOKEN"))
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(lines.join("\n"));
            }
        }
    });
    let banner = rx.await.expect("the daemon printed its banner");
    assert!(banner.contains("DEVELOPMENT SETUP"), "{banner}");
    let find = |prefix: &str| {
        banner
            .lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|s| s.trim().to_string()))
            .unwrap_or_else(|| panic!("{prefix} in {banner}"))
    };
    let api = find("API:");
    let requester = find("export REQUESTER_TOKEN=");
    let approver = find("export APPROVER_TOKEN=");
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{api}/releases"))
        .bearer_auth(&requester)
        .json(&json!({"machine_id": SEEDED, "comment": "reimaged and scanned clean"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap_or_else(|| panic!("{created}"));
    let approved: Value = http
        .post(format!("{api}/releases/{id}/approve"))
        .bearer_auth(&approver)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(approved["status"], "approved");
    // The token for fuzzers holds every role: the auditor's too.
    let root = find("export ALL_ROLES_TOKEN=");
    let verify = http.get(format!("{api}/audit/verify")).bearer_auth(&root).send().await.unwrap();
    assert_eq!(verify.status(), reqwest::StatusCode::OK);

    // The console it prints signs people in through the development identity provider, and
    // the terminal client learns where to sign in from the same process.
    let console = find("Console:");
    let console = console.split_whitespace().next().unwrap().trim_end_matches("/ui/");
    let alice = crate::console_support::Person::at(console);
    let back = alice.sign_in("alice", "/ui/mine").await;
    assert_eq!(back.status(), reqwest::StatusCode::SEE_OTHER);
    let (_, mine) = alice.page("/ui/mine").await;
    assert!(mine.contains(id), "alice's console lists her release: {mine}");
    let config: Value = http.get(format!("{api}/client-config")).send().await.unwrap().json().await.unwrap();
    assert!(config["issuer"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{config}");
    assert_eq!(config["api_scope"], dualkey::mde::simulator::DEV_API_SCOPE);
    for user in ["alice", "bob", "carol", "olga", "audrey", "bree"] {
        assert!(banner.contains(&format!("    {user} ")), "{user} in {banner}");
    }
    child.kill();
    assert!(db.exists(), "DUALKEY_DATABASE__URL still applies under --dev");
}

#[test]
fn the_benchmark_runs_and_prints_its_figures() {
    let args = ["bench", "--releases", "20", "--concurrency", "2", "--latency-samples", "5", "--log-entries", "600"];
    let out = dualkey().args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for figure in [
        "raw SQLite commits:",
        "API create+approve:",
        "ratio API commits / raw:",
        "p50",
        "p99",
        "log append, one entry per commit:",
        "checkpoint at ",
        "inclusion proof at ",
        "offline verify of the ",
    ] {
        assert!(stdout.contains(figure), "{figure} missing from {stdout}");
    }
    assert!(!stdout.contains("FAILED"), "{stdout}");
    for line in [
        "20 requested, 20 approved, 0 errors",
        "stored: 20 releases, 20 approved: every release accounted for; audit chain verified",
    ] {
        assert!(stdout.contains(line), "{line} missing from {stdout}");
    }
}

#[test]
fn the_benchmark_runs_for_a_duration_and_accounts_for_every_release() {
    let args = [
        "bench",
        "--duration",
        "30ms",
        "--releases",
        "400",
        "--concurrency",
        "4",
        "--latency-samples",
        "1",
        "--log-entries",
        "0",
    ];
    let out = dualkey().args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("4 clients for 30ms"), "{stdout}");
    let load = stdout.lines().find(|l| l.starts_with("load: 4 clients")).expect("a load line");
    assert!(load.ends_with(" 0 errors"), "{load}");
    assert!(stdout.contains("every release accounted for; audit chain verified"), "{stdout}");
}

/// `dualkey simulator` on a free loopback port, and the lines it prints.
fn simulator_process() -> (Daemon, impl Iterator<Item = String> + Send) {
    let mut sim = dualkey()
        .args(["simulator", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = sim.stdout.take().unwrap();
    (Daemon(sim), BufReader::new(stdout).lines().map_while(Result::ok))
}

#[tokio::test]
async fn the_standalone_simulator_serves_mde_and_prints_how_to_reach_it() {
    let (_sim, mut lines) = simulator_process();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(lines.next().unwrap_or_default());
        lines.for_each(drop);
    });
    let first = rx.await.unwrap();
    let base = first.split_whitespace().find(|w| w.starts_with("http://")).unwrap().trim_end_matches('.').to_string();
    let r = reqwest::get(format!("{base}/api/machines/{SEEDED}")).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "Unauthorized");
    assert!(body["error"]["target"].is_string());
}

#[tokio::test]
async fn a_daemon_given_the_settings_the_simulator_prints_releases_devices() {
    let (_sim, mut lines) = simulator_process();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let printed: Vec<String> = lines.by_ref().take_while(|l| !l.starts_with("Isolated machines")).collect();
        let _ = tx.send(printed);
        lines.for_each(drop);
    });
    let printed = rx.await.unwrap();
    let settings: Vec<(String, String)> = printed
        .iter()
        .filter_map(|l| l.trim().split_once('='))
        .filter(|(k, _)| k.starts_with("DUALKEY_"))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();

    // Exactly what the simulator printed, plus a port and a database of the test's own.
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = dualkey();
    cmd.arg("serve")
        .current_dir(dir.path())
        .envs(settings)
        .env("DUALKEY_SERVER__BIND", "127.0.0.1:0")
        .env("DUALKEY_DATABASE__URL", format!("sqlite://{}/x.db?mode=rwc", dir.path().display()));
    let (_daemon, addr, _) = serve_until_listening(cmd).await;
    let token = |role: &str, sub: &str| {
        let out = dualkey().current_dir(dir.path()).args(["token", "--sub", sub, "--role", role]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let http = reqwest::Client::new();
    let api = format!("http://{addr}/api/v1");
    let created: Value = http
        .post(format!("{api}/releases"))
        .bearer_auth(token(REQUESTER, "alice"))
        .json(&json!({"machine_id": SEEDED, "comment": "reimaged and scanned clean"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap_or_else(|| panic!("{created}")).to_string();
    let r = http.post(format!("{api}/releases/{id}/approve")).bearer_auth(token(APPROVER, "bob")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The background worker sends it at once; without it the release would stay approved.
    let auditor = token(AUDITOR, "audrey");
    for _ in 0..250 {
        let release: Value =
            http.get(format!("{api}/releases/{id}")).bearer_auth(&auditor).send().await.unwrap().json().await.unwrap();
        if release["mde_action_id"].is_string() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the daemon never sent the approved release to the simulator: {printed:?}");
}

#[tokio::test]
async fn serve_says_whether_its_log_is_signed_and_refuses_a_signing_key_others_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let serve = |key: Option<&std::path::Path>| {
        let mut cmd = dualkey();
        cmd.arg("serve")
            .current_dir(dir.path())
            .env("DUALKEY_SERVER__BIND", "127.0.0.1:0")
            .env("DUALKEY_DATABASE__URL", format!("sqlite://{}/x.db?mode=rwc", dir.path().display()));
        if let Some(k) = key {
            cmd.env("DUALKEY_AUDIT__SIGNING_KEY_FILE", k);
        }
        cmd
    };
    let (mut daemon, _, log) = serve_until_listening(serve(None)).await;
    assert!(log.contains("the audit log is unsigned"), "{log}");
    daemon.kill();
    let (key, verifier) = crate::evidence_support::keygen(dir.path(), "dualkey-test");
    let (mut daemon, _, log) = serve_until_listening(serve(Some(&key))).await;
    assert!(log.contains("the audit log is signed") && log.contains(&verifier), "{log}");
    daemon.kill();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = serve(Some(&key)).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("can be read by others"), "{stderr}");
}
