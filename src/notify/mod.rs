//! Notifications that are never lost: every change that has people to tell writes its
//! messages to the outbox in its own transaction ([`outbox`]); a delivery task sends them, in
//! order per channel, with retries, until delivered or dead ([`delivery`]); each channel kind
//! renders and sends one message ([`channel`]).

pub(crate) mod channel;
pub(crate) mod delivery;
pub(crate) mod outbox;

pub(crate) use outbox::Routing;

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

/// The delivery of this daemon's `[notify]` settings: channels read (secret files included),
/// routing registered on `db`, so every transaction writes its messages from now on. `None`
/// when no route sends anything.
pub(crate) fn start(
    settings: &crate::settings::Settings,
    db: &crate::db::Db,
) -> anyhow::Result<Option<std::sync::Arc<delivery::Delivery>>> {
    use anyhow::Context;
    use std::sync::Arc;
    let Some(routing) = Routing::from_settings(settings) else { return Ok(None) };
    let channels = settings
        .notify
        .channels
        .iter()
        .map(|c| channel::Channel::from_settings(c).map(Arc::new))
        .collect::<Result<Vec<_>, _>>()?;
    let sender =
        channel::Sender::new(settings.notify.request_timeout.get()).context("building the notification sender")?;
    let routing = Arc::new(routing);
    db.route_notifications(routing.clone());
    Ok(Some(Arc::new(delivery::Delivery { channels, sender: Arc::new(sender), routing })))
}

/// Sends one test message (event `notify.test`, no release) to the channel named `name`.
pub(crate) async fn send_test(settings: &crate::settings::Settings, name: &str) -> anyhow::Result<Attempt> {
    let c = settings
        .notify
        .channels
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| anyhow::anyhow!("no [[notify.channels]] named `{name}`"))?;
    let channel = channel::Channel::from_settings(c)?;
    let sender = channel::Sender::new(settings.notify.request_timeout.get())?;
    let data = serde_json::json!({
        "release": null,
        "url": null,
        "text": "A test message from dualkey: this channel receives its notifications.",
    });
    let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
    let now = crate::clock::Clock::now(&crate::clock::SystemClock);
    Ok(sender.send(&channel, &Message { id: &id, event: "notify.test", timestamp: now, data: &data }).await)
}
