//! Notifications with real `dualkey` processes: messages pending when the daemon is killed are
//! delivered by the next one, `dualkey notify test` reports the receiver's answer in its exit
//! code, and a refused SIGHUP reload is notified. Every process runs on the system clock.

use crate::helpers::*;
use crate::notify_support::{Answer, Receiver, whsec};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;

/// `[notify]` with one webhook channel `hook` at `url`, quick retries (the process runs on
/// the system clock), and a route of `events` to it.
fn notify_section(url: &str, events: &[&str]) -> String {
    let events = events.iter().map(|e| format!("\"{e}\"")).collect::<Vec<_>>().join(", ");
    format!(
        "[notify]\nbackoff_base = \"50ms\"\nbackoff_max = \"100ms\"\n\
         [[notify.channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret = \"{}\"\n\
         [[notify.routes]]\nevents = [{events}]\nchannels = [\"hook\"]\n",
        whsec()
    )
}

/// Waits until a process answers `/healthz` on `addr`.
async fn serving(addr: &str) {
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/healthz");
    eventually(&format!("a process serving on {addr}"), async || http.get(&url).send().await.is_ok()).await;
}

async fn outbox(db_url: &str) -> Vec<(String, String)> {
    let pool = crate::backend::pool(db_url).await;
    let rows = sqlx::query_as("SELECT id, status FROM notify_outbox ORDER BY seq").fetch_all(&pool).await.unwrap();
    pool.close().await;
    rows
}

#[tokio::test]
async fn a_daemon_killed_with_messages_pending_delivers_them_after_restart() {
    // The test app is only the simulator, the database's first opener and the token signer.
    let m = spawn_with_mde(test_simulator(), |_| {}).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_addr = listener.local_addr().unwrap();
    let refusing = Receiver::start_on(listener).await;
    refusing.answer(std::iter::repeat_n(Answer::Status(503), 100_000));
    let config = m.app.config_path.with_file_name("notifying.toml");
    let base = std::fs::read_to_string(&m.app.config_path).unwrap();
    std::fs::write(&config, format!("{base}{}", notify_section(&refusing.url, &["release.requested"]))).unwrap();

    let addr = free_loopback_addr();
    let mut first = m.serve_command(&config, &addr).spawn().map(Daemon).unwrap();
    serving(&addr).await;
    let http = reqwest::Client::new();
    let mut made = Vec::new();
    for n in 1..=3 {
        let r = http
            .post(format!("http://{addr}/api/v1/releases"))
            .bearer_auth(m.app.requester())
            .json(&json!({"machine_id": machine(n), "comment": "reimaged and scanned clean"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        made.push(r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string());
    }
    eventually("two refused tries", async || refusing.received().iter().filter(|r| r.status == 503).count() >= 2).await;
    first.kill();

    let refused = refusing.received();
    assert!(refused.iter().all(|r| r.status == 503), "nothing was accepted before the kill");
    let pending = outbox(&m.app.db_url).await;
    assert_eq!(pending.len(), 3, "one message per request");
    assert!(pending.iter().all(|(_, status)| status == "pending"), "{pending:?}");
    // Strictly in order: only the oldest was ever tried, always with its one id.
    let refused_ids: Vec<String> = refused.iter().map(|r| r.header("webhook-id")).collect();
    assert!(refused_ids.iter().all(|id| *id == pending[0].0), "{refused_ids:?} vs {pending:?}");

    // The receiver comes back on the same address answering 200, and so does the daemon.
    drop(refusing);
    let mut rebound = None;
    eventually("the receiver's port to be free", async || {
        rebound = tokio::net::TcpListener::bind(hook_addr).await.ok();
        rebound.is_some()
    })
    .await;
    let hook = Receiver::start_on(rebound.unwrap()).await;
    let addr = free_loopback_addr();
    let _second = m.serve_command(&config, &addr).spawn().map(Daemon).unwrap();
    eventually("every message delivered", async || {
        outbox(&m.app.db_url).await.iter().all(|(_, status)| status == "delivered")
    })
    .await;

    let got = hook.received();
    assert_eq!(got.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200, 200], "each exactly once");
    let ids: Vec<String> = got.iter().map(|r| r.header("webhook-id")).collect();
    let written: Vec<String> = pending.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, written, "in the order written, with the ids they had before the kill");
    assert_eq!(ids[0], refused_ids[0], "the refused message keeps its webhook-id");
    let order: Vec<&str> = got.iter().map(|r| r.body["data"]["release"]["id"].as_str().unwrap()).collect();
    assert_eq!(order, made);
    assert!(got.iter().all(crate::notify_support::Received::signed));
}

/// `dualkey notify test CHANNEL --config CONFIG`, run off the test's runtime (the receiver
/// answers on it meanwhile).
async fn notify_test(channel: &str, config: &Path) -> (bool, String, String) {
    let mut cmd = dualkey_command();
    cmd.args(["notify", "test", channel, "--config"]).arg(config);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap()).await.unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[tokio::test]
async fn notify_test_sends_a_test_message_and_exits_non_zero_unless_accepted() {
    let hook = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dualkey.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nhs256_secret = \"{}\"\nissuer = \"i\"\naudience = \"a\"\n[mde]\nworker_enabled = false\n{}",
            "x".repeat(32),
            notify_section(&hook.url, &["release.requested"])
        ),
    )
    .unwrap();
    let leaks = |out: &str| out.contains(&hook.url) || out.contains(&whsec()) || out.contains("/hook");

    let (ok, stdout, stderr) = notify_test("hook", &config).await;
    assert!(ok, "accepted: exit 0\n{stdout}\n{stderr}");
    assert!(stdout.lines().next().is_some_and(|l| l.trim() == "200"), "{stdout}");
    let got = hook.received();
    assert_eq!(got.len(), 1, "one message");
    assert_eq!(got[0].body["type"], "notify.test");
    assert!(got[0].body["data"]["release"].is_null());
    assert!(got[0].signed(), "signed with the channel's secret");
    assert!(!leaks(&stdout) && !leaks(&stderr), "{stdout}\n{stderr}");

    hook.answer([Answer::Status(400)]);
    let (ok, stdout, stderr) = notify_test("hook", &config).await;
    let out = format!("{stdout}\n{stderr}");
    assert!(!ok, "refused: non-zero exit\n{out}");
    assert!(out.contains("400"), "{out}");
    assert!(!leaks(&out), "{out}");
    assert_eq!(hook.received().len(), 2);

    let (ok, stdout, stderr) = notify_test("no-such-hook", &config).await;
    let out = format!("{stdout}\n{stderr}");
    assert!(!ok, "an unknown channel: non-zero exit\n{out}");
    assert!(stderr.contains("no-such-hook"), "names the channel: {out}");
    assert!(!leaks(&out), "{out}");
    assert_eq!(hook.received().len(), 2, "nothing sent");
}

#[tokio::test]
async fn a_refused_policy_reload_is_notified_with_the_reason_and_the_path() {
    let hook = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dualkey.toml");
    let addr = free_loopback_addr();
    let db_url = format!("sqlite://{}?mode=rwc", dir.path().join("d.db").display());
    let good = format!(
        "[server]\nbind = \"{addr}\"\n[database]\nurl = \"{db_url}\"\n\
         [auth]\nhs256_secret = \"{}\"\nissuer = \"i\"\naudience = \"a\"\n[mde]\nworker_enabled = false\n{}",
        "x".repeat(32),
        notify_section(&hook.url, &["policy.reload_refused"])
    );
    std::fs::write(&config, &good).unwrap();
    let daemon = Daemon(
        dualkey_command()
            .args(["serve", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    serving(&addr).await;

    let bad = "[[policy.rules]]\nname = \"tier0\"\nmatch = { rbac_groups = [\"Domain Controllers\"] }\nrequire = [ { role = \"Release.Approve\", count = 0 } ]\n";
    std::fs::write(&config, format!("{good}{bad}")).unwrap();
    let hup = std::process::Command::new("kill").args(["-HUP", &daemon.0.id().to_string()]).status().unwrap();
    assert!(hup.success());
    eventually("the refused reload notified", async || !hook.delivered_types().is_empty()).await;

    let got = hook.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let body = &got[0].body;
    assert_eq!(body["type"], "policy.reload_refused");
    assert_eq!(body["data"]["path"], config.display().to_string(), "the file it was read from");
    let reason = body["data"]["reason"].as_str().unwrap();
    assert!(reason.contains("tier0") && reason.contains("count"), "names the rule and what is wrong: {reason}");
    assert!(got[0].signed());
    let mut daemon = daemon;
    assert!(daemon.0.try_wait().unwrap().is_none(), "a refused reload never stops the daemon");
}
