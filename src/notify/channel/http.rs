//! One JSON POST and what its answer means: the one place that classifies an HTTP receiver's
//! answer as delivered, worth retrying, or dead.

use crate::clock::{Clock as _, SystemClock, Timestamp};
use crate::notify::{Attempt, Outcome};
use crate::secret::Secret;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, DATE, HeaderMap, RETRY_AFTER};
use serde_json::Value;
use std::time::Duration;

/// How much of an answer is kept in [`Attempt::response`].
pub(super) const MAX_RESPONSE_BYTES: usize = 1024;
/// How much of an answer a dead or retry reason quotes.
const REASON_CHARS: usize = 200;
/// What stands in for the channel's URL (or a part of it) that a receiver echoed back.
const REDACTED_URL: &str = "[the channel's URL]";

/// A body and the headers of one POST (besides `content-type: application/json`).
pub(super) struct Request {
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// A request carrying `body` as JSON and no other header.
pub(super) fn json_request(body: Value) -> Request {
    Request { body: serde_json::to_vec(&body).unwrap_or_default(), headers: Vec::new() }
}

/// POSTs once. The client's timeout bounds the whole attempt, reading the answer included.
pub(super) async fn post(client: &reqwest::Client, timeout: Duration, url: &Secret, request: Request) -> Attempt {
    let mut builder = client.post(url.expose()).header(CONTENT_TYPE, "application/json").body(request.body);
    for (name, value) in request.headers {
        builder = builder.header(name, value);
    }
    let mut response = match builder.send().await {
        Ok(r) => r,
        Err(e) => return transport_failure(&e, timeout, url),
    };
    let status = response.status();
    let retry_after = retry_after(status, response.headers(), SystemClock.now());
    let mut body = Vec::new();
    // Read no more than what is kept: a receiver cannot make dualkey read a huge answer.
    while body.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => break,
            // The status is known; a body cut short does not change what it means.
            Err(_) => break,
        }
    }
    let text = scrub(&printable(&body), url);
    Attempt { outcome: classify(status, retry_after, &text), status: Some(status.as_u16()), response: text }
}

/// 2xx delivered; 408, 429 and 5xx retry; 3xx and every other status dead.
pub(super) fn classify(status: StatusCode, retry_after: Option<Duration>, body: &str) -> Outcome {
    let code = status.as_u16();
    let reason = || {
        let head: String = body.chars().take(REASON_CHARS).collect();
        match head.trim() {
            "" => format!("HTTP {code}"),
            head => format!("HTTP {code}: {head}"),
        }
    };
    match code {
        200..=299 => Outcome::Delivered,
        408 | 429 | 500..=599 => Outcome::Retry { reason: reason(), retry_after },
        300..=399 => Outcome::Dead { reason: format!("{} (redirects are not followed)", reason()) },
        _ => Outcome::Dead { reason: reason() },
    }
}

/// `Retry-After` of a 429 or 503, as delta-seconds or an HTTP-date. A date counts from the
/// answer's own `Date` when it has one (so clock skew does not matter), else from `now`.
pub(super) fn retry_after(status: StatusCode, headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    if !matches!(status.as_u16(), 429 | 503) {
        return None;
    }
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let base = headers
        .get(DATE)
        .and_then(|d| d.to_str().ok())
        .and_then(|d| httpdate::parse_http_date(d).ok())
        .unwrap_or_else(|| std::time::UNIX_EPOCH + Duration::from_millis(now.unix_ms().max(0) as u64));
    Some(at.duration_since(base).unwrap_or(Duration::ZERO))
}

fn transport_failure(e: &reqwest::Error, timeout: Duration, url: &Secret) -> Attempt {
    let reason = if e.is_timeout() {
        format!("no answer within {}s", timeout.as_secs_f64())
    } else if e.is_connect() {
        format!("cannot connect: {}", causes(e))
    } else {
        format!("the connection failed: {}", causes(e))
    };
    let reason = scrub(&printable(reason.as_bytes()), url);
    Attempt { outcome: Outcome::Retry { reason: reason.clone(), retry_after: None }, status: None, response: reason }
}

// reqwest's own message names the URL and says only "error sending request"; the causes below
// it say "connection refused" or "connection closed before message completed" and name no URL.
fn causes(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}

/// At most [`MAX_RESPONSE_BYTES`] of `bytes` as text, cut on a character boundary, with control
/// and invisible formatting characters replaced by spaces.
pub(super) fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_RESPONSE_BYTES)]);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if c.is_control() || crate::domain::is_hidden_control(c) { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_RESPONSE_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

/// `text` with the channel's URL, its path and its query taken out, in case the receiver
/// echoed them (`Cannot POST /hooks/<token>`): whoever holds them can post.
pub(super) fn scrub(text: &str, url: &Secret) -> String {
    let mut out = text.to_string();
    let mut parts = vec![url.expose().to_string()];
    if let Ok(parsed) = reqwest::Url::parse(url.expose()) {
        parts.extend(parsed.query().map(str::to_string));
        parts.extend(parsed.query_pairs().map(|(_, v)| v.into_owned()));
        parts.push(parsed.path().to_string());
        parts.extend(parsed.path_segments().into_iter().flatten().map(str::to_string));
    }
    // Short parts ("/", "api") say nothing about the secret and would mangle the text.
    parts.retain(|p| p.len() >= 8);
    parts.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for part in parts {
        out = out.replace(&part, REDACTED_URL);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn statuses_are_classified_as_the_issue_says() {
        let kind = |code: u16| match classify(StatusCode::from_u16(code).unwrap(), None, "nope") {
            Outcome::Delivered => "delivered",
            Outcome::Retry { .. } => "retry",
            Outcome::Dead { .. } => "dead",
        };
        let cases = [(200, "delivered"), (202, "delivered"), (204, "delivered"), (408, "retry"), (429, "retry")];
        let more = [(500, "retry"), (503, "retry"), (302, "dead"), (400, "dead"), (401, "dead"), (404, "dead")];
        for (code, expected) in cases.into_iter().chain(more) {
            assert_eq!(kind(code), expected, "{code}");
        }
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, None, "  Invalid card  "),
            Outcome::Dead { reason: "HTTP 400: Invalid card".into() }
        );
    }

    #[test]
    fn retry_after_is_read_as_seconds_or_as_a_date_for_429_and_503_only() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        let now = Timestamp::from_unix_ms(784_111_777_000); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(retry_after(StatusCode::TOO_MANY_REQUESTS, &h, now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(StatusCode::INTERNAL_SERVER_ERROR, &h, now), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("Sun, 06 Nov 1994 08:51:37 GMT"));
        assert_eq!(retry_after(StatusCode::SERVICE_UNAVAILABLE, &h, now), Some(Duration::from_secs(120)));
        // The answer's Date wins over our clock.
        h.insert(DATE, HeaderValue::from_static("Sun, 06 Nov 1994 08:50:37 GMT"));
        assert_eq!(retry_after(StatusCode::SERVICE_UNAVAILABLE, &h, now), Some(Duration::from_secs(60)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(StatusCode::SERVICE_UNAVAILABLE, &h, now), None);
    }

    #[test]
    fn an_answer_is_kept_printable_and_short() {
        let shown = printable(b"line1\r\nline2\x1b[31m\xe2\x80\xae");
        assert_eq!(shown, "line1  line2 [31m ");
        let long = "é".repeat(1000);
        let shown = printable(long.as_bytes());
        assert!(shown.len() <= MAX_RESPONSE_BYTES && shown.chars().all(|c| c == 'é'));
    }

    #[test]
    fn an_echoed_url_or_path_is_scrubbed() {
        let url =
            Secret::new("https://prod.westeurope.logic.azure.com/workflows/abc123def/triggers?sig=S3cr3tS1gnature");
        let text = scrub("Cannot POST /workflows/abc123def/triggers?sig=S3cr3tS1gnature nor abc123def", &url);
        assert!(!text.contains("abc123def") && !text.contains("S3cr3tS1gnature"), "{text}");
        assert!(text.starts_with("Cannot POST [the channel's URL]"), "{text}");
    }
}
