//! E-mail: a multipart/alternative message (plain text and HTML, the same facts and link) sent
//! over one SMTP conversation with lettre: `smtp://` upgrades with STARTTLS when the server
//! offers it (and insists on it before sending a password to a host that is not loopback),
//! `smtps://` is TLS from the first byte.

use super::config::invalid;
use super::summary::{Summary, summarize};
use crate::notify::{Attempt, Message, Outcome};
use crate::secret::Secret;
use crate::settings::{ChannelSettings, SettingsError};
use lettre::message::{Mailbox, MultiPart, header::MessageId};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::time::Duration;

/// Where and how an e-mail channel sends. `Debug` shows the server and the addresses, never
/// the username or password.
#[derive(Debug)]
pub(crate) struct EmailTarget {
    host: String,
    port: u16,
    implicit_tls: bool,
    from: Mailbox,
    to: Vec<Mailbox>,
    credentials: Option<(Secret, Secret)>,
}

impl EmailTarget {
    /// Parses `smtp_url`, `from` and `to`; `smtp://` without a port is 587 (submission),
    /// `smtps://` 465. Credentials belong in files, never in the URL.
    pub(super) fn new(c: &ChannelSettings, credentials: Option<(Secret, Secret)>) -> Result<Self, SettingsError> {
        let name = c.name.as_str();
        let smtp = c.smtp_url.as_deref().ok_or_else(|| invalid(name, "smtp_url", "an email channel needs smtp_url"))?;
        let url = reqwest::Url::parse(smtp).map_err(|e| invalid(name, "smtp_url", format!("not a URL ({e})")))?;
        let implicit_tls = match url.scheme() {
            "smtp" => false,
            "smtps" => true,
            _ => return Err(invalid(name, "smtp_url", "must be smtp://host[:port] or smtps://host[:port]")),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(name, "smtp_url", "put credentials in username_file and password_file, not the URL"));
        }
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_string();
        if host.is_empty() {
            return Err(invalid(name, "smtp_url", "must name a host"));
        }
        let port = url.port().unwrap_or(if implicit_tls { 465 } else { 587 });
        let mailbox = |key: &str, s: &str| {
            s.parse::<Mailbox>().map_err(|e| invalid(name, key, format!("`{s}` is not an e-mail address ({e})")))
        };
        let from = mailbox("from", c.from.as_deref().unwrap_or_default())?;
        let to = c.to.iter().map(|t| mailbox("to", t)).collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(invalid(name, "to", "an email channel needs one or more addresses"));
        }
        Ok(Self { host, port, implicit_tls, from, to, credentials })
    }

    fn transport(
        &self,
        timeout: Duration,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, lettre::transport::smtp::Error> {
        let params = || TlsParameters::new(self.host.clone());
        let loopback = crate::net::is_loopback_host(&self.host);
        let tls = if self.implicit_tls {
            Tls::Wrapper(params()?)
        } else if self.credentials.is_some() && !loopback {
            // Without this a man in the middle who strips STARTTLS reads the password.
            Tls::Required(params()?)
        } else {
            Tls::Opportunistic(params()?)
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(self.host.as_str())
            .port(self.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let Some((user, password)) = &self.credentials {
            builder = builder.credentials(Credentials::new(user.expose().to_string(), password.expose().to_string()));
        }
        Ok(builder.build())
    }
}

/// The message as mailed: subject `[dualkey] <title>`, a Message-ID derived from the message id
/// (so a resent message is recognisably the same), text and HTML parts with the same facts.
pub(super) fn build(target: &EmailTarget, msg: &Message<'_>) -> Result<lettre::Message, lettre::error::Error> {
    let s = summarize(msg);
    let domain = target.from.email.domain();
    let id: String = msg.id.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')).collect();
    let mut builder = lettre::Message::builder()
        .from(target.from.clone())
        .subject(format!("[dualkey] {}", s.title))
        .date(std::time::UNIX_EPOCH + Duration::from_millis(msg.timestamp.unix_ms().max(0) as u64))
        .header(MessageId::from(format!("<{id}@{domain}>")));
    for to in &target.to {
        builder = builder.to(to.clone());
    }
    builder.multipart(MultiPart::alternative_plain_html(text(&s), html(&s)))
}

fn text(s: &Summary) -> String {
    let mut out = format!("{}\n\n", s.title);
    for (label, value) in &s.facts {
        out.push_str(&format!("{label}: {value}\n"));
    }
    if let Some(url) = &s.url {
        out.push_str(&format!("\nOpen in dualkey: {url}\n"));
    }
    out
}

fn html(s: &Summary) -> String {
    use crate::html::escape;
    let mut out = format!("<!DOCTYPE html>\n<html><body>\n<h2>{}</h2>\n<table>\n", escape(&s.title));
    for (label, value) in &s.facts {
        out.push_str(&format!("<tr><th align=\"left\">{}</th><td>{}</td></tr>\n", escape(label), escape(value)));
    }
    out.push_str("</table>\n");
    if let Some(url) = &s.url {
        out.push_str(&format!("<p><a href=\"{}\">Open in dualkey</a></p>\n", escape(url)));
    }
    out.push_str("</body></html>\n");
    out
}

/// One SMTP conversation, bounded by `timeout` as a whole: 250 after DATA is delivered, a 4xx
/// reply or connection trouble retries, a 5xx reply is dead.
pub(super) async fn send(target: &EmailTarget, msg: &Message<'_>, timeout: Duration) -> Attempt {
    let email = match build(target, msg) {
        Ok(m) => m,
        Err(e) => return dead(None, format!("cannot build the e-mail: {e}")),
    };
    let transport = match target.transport(timeout) {
        Ok(t) => t,
        Err(e) => return dead(None, format!("cannot set up TLS for the SMTP server: {e}")),
    };
    let reply = match tokio::time::timeout(timeout, transport.send(email)).await {
        Err(_) => return retry(None, format!("no answer within {}s", timeout.as_secs_f64())),
        Ok(reply) => reply,
    };
    match reply {
        Ok(r) => {
            let text = format!("{} {}", r.code(), r.message().collect::<Vec<_>>().join(" "));
            Attempt { outcome: Outcome::Delivered, status: Some(u16::from(r.code())), response: printable(&text) }
        }
        Err(e) => {
            let status = e.status().map(u16::from);
            let reason = printable(&format!("SMTP {e}"));
            if e.is_permanent() { dead(status, reason) } else { retry(status, reason) }
        }
    }
}

fn printable(s: &str) -> String {
    super::http::printable(s.as_bytes())
}

fn dead(status: Option<u16>, reason: String) -> Attempt {
    Attempt { outcome: Outcome::Dead { reason: reason.clone() }, status, response: reason }
}

fn retry(status: Option<u16>, reason: String) -> Attempt {
    Attempt { outcome: Outcome::Retry { reason: reason.clone(), retry_after: None }, status, response: reason }
}
