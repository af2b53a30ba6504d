//! What a client sends reaches the daemon's log escaped and cut short, and refused tokens cannot
//! flood it: the real binary, its stderr read line by line.

use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Serves the test JWKS on loopback.
async fn jwks_url() -> String {
    let app = axum::Router::new()
        .route("/keys", axum::routing::get(|| async { ([("content-type", "application/json")], RS256_JWKS) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/keys", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

/// `dualkey serve` with RS256 on, its stderr lines sent to the returned channel, and its address.
async fn serve_with_log() -> (Daemon, mpsc::Receiver<String>, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = dualkey_command()
        .arg("serve")
        .current_dir(dir.path())
        .env("DUALKEY_SERVER__BIND", "127.0.0.1:0")
        .env("DUALKEY_DATABASE__URL", format!("sqlite://{}?mode=rwc", dir.path().join("d.db").display()))
        .env("DUALKEY_AUTH__JWKS_URL", jwks_url().await)
        .env("DUALKEY_AUTH__ISSUER", ISSUER)
        .env("DUALKEY_AUTH__AUDIENCE", AUDIENCE)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Daemon)
        .unwrap();
    let stderr = daemon.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Raw bytes, split on '\n' only: an escape sequence must show up as it was written.
        for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
            let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
        }
    });
    let listening = rx
        .iter()
        .find(|l| l.contains("dualkey listening"))
        .unwrap_or_else(|| panic!("the daemon exited before listening"));
    let port: String = listening.split("127.0.0.1:").nth(1).unwrap().chars().take_while(char::is_ascii_digit).collect();
    (daemon, rx, format!("http://127.0.0.1:{port}"), dir)
}

/// Stops the daemon with SIGTERM and returns every line it wrote after start-up.
fn stop_and_collect(mut daemon: Daemon, rx: mpsc::Receiver<String>) -> Vec<String> {
    let term = Command::new("kill").args(["-TERM", &daemon.0.id().to_string()]).status().unwrap();
    assert!(term.success());
    let exit = daemon.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
    rx.recv_timeout(Duration::from_secs(10)).into_iter().chain(rx.iter()).collect()
}

#[tokio::test]
async fn a_kid_with_a_newline_escapes_and_60_kb_is_logged_as_one_escaped_truncated_line() {
    let (daemon, rx, base, _dir) = serve_with_log().await;
    let forged = "2030-01-01T00:00:00Z  INFO dualkey: release approved";
    let kid = format!("k1\n{forged}\u{1b}[2J\u{1b}[31m{}", "A".repeat(60 * 1024));
    let token = rs256_token(RS256_KEY, &kid, json!({"sub": "mallory", "roles": [AUDITOR]}));
    let http = reqwest::Client::new();
    let r = http.get(format!("{base}/api/v1/releases")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let lines = stop_and_collect(daemon, rx);
    let log = lines.join("\n");
    assert!(!log.contains('\u{1b}'), "no terminal escape reaches the log: {log}");
    let mentions: Vec<&String> = lines.iter().filter(|l| l.contains("2030-01-01")).collect();
    assert_eq!(mentions.len(), 1, "one line, no forged second line: {mentions:#?}");
    let line = mentions[0];
    assert!(line.contains("WARN") && line.contains("token refused"), "{line}");
    assert!(line.contains(r"unknown signing key id `k1\n2030-01-01T"), "the newline is escaped: {line}");
    assert!(line.contains("more characters]"), "the kid is cut with a marker: {line}");
    assert!(line.contains(r"approved\u{1b}[2J\u{1b}[31mAAA"), "ESC is escaped: {line}");
    assert!(line.len() < 1024, "{} bytes", line.len());
    assert!(log.len() < 8 * 1024, "a 60 KB kid adds no more than a line to the log ({} bytes)", log.len());
}

#[tokio::test]
async fn many_refused_tokens_write_a_bounded_number_of_log_lines() {
    let (daemon, rx, base, _dir) = serve_with_log().await;
    let http = reqwest::Client::new();
    for i in 0..100 {
        let r = http.get(format!("{base}/api/v1/releases")).bearer_auth(format!("not.a.jwt{i}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let lines = stop_and_collect(daemon, rx);
    let refusals = lines.iter().filter(|l| l.contains("token refused")).count();
    assert_eq!(refusals, dualkey::logsafe::REFUSAL_LOG_LINES as usize, "100 refusals, a bounded number of lines");
}
