//! Standard Webhooks (<https://www.standardwebhooks.com>): the JSON envelope and its signature.
//! The bytes signed are the bytes sent.

use super::SigningKey;
use super::http::Request;
use crate::clock::Timestamp;
use crate::notify::Message;
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;

/// The webhook body: `{"type", "timestamp", "data"}`, in that order.
#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: String,
    data: &'a Value,
}

/// The body for `msg`.
pub(super) fn body(msg: &Message<'_>) -> Vec<u8> {
    let envelope = Envelope { kind: msg.event, timestamp: msg.timestamp.rfc3339(), data: msg.data };
    // Serializing borrowed JSON values and strings cannot fail.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, the `webhook-signature` value.
pub(super) fn signature(key: &SigningKey, id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key.0);
    let mut ctx = aws_lc_rs::hmac::Context::with_key(&key);
    ctx.update(format!("{id}.{timestamp}.").as_bytes());
    ctx.update(body);
    let tag = ctx.sign();
    format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(tag.as_ref()))
}

/// The POST for `msg` attempted at `attempt_at`: its body and the `webhook-id` (the message id,
/// the same on every retry), `webhook-timestamp` and `webhook-signature` headers.
///
/// `webhook-timestamp` is the attempt's time in Unix seconds, not the event's (which is the
/// body's `timestamp`): the spec says so, and receivers refuse a timestamp older than a few
/// minutes against replays, so a retry carrying the event's time would be refused as a 400.
pub(super) fn request(msg: &Message<'_>, key: &SigningKey, attempt_at: Timestamp) -> Request {
    let body = body(msg);
    let timestamp = attempt_at.unix_ms().div_euclid(1000);
    let headers = vec![
        ("webhook-id", msg.id.to_string()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature(key, msg.id, timestamp, &body)),
    ];
    Request { body, headers }
}

#[cfg(test)]
mod tests {
    use super::super::config::decode_signing_secret;
    use super::super::summary::tests::{message, release_data};
    use super::*;
    use crate::secret::Secret;

    fn key(secret: &str) -> SigningKey {
        decode_signing_secret(&Secret::new(secret)).unwrap()
    }

    #[test]
    fn the_signature_matches_the_standard_webhooks_published_example() {
        // The sign() test vector of the Standard Webhooks reference libraries.
        let key = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let sig = signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn the_headers_sign_exactly_the_body_sent() {
        let data = release_data(None);
        let msg = message("release.requested", &data);
        // Retried an hour after the event: the header carries the attempt's time.
        let attempt_at = msg.timestamp.plus(std::time::Duration::from_secs(3600));
        let req = request(&msg, &key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), attempt_at);
        let header = |name: &str| req.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(header("webhook-id"), "msg_2a8f");
        assert_eq!(header("webhook-timestamp"), "1614268930");
        // An independent HMAC (the sha2 crate's SHA-256 inside RFC 2104's construction).
        let expected = {
            use sha2::{Digest, Sha256};
            let raw = base64::engine::general_purpose::STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
            let mut k = [0u8; 64];
            k[..raw.len()].copy_from_slice(&raw);
            let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
            let signed = [b"msg_2a8f.1614268930.".as_slice(), &req.body].concat();
            let inner = Sha256::new().chain_update(pad(0x36)).chain_update(&signed).finalize();
            let outer = Sha256::new().chain_update(pad(0x5c)).chain_update(inner).finalize();
            format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(outer))
        };
        assert_eq!(header("webhook-signature"), expected);
    }

    #[test]
    fn the_body_is_type_timestamp_and_data_in_that_order() {
        let data = serde_json::json!({"reason": "bad rule", "path": "/etc/dualkey/policy.toml"});
        let msg = message("policy.reload_refused", &data);
        let body = String::from_utf8(body(&msg)).unwrap();
        assert_eq!(
            body,
            r#"{"type":"policy.reload_refused","timestamp":"2021-02-25T15:02:10.000Z","data":{"path":"/etc/dualkey/policy.toml","reason":"bad rule"}}"#
        );
    }
}
