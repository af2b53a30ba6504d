//! Splunk HTTP Event Collector: one POST per batch, in HEC's batch format (JSON objects one
//! after the other; dualkey puts a newline after each):
//!
//! ```text
//! {"event":<leaf>,"sourcetype":"dualkey:audit","time":1764600000.123}
//! ```
//!
//! `event` is the entry's leaf form ([`crate::audit::leaf_value`], written as its exact leaf line),
//! `sourcetype` is `dualkey:checkpoint` for checkpoint records, `time` the entry's `at` in epoch
//! seconds with milliseconds. A 2xx answer means the whole batch was delivered; anything else is
//! retried. The token travels only in `Authorization: Splunk <token>`, marked sensitive, and never
//! reaches an error, a log line or `Debug`.

use crate::audit::{AuditEntry, leaf_line};
use crate::secret::Secret;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use std::fmt;
use std::time::Duration;

/// How much of the collector's `text` an error quotes.
const TEXT_CHARS: usize = 100;

/// The sourcetype of every entry but checkpoints.
pub(crate) const AUDIT_SOURCETYPE: &str = "dualkey:audit";
/// The sourcetype of checkpoint records (entries whose action is `checkpoint`).
pub(crate) const CHECKPOINT_SOURCETYPE: &str = "dualkey:checkpoint";

/// A collector and the token it takes.
pub(crate) struct Endpoint {
    url: reqwest::Url,
    token: Secret,
    authorization: HeaderValue,
    client: reqwest::Client,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint").field("url", &self.url.as_str()).field("token", &self.token).finish()
    }
}

impl Endpoint {
    /// A collector at `url` taking `token`; each request (connect included) ends within `timeout`.
    /// Fails when the token cannot travel in a header (the message does not quote it).
    pub(crate) fn new(url: reqwest::Url, token: Secret, timeout: Duration) -> Result<Self, String> {
        let mut authorization = HeaderValue::from_str(&format!("Splunk {}", token.expose()))
            .map_err(|_| "the token holds characters an HTTP header cannot carry".to_string())?;
        authorization.set_sensitive(true);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dualkey/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        Ok(Self { url, token, authorization, client })
    }

    /// POSTs `batch` once; `Ok` on a 2xx. The error says what happened (status and the
    /// collector's `text`, or the transport failure) without the URL or the token.
    pub(crate) async fn post(&self, batch: &[AuditEntry]) -> Result<(), String> {
        let answer = self
            .client
            .post(self.url.clone())
            .header(AUTHORIZATION, self.authorization.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body(batch))
            .send()
            .await
            .map_err(|e| transport_failure(&e))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        // HEC answers {"text": "...", "code": n}; a short, printable text is worth quoting.
        let text = answer.json::<serde_json::Value>().await.ok().and_then(|v| v["text"].as_str().map(str::to_string));
        let text = text.map(|t| printable(&t.replace(self.token.expose(), "[redacted]")));
        Err(match text.filter(|t| !t.is_empty()) {
            Some(t) => format!("HTTP {}: {t}", status.as_u16()),
            None => format!("HTTP {}", status.as_u16()),
        })
    }
}

/// The sourcetype of `entry`.
pub(crate) fn sourcetype(entry: &AuditEntry) -> &'static str {
    if entry.action == "checkpoint" { CHECKPOINT_SOURCETYPE } else { AUDIT_SOURCETYPE }
}

/// `time`: epoch seconds with exactly three decimals, written from the integer milliseconds
/// (no floating point on the way).
fn epoch_seconds(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// The request body: one HEC event per entry, in order, each followed by a newline.
pub(crate) fn body(batch: &[AuditEntry]) -> Vec<u8> {
    let mut out = String::new();
    for e in batch {
        let sourcetype = sourcetype(e);
        let time = epoch_seconds(e.at.unix_ms());
        out.push_str(&format!("{{\"event\":{},\"sourcetype\":\"{sourcetype}\",\"time\":{time}}}\n", leaf_line(e)));
    }
    out.into_bytes()
}

/// reqwest's own message names the URL; its causes ("connection refused", "operation timed
/// out") do not.
fn transport_failure(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    let what = if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    if parts.is_empty() { what.to_string() } else { printable(&format!("{what}: {}", parts.join(": "))) }
}

/// At most [`TEXT_CHARS`] characters of `text`, with anything but printable ASCII and spaces
/// replaced by `?`, so it cannot forge a log line or a field.
fn printable(text: &str) -> String {
    text.trim().chars().take(TEXT_CHARS).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    fn entry(seq: i64, action: &str, ms: i64) -> AuditEntry {
        AuditEntry {
            seq,
            at: Timestamp::from_unix_ms(ms),
            actor: "system:dualkey".into(),
            action: action.into(),
            release_id: None,
            machine_id: None,
            release_prev_seq: None,
            details: "{}".into(),
            prev_hash: "0".repeat(64),
            hash: "a".repeat(64),
        }
    }

    #[test]
    fn a_batch_is_concatenated_objects_with_time_sourcetype_and_the_leaf_as_event() {
        let batch = [entry(1, "policy_recorded", 1_764_600_000_123), entry(2, "checkpoint", 1_764_600_001_005)];
        let body = String::from_utf8(body(&batch)).unwrap();
        let events: Vec<serde_json::Value> =
            serde_json::Deserializer::from_str(&body).into_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["sourcetype"], AUDIT_SOURCETYPE);
        assert_eq!(events[1]["sourcetype"], CHECKPOINT_SOURCETYPE);
        assert_eq!(events[0]["event"], crate::audit::leaf_value(&batch[0]));
        assert!(body.contains("\"time\":1764600000.123}") && body.contains("\"time\":1764600001.005}"), "{body}");
        assert_eq!(events[1]["time"].as_f64(), Some(1_764_600_001.005));
        assert!(body.lines().next().unwrap().contains(&leaf_line(&batch[0])), "the exact leaf line");
    }

    #[test]
    fn epoch_seconds_keep_every_millisecond() {
        assert_eq!(epoch_seconds(0), "0.000");
        assert_eq!(epoch_seconds(1_764_600_000_009), "1764600000.009");
        assert_eq!(epoch_seconds(1_764_600_000_990), "1764600000.990");
    }

    #[test]
    fn the_token_is_never_in_debug_and_a_collector_text_is_printable() {
        let url = reqwest::Url::parse("https://splunk.example.com:8088/services/collector/event").unwrap();
        let e = Endpoint::new(url.clone(), Secret::new("11111111-2222-3333-4444-555555555555"), Duration::from_secs(1))
            .unwrap();
        let shown = format!("{e:?}");
        assert!(!shown.contains("11111111") && shown.contains("splunk.example.com"), "{shown}");
        assert!(
            Endpoint::new(url, Secret::new("bad\ntoken"), Duration::from_secs(1)).is_err_and(|m| !m.contains("bad"))
        );
        assert_eq!(printable(" Invalid token\n\u{1b}[31m "), "Invalid token??[31m");
        assert_eq!(printable("a\u{202e}b"), "a?b");
    }
}
