//! Channel kinds: rendering a message for Teams, Slack, a signed webhook or e-mail, and sending it.
//!
//! A [`Channel`] is built once from its settings ([`Channel::from_settings`] reads the files it
//! names), a [`Sender`] makes one attempt at a time ([`Sender::send`]) and says what it came to;
//! retries, order and dead letters belong to the delivery loop. Renderers are pure functions of
//! the [`Message`]; the URLs and secrets a channel holds never reach an error, a log line or an
//! [`Attempt`].

// Until the delivery loop and `dualkey notify test` call in (the rest of issue 10).

mod config;
mod email;
mod http;
mod slack;
mod summary;
mod teams;
mod webhook;

#[cfg(test)]
#[allow(unreachable_pub)]
#[path = "../../../tests/api/smtp_receiver.rs"]
mod smtp_receiver;
#[cfg(test)]
mod tests_email;
#[cfg(test)]
mod tests_http;

use crate::notify::{Attempt, Message};
use crate::secret::Secret;
use crate::settings::ChannelKind;
use std::fmt;
use std::time::Duration;

pub(crate) use email::EmailTarget;

/// One configured channel, its files read and its secrets decoded. `Debug` shows the name,
/// the kind and the e-mail envelope, never a URL, a signing key or a password.
#[derive(Debug)]
pub(crate) struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    target: Target,
}

/// Where a channel's messages go.
#[derive(Debug)]
enum Target {
    /// Teams and Slack: a POST to the URL (a secret).
    Chat {
        url: Secret,
    },
    /// A Standard Webhooks receiver: the URL and the decoded signing key.
    Webhook {
        url: Secret,
        key: SigningKey,
    },
    Email(EmailTarget),
}

/// The decoded `whsec_` secret: the HMAC-SHA256 key.
#[derive(Clone)]
pub(crate) struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([redacted])")
    }
}

/// Makes one attempt at a time: one HTTP client (redirects off, every request bounded by the
/// timeout) and SMTP conversations bounded by the same timeout.
#[derive(Debug, Clone)]
pub(crate) struct Sender {
    client: reqwest::Client,
    timeout: Duration,
}

impl Sender {
    /// A sender whose every attempt (connect, request, answer) ends within `request_timeout`.
    pub(crate) fn new(request_timeout: Duration) -> anyhow::Result<Sender> {
        let client = reqwest::Client::builder()
            .timeout(request_timeout)
            .connect_timeout(request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dualkey/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Sender { client, timeout: request_timeout })
    }

    /// Renders `msg` for the channel's kind and sends it once. Never panics and never fails:
    /// whatever happens is an [`Attempt`] whose outcome says whether to try again, and whose
    /// text names neither the channel's URL nor a secret.
    #[tracing::instrument(skip_all, fields(channel = %channel.name, message_id = %msg.id, event = %msg.event))]
    pub(crate) async fn send(&self, channel: &Channel, msg: &Message<'_>) -> Attempt {
        let attempt = match &channel.target {
            Target::Chat { url } => {
                let body = match channel.kind {
                    ChannelKind::Slack => slack::render(msg),
                    _ => teams::render(msg),
                };
                self.post(url, http::json_request(body)).await
            }
            Target::Webhook { url, key } => {
                let attempt_at = crate::clock::Clock::now(&crate::clock::SystemClock);
                self.post(url, webhook::request(msg, key, attempt_at)).await
            }
            Target::Email(target) => email::send(target, msg, self.timeout).await,
        };
        // The answer is the receiver's text: quoted and escaped like anything from outside.
        let response = crate::logsafe::untrusted(&attempt.response).max_chars(crate::logsafe::MAX_MESSAGE_CHARS);
        tracing::debug!(status = ?attempt.status, outcome = ?attempt.outcome, %response, "notification attempt");
        attempt
    }

    async fn post(&self, url: &Secret, request: http::Request) -> Attempt {
        http::post(&self.client, self.timeout, url, request).await
    }
}
