//! Off-host copies of the audit trail (`[[audit.forward]]`), delivered over real sockets to
//! receivers the tests start on loopback: every entry from seq 1, in order, as RFC 5424 syslog
//! (plain and TLS) and as Splunk HEC batches, through receiver outages and dropped connections,
//! with `/readyz` showing each forwarder's lag and last error.

use crate::forward_support::*;
use crate::helpers::*;
use crate::syslog_receiver::*;
use dualkey::settings::ForwardSettings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

/// The longest backoff the forwarders of these tests wait: each round of [`until`] moves the
/// clock by this much.
const BACKOFF_MAX: Duration = Duration::from_secs(4);
const HEC_TOKEN: &str = "8d5c1a1e-0f7b-4c39-9d2e-3b5a1c7e9f00";

fn forwarder(name: &str, kind: &str, keys: &str) -> ForwardSettings {
    toml::from_str(&format!(
        "name = \"{name}\"\nkind = \"{kind}\"\nbackoff_base = \"1s\"\nbackoff_max = \"4s\"\n{keys}"
    ))
    .unwrap()
}

fn syslog_to(name: &str, addr: impl std::fmt::Display, keys: &str) -> ForwardSettings {
    forwarder(name, "syslog", &format!("address = \"{addr}\"\n{keys}"))
}

/// An HEC forwarder to `hec`, its token in a file of `dir`.
fn hec_to(name: &str, hec: &HecReceiver, dir: &tempfile::TempDir) -> ForwardSettings {
    let token_file = dir.path().join(format!("{name}-token"));
    std::fs::write(&token_file, format!("{HEC_TOKEN}\n")).unwrap();
    forwarder(name, "http", &format!("url = \"{}\"\ntoken_file = {:?}", hec.url, token_file))
}

async fn app_forwarding(forward: Vec<ForwardSettings>) -> TestApp {
    spawn_app_with(move |s| s.audit.forward = forward).await
}

async fn readyz(app: &TestApp) -> Value {
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "a forwarder never makes the instance unready");
    r.json().await.unwrap()
}

/// Moves the clock past a backoff, round after round, until `check` holds (bounded).
async fn until(app: &TestApp, what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..300 {
        if check().await {
            return;
        }
        app.clock.advance(BACKOFF_MAX);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never: {what}");
}

/// Waits until `/readyz` shows forwarder `name` with lag 0 (the cursor caught up).
async fn caught_up(app: &TestApp, name: &str) -> Value {
    let mut shown = Value::Null;
    eventually(&format!("{name} caught up"), async || {
        shown = readyz(app).await["forwarders"][name].clone();
        shown["lag"] == 0
    })
    .await;
    shown
}

async fn make_releases(app: &TestApp, machines: std::ops::RangeInclusive<u32>) {
    for n in machines {
        app.create_release(n).await;
    }
}

#[tokio::test]
async fn every_entry_reaches_a_syslog_receiver_from_seq_1_in_order_as_rfc5424_with_the_exact_leaf_line() {
    let receiver = SyslogReceiver::start().await;
    let app = app_forwarding(vec![syslog_to("siem", receiver.addr, "")]).await;
    make_releases(&app, 1..=3).await;
    let entries = app.audit().await;
    let head = entries.len() as i64;
    assert!(head >= 4, "the policy record and three requests");
    eventually("every entry received", async || first_arrivals(&receiver.seqs()).len() as i64 >= head).await;

    let frames = receiver.frames();
    assert_complete_in_order(&frames.iter().map(Frame::seq).collect::<Vec<_>>(), head);
    for (frame, entry) in frames.iter().zip(&entries) {
        assert_eq!(frame.pri_version, "<85>1", "authpriv.notice, RFC 5424 version 1");
        assert_eq!(frame.timestamp, entry["at"].as_str().unwrap(), "the entry's time");
        let fraction = frame.timestamp.split_once('.').unwrap().1;
        assert!(fraction.len() <= 7 && fraction.ends_with('Z'), "at most 6 digits, UTC: {}", frame.timestamp);
        assert!(!frame.hostname.is_empty() && frame.hostname.chars().all(|c| c.is_ascii_graphic()));
        assert_eq!((frame.app_name.as_str(), frame.procid.as_str()), ("dualkey", "-"));
        assert_eq!(frame.msgid, entry["action"].as_str().unwrap());
        assert_eq!(frame.structured_data, "-");
        assert!(frame.bom, "a UTF-8 MSG starts with the BOM");
        assert_eq!(frame.msg, leaf_line_of(entry), "MSG is the exact leaf line");
    }
    let shown = caught_up(&app, "siem").await;
    assert_eq!(shown, json!({"delivered_seq": head, "lag": 0, "last_error": null, "last_error_at": null}));
}

#[tokio::test]
async fn every_entry_reaches_a_hec_receiver_in_order_with_the_token_the_time_and_the_leaf_as_event() {
    let (hec, dir) = (HecReceiver::start(HEC_TOKEN).await, tempfile::tempdir().unwrap());
    let app = app_forwarding(vec![hec_to("splunk", &hec, &dir)]).await;
    make_releases(&app, 1..=3).await;
    let entries = app.audit().await;
    let head = entries.len() as i64;
    eventually("every entry accepted", async || first_arrivals(&hec.seqs()).len() as i64 >= head).await;

    assert!(hec.requests().iter().all(|r| r.authorized), "Authorization: Splunk <token> on every request");
    assert_complete_in_order(&hec.seqs(), head);
    for (event, entry) in hec.accepted().iter().zip(&entries) {
        assert_eq!(event.as_object().unwrap().len(), 3, "time, sourcetype, event: {event}");
        assert_eq!(event["sourcetype"], "dualkey:audit");
        let leaf: Value = serde_json::from_str(&leaf_line_of(entry)).unwrap();
        assert_eq!(event["event"], leaf, "the entry's leaf form");
        let ms = entry["at_ms"].as_i64().unwrap();
        assert_eq!(event["time"].as_f64(), Some(ms as f64 / 1000.0), "epoch seconds with milliseconds");
    }
    assert_eq!(caught_up(&app, "splunk").await["delivered_seq"], head);
}

#[tokio::test]
async fn a_hec_receiver_answering_503_gets_everything_once_it_recovers_and_readyz_shows_the_lag_meanwhile() {
    let (hec, dir) = (HecReceiver::start(HEC_TOKEN).await, tempfile::tempdir().unwrap());
    hec.answer(HecAnswer::Refuse(503));
    let app = app_forwarding(vec![hec_to("splunk", &hec, &dir)]).await;
    make_releases(&app, 1..=3).await;
    let head = app.audit().await.len() as i64;
    until(&app, "three refused batches", async || hec.requests().len() >= 3).await;
    let mut shown = Value::Null;
    eventually("the lag and the error shown", async || {
        shown = readyz(&app).await["forwarders"]["splunk"].clone();
        shown["lag"] == head && shown["last_error"].is_string()
    })
    .await;
    assert_eq!(shown["delivered_seq"], 0);
    assert!(shown["last_error"].as_str().unwrap().starts_with("HTTP 503"), "{shown}");
    assert!(shown["last_error_at"].as_str().unwrap().ends_with('Z'), "{shown}");
    let shown_text = shown.to_string();
    assert!(!shown_text.contains(HEC_TOKEN) && !shown_text.contains(&hec.url), "{shown_text}");
    assert!(hec.accepted().is_empty());

    hec.answer(HecAnswer::Accept);
    until(&app, "everything accepted", async || first_arrivals(&hec.seqs()).len() as i64 >= head).await;
    assert_complete_in_order(&hec.seqs(), head);
    let shown = caught_up(&app, "splunk").await;
    assert_eq!(shown["delivered_seq"], head);
    assert!(shown["last_error"].as_str().unwrap().starts_with("HTTP 503"), "the last error stays, with its time");
}

#[tokio::test]
async fn a_syslog_receiver_that_was_down_gets_everything_in_order_once_it_is_back() {
    let addr = closed_port().await;
    let app = app_forwarding(vec![syslog_to("siem", addr, "")]).await;
    make_releases(&app, 1..=3).await;
    let head = app.audit().await.len() as i64;
    let mut shown = Value::Null;
    until(&app, "the refused connection shown", async || {
        shown = readyz(&app).await["forwarders"]["siem"].clone();
        shown["last_error"].is_string()
    })
    .await;
    assert_eq!((shown["lag"].as_i64(), shown["delivered_seq"].as_i64()), (Some(head), Some(0)));
    let error = shown["last_error"].as_str().unwrap();
    assert!(error.contains("connecting failed") && !error.contains(&addr.port().to_string()), "{error}");

    let receiver = SyslogReceiver::start_on(tokio::net::TcpListener::bind(addr).await.unwrap(), false).await;
    until(&app, "everything received", async || first_arrivals(&receiver.seqs()).len() as i64 >= head).await;
    assert_complete_in_order(&receiver.seqs(), head);
    assert_eq!(caught_up(&app, "siem").await["delivered_seq"], head);
}

#[tokio::test]
async fn a_dropped_syslog_connection_is_resent_from_the_last_entry_not_known_delivered() {
    // Down at first, so that the first connection brings every entry in one batch.
    let addr = closed_port().await;
    let app = app_forwarding(vec![syslog_to("siem", addr, "")]).await;
    make_releases(&app, 1..=3).await;
    let head = app.audit().await.len() as i64;
    let receiver = SyslogReceiver::start_on(tokio::net::TcpListener::bind(addr).await.unwrap(), false).await;
    // It reads two frames of the batch, then drops the connection mid-batch.
    receiver.drop_after(2);
    until(&app, "everything received", async || first_arrivals(&receiver.seqs()).len() as i64 >= head).await;

    let frames = receiver.frames();
    let on = |conn: usize| frames.iter().filter(|f| f.conn == conn).map(Frame::seq).collect::<Vec<_>>();
    assert_eq!(on(0), [1, 2], "the first connection was dropped after two frames");
    assert_eq!(on(1), (1..=head).collect::<Vec<_>>(), "nothing was known delivered: resent from seq 1");
    assert_complete_in_order(&receiver.seqs(), head);
    let shown = caught_up(&app, "siem").await;
    let error = shown["last_error"].as_str().unwrap();
    assert!(error.contains(&format!("before seq 1..={head} were known delivered")), "{error}");

    // A connection the receiver closes between batches is found closed before the next one:
    // the new entries go on a new connection, from the cursor on.
    receiver.close_connections();
    make_releases(&app, 4..=4).await;
    let head2 = app.audit().await.len() as i64;
    until(&app, "the new entries received", async || first_arrivals(&receiver.seqs()).len() as i64 >= head2).await;
    let frames = receiver.frames();
    let third: Vec<i64> = frames.iter().filter(|f| f.conn == 2).map(Frame::seq).collect();
    assert_eq!(third, (head + 1..=head2).collect::<Vec<_>>(), "only what was not known delivered");
    assert_complete_in_order(&receiver.seqs(), head2);
}

#[tokio::test]
async fn a_tls_syslog_receiver_gets_every_entry_when_ca_file_trusts_it_and_nothing_when_it_does_not() {
    let receiver = SyslogReceiver::start_tls().await;
    let app = app_forwarding(vec![
        syslog_to("siem-tls", receiver.addr, &format!("tls = true\nca_file = {CA_PEM:?}")),
        // The test CA is not among the system's roots.
        syslog_to("siem-untrusted", receiver.addr, "tls = true"),
    ])
    .await;
    make_releases(&app, 1..=2).await;
    let entries = app.audit().await;
    let head = entries.len() as i64;
    eventually("every entry received over TLS", async || first_arrivals(&receiver.seqs()).len() as i64 >= head).await;
    let frames = receiver.frames();
    assert_complete_in_order(&frames.iter().map(Frame::seq).collect::<Vec<_>>(), head);
    assert_eq!(frames[0].msg, leaf_line_of(&entries[0]));
    assert_eq!(caught_up(&app, "siem-tls").await["delivered_seq"], head);

    let mut shown = Value::Null;
    until(&app, "the untrusted certificate shown", async || {
        shown = readyz(&app).await["forwarders"]["siem-untrusted"].clone();
        shown["last_error"].is_string()
    })
    .await;
    assert_eq!(shown["delivered_seq"], 0);
    assert!(shown["last_error"].as_str().unwrap().contains("certificate"), "{shown}");
    assert_eq!(receiver.connections(), 1, "only the trusted forwarder completed a handshake");
}
