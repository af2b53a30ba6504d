//! Forwarding with real `dualkey` processes: a daemon killed with SIGKILL while its syslog
//! receiver is down and its HEC receiver holds a batch unanswered loses nothing; the next one
//! resumes from the stored cursors. Every process runs on the system clock.

use crate::forward_support::*;
use crate::helpers::*;
use crate::syslog_receiver::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::Duration;

const HEC_TOKEN: &str = "0c3e9b8a-5d21-4f6e-a7b4-91d2c8e0f513";

/// Waits until a process answers `/healthz` on `addr`.
async fn serving(addr: &str) {
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/healthz");
    eventually(&format!("a process serving on {addr}"), async || http.get(&url).send().await.is_ok()).await;
}

/// The newest seq and each forwarder's `(delivered_seq, last_error)`, read from the database.
async fn stored(db_url: &str) -> (i64, Vec<(String, i64, Option<String>)>) {
    let pool = crate::backend::pool(db_url).await;
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM audit_log").fetch_one(&pool).await.unwrap();
    let cursors = sqlx::query_as("SELECT name, delivered_seq, last_error FROM audit_forwarders ORDER BY name")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    (head, cursors)
}

async fn request_release(addr: &str, token: &str, n: u32) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/api/v1/releases"))
        .bearer_auth(token)
        .json(&json!({"machine_id": machine(n), "comment": "reimaged and scanned clean"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_daemon_killed_while_its_receivers_are_down_or_stalled_resumes_and_every_entry_arrives_in_order() {
    // The test app is only the simulator, the database's first opener and the token signer.
    let m = spawn_with_mde(test_simulator(), |_| {}).await;
    let (hec, syslog) = (HecReceiver::start(HEC_TOKEN).await, SyslogReceiver::start().await);
    let syslog_addr = syslog.addr;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("hec-token");
    std::fs::write(&token_file, HEC_TOKEN).unwrap();
    let config = m.app.config_path.with_file_name("forwarding.toml");
    let base = std::fs::read_to_string(&m.app.config_path).unwrap();
    let quick = "backoff_base = \"50ms\"\nbackoff_max = \"200ms\"";
    let forward = format!(
        "[[audit.forward]]\nname = \"siem\"\nkind = \"syslog\"\naddress = \"{syslog_addr}\"\n{quick}\n\
         [[audit.forward]]\nname = \"splunk\"\nkind = \"http\"\nurl = \"{}\"\ntoken_file = {token_file:?}\n\
         timeout = \"60s\"\n{quick}\n",
        hec.url
    );
    std::fs::write(&config, format!("{base}{forward}")).unwrap();

    // Both receivers up: the first entries are delivered and the cursors catch up.
    let addr = free_loopback_addr();
    let mut first = m.serve_command(&config, &addr).spawn().map(Daemon).unwrap();
    serving(&addr).await;
    request_release(&addr, &m.app.requester(), 1).await;
    eventually("both cursors at the head", async || {
        let (head, cursors) = stored(&m.app.db_url).await;
        cursors.len() == 2 && cursors.iter().all(|(_, seq, _)| *seq == head)
    })
    .await;
    let (delivered, _) = stored(&m.app.db_url).await;
    let before_outage = syslog.seqs();

    // Then the syslog receiver goes away and the collector holds the next batch unanswered.
    drop(syslog);
    hec.answer(HecAnswer::Hang(Duration::from_secs(600)));
    for n in 2..=4 {
        request_release(&addr, &m.app.requester(), n).await;
    }
    eventually("the collector holding a batch", async || hec.seqs().iter().any(|s| *s > delivered)).await;
    eventually("the syslog failure recorded", async || {
        stored(&m.app.db_url).await.1.iter().any(|(name, _, error)| name == "siem" && error.is_some())
    })
    .await;
    first.kill();

    let (head, cursors) = stored(&m.app.db_url).await;
    assert!(head >= delivered + 3, "three more requests");
    assert_eq!(cursors.iter().map(|(_, seq, _)| *seq).collect::<Vec<_>>(), [delivered, delivered], "{cursors:?}");

    // Both come back, and so does the daemon, on the same database.
    hec.answer(HecAnswer::Accept);
    let mut rebound = None;
    eventually("the syslog port to be free", async || {
        rebound = tokio::net::TcpListener::bind(syslog_addr).await.ok();
        rebound.is_some()
    })
    .await;
    let syslog = SyslogReceiver::start_on(rebound.unwrap(), false).await;
    let addr = free_loopback_addr();
    let _second = m.serve_command(&config, &addr).spawn().map(Daemon).unwrap();
    eventually("both cursors at the head again", async || {
        let (now_head, cursors) = stored(&m.app.db_url).await;
        now_head >= head && cursors.iter().all(|(_, seq, _)| *seq == now_head)
    })
    .await;
    let (head, _) = stored(&m.app.db_url).await;

    let after = syslog.seqs();
    assert_eq!(after.first(), Some(&(delivered + 1)), "syslog resumed from the stored cursor: {after:?}");
    assert_complete_in_order(&[before_outage, after].concat(), head);
    let seqs = hec.seqs();
    assert_complete_in_order(&seqs, head);
    assert!(seqs.len() > first_arrivals(&seqs).len(), "the batch held at the kill was sent again: {seqs:?}");
    assert!(hec.requests().iter().all(|r| r.authorized));
}
