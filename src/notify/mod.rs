//! Notifications that are never lost: every change that has people to tell writes its
//! messages to the outbox in its own transaction ([`outbox`]); a delivery task sends them, in
//! order per channel, with retries, until delivered or dead ([`delivery`]); each channel kind
//! renders and sends one message ([`channel`]).

pub(crate) mod channel;

use crate::clock::Timestamp;
use serde_json::Value;
use std::time::Duration;

/// One message as a channel sends it.
#[derive(Debug, Clone)]
pub(crate) struct Message<'a> {
    /// Stable across retries: the Standard Webhooks `webhook-id`, the id in the API and audit.
    pub id: &'a str,
    /// The event, e.g. `release.requested`.
    pub event: &'a str,
    /// When the event happened.
    pub timestamp: Timestamp,
    /// `{"release": <the API's release view>, "url": <console link or null>}`, or for
    /// `policy.reload_refused` `{"reason", "path"}`.
    pub data: &'a Value,
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The receiver accepted it (HTTP 2xx, SMTP 250).
    Delivered,
    /// Try again later: 408, 429, 5xx, a timeout, a refused or dropped connection, SMTP 4xx.
    Retry {
        reason: String,
        /// `Retry-After` of a 429 or 503, when given.
        retry_after: Option<Duration>,
    },
    /// Never try again: a 3xx, another 4xx, SMTP 5xx.
    Dead { reason: String },
}

/// One attempt: its outcome and what the receiver said (for `dualkey notify test` and logs;
/// never holds the URL or a secret).
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub outcome: Outcome,
    /// The HTTP status or SMTP reply code, when the receiver answered.
    pub status: Option<u16>,
    /// The start of the receiver's answer (body or SMTP reply), at most 1 KiB.
    pub response: String,
}
