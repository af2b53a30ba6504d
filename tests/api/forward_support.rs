//! A Splunk HEC receiver for the forwarding tests (a real HTTP server on loopback that checks the
//! token and parses concatenated JSON objects), and what the tests check every receiver with:
//! every entry from seq 1, in order, each as its exact leaf line.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// How the HEC receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HecAnswer {
    /// 200 `{"text":"Success","code":0}`.
    Accept,
    /// This status, recording nothing as accepted.
    Refuse(u16),
    /// Records the events as accepted, then holds the answer this long (real time).
    Hang(Duration),
}

/// One request the HEC receiver got.
#[derive(Debug, Clone)]
pub struct HecRequest {
    /// `Authorization: Splunk <the token>`.
    pub authorized: bool,
    pub status: u16,
    pub events: Vec<Value>,
}

struct HecInner {
    token: String,
    answer: HecAnswer,
    requests: Vec<HecRequest>,
}

#[derive(Clone)]
pub struct HecReceiver {
    /// The full endpoint, `http://127.0.0.1:<port>/services/collector/event`.
    pub url: String,
    inner: Arc<Mutex<HecInner>>,
    _stop: Arc<tokio::sync::oneshot::Sender<()>>,
}

impl HecReceiver {
    /// On 127.0.0.1, a free port, accepting the token `token`.
    pub async fn start(token: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/services/collector/event", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(HecInner { token: token.into(), answer: HecAnswer::Accept, requests: vec![] }));
        let app =
            Router::new().route("/services/collector/event", axum::routing::post(collect)).with_state(inner.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(async { drop(rx.await) }).await;
        });
        Self { url, inner, _stop: Arc::new(tx) }
    }

    pub fn answer(&self, answer: HecAnswer) {
        self.inner.lock().unwrap().answer = answer;
    }

    pub fn requests(&self) -> Vec<HecRequest> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The events of every accepted request, in order.
    pub fn accepted(&self) -> Vec<Value> {
        self.requests().into_iter().filter(|r| r.status == 200).flat_map(|r| r.events).collect()
    }

    /// The `event.seq` of every accepted event, in order.
    pub fn seqs(&self) -> Vec<i64> {
        self.accepted().iter().map(|e| e["event"]["seq"].as_i64().expect("an event with a seq")).collect()
    }
}

async fn collect(State(inner): State<Arc<Mutex<HecInner>>>, headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let events: Vec<Value> = serde_json::Deserializer::from_slice(&body)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .expect("concatenated JSON objects");
    let (authorized, answer) = {
        let i = inner.lock().unwrap();
        let expected = format!("Splunk {}", i.token);
        (headers.get("authorization").is_some_and(|h| h.as_bytes() == expected.as_bytes()), i.answer)
    };
    let status = match (authorized, answer) {
        (false, _) => 401,
        (true, HecAnswer::Refuse(s)) => s,
        (true, HecAnswer::Accept | HecAnswer::Hang(_)) => 200,
    };
    inner.lock().unwrap().requests.push(HecRequest { authorized, status, events });
    if let (200, HecAnswer::Hang(d)) = (status, answer) {
        tokio::time::sleep(d).await;
    }
    let text = if status == 200 { "Success" } else { "Server is busy" };
    (
        StatusCode::from_u16(status).unwrap(),
        format!("{{\"text\":\"{text}\",\"code\":{}}}", u16::from(status != 200) * 9),
    )
}

/// The first arrival of each seq, in the order they first arrived (repeats dropped, as a
/// receiver that dedupes by seq keeps them).
pub fn first_arrivals(seqs: &[i64]) -> Vec<i64> {
    let mut seen = std::collections::BTreeSet::new();
    seqs.iter().copied().filter(|s| seen.insert(*s)).collect()
}

/// Every entry from seq 1 to `head` arrived, and the first arrivals are in seq order: no gap,
/// no reordering.
pub fn assert_complete_in_order(seqs: &[i64], head: i64) {
    assert_eq!(first_arrivals(seqs), (1..=head).collect::<Vec<_>>(), "all of 1..={head}, in order: {seqs:?}");
}

/// The exact leaf line of an entry as `GET /api/v1/audit` shows it.
pub fn leaf_line_of(item: &Value) -> String {
    let text = |k: &str| item[k].as_str().map(str::to_string);
    let entry = dualkey::audit::AuditEntry {
        seq: item["seq"].as_i64().unwrap(),
        at: dualkey::clock::Timestamp::from_unix_ms(item["at_ms"].as_i64().unwrap()),
        actor: text("actor").unwrap(),
        action: text("action").unwrap(),
        release_id: text("release_id"),
        machine_id: text("machine_id"),
        release_prev_seq: item["release_prev_seq"].as_i64(),
        details: dualkey::canonical::canonical_json(&item["details"]),
        prev_hash: text("prev_hash").unwrap(),
        hash: text("hash").unwrap(),
    };
    dualkey::audit::leaf_line(&entry)
}

/// A loopback address nothing listens on (bound, then freed).
pub async fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap()
}
