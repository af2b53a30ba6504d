//! E-mail: the message as built, and one SMTP conversation with the test receiver.

use super::smtp_receiver::{DataReply, SmtpReceiver};
use super::summary::tests::{MACHINE, message, release_data};
use super::{Channel, Sender, Target};
use crate::notify::Outcome;
use crate::settings::ChannelSettings;
use std::time::Duration;

fn channel(smtp_url: &str) -> Channel {
    let c: ChannelSettings = toml::from_str(&format!(
        "name = \"mail\"\nkind = \"email\"\nsmtp_url = {smtp_url:?}\nfrom = \"dualkey@example.com\"\n\
         to = [\"soc@example.com\", \"Approvers <approvers@example.com>\"]"
    ))
    .unwrap();
    Channel::from_settings(&c).unwrap()
}

fn built(data: &serde_json::Value, event: &str) -> String {
    let Target::Email(target) = &channel("smtp://mail.example.com").target else { unreachable!() };
    let email = super::email::build(target, &message(event, data)).unwrap();
    quoted_printable_decoded(&email.formatted())
}

/// The mail with its quoted-printable parts decoded (soft line breaks and `=XX`).
fn quoted_printable_decoded(raw: &[u8]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: &[u8]| std::str::from_utf8(b).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
        match (raw[i], raw.get(i + 1..i + 3)) {
            (b'=', Some(b"\r\n")) => i += 3,
            (b'=', Some(h)) if hex(h).is_some() => {
                out.push(hex(h).unwrap());
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn the_mail_has_a_subject_a_message_id_and_text_and_html_parts_with_the_same_facts() {
    let data = release_data(Some("https://dualkey.contoso.com/console/releases/r1"));
    let mail = built(&data, "release.requested");
    assert!(mail.contains("Subject: [dualkey] Release requested: desktop-fin-01.contoso.com\r\n"), "{mail}");
    assert!(mail.contains("Message-ID: <msg_2a8f@example.com>\r\n"), "{mail}");
    assert!(mail.contains("Content-Type: multipart/alternative;"), "{mail}");
    let (text, html) = mail.split_once("Content-Type: text/html").expect("an HTML part after the text part");
    assert!(text.contains("Content-Type: text/plain"));
    for part in [text, html] {
        assert!(part.contains(MACHINE) && part.contains("alice@contoso.com") && part.contains("tier0"), "{part}");
        assert!(part.contains("https://dualkey.contoso.com/console/releases/r1"), "{part}");
    }
    assert!(text.contains("Comment: Reimaged <b>after</b> triage & cleared"), "{text}");
    assert!(html.contains("Reimaged &lt;b&gt;after&lt;/b&gt; triage &amp; cleared"), "{html}");
    assert!(!html.contains("<b>after"), "{html}");
    assert!(html.contains("<a href=\"https://dualkey.contoso.com/console/releases/r1\">Open in dualkey</a>"));
}

#[test]
fn a_refused_policy_reload_mails_its_reason_without_a_link() {
    let data = serde_json::json!({"reason": "rule `tier0` has no slots", "path": "/etc/dualkey/policy.toml"});
    let mail = built(&data, "policy.reload_refused");
    assert!(mail.contains("Subject: [dualkey] Policy reload refused: /etc/dualkey/policy.toml\r\n"), "{mail}");
    assert!(mail.contains("Reason: rule `tier0` has no slots"), "{mail}");
    assert!(!mail.contains("Open in dualkey"), "{mail}");
}

#[test]
fn credentials_in_the_smtp_url_or_a_bad_address_are_refused() {
    let c: ChannelSettings = toml::from_str(
        "name = \"mail\"\nkind = \"email\"\nsmtp_url = \"smtp://bob:hunter2@mail.example.com\"\n\
         from = \"dualkey@example.com\"\nto = [\"soc@example.com\"]",
    )
    .unwrap();
    let e = Channel::from_settings(&c).unwrap_err().to_string();
    assert!(e.contains("notify.channels[mail].smtp_url") && !e.contains("hunter2"), "{e}");
    let c = ChannelSettings { to: vec!["not an address@".into()], ..c };
    let c = ChannelSettings { smtp_url: Some("smtps://mail.example.com".into()), ..c };
    let e = Channel::from_settings(&c).unwrap_err().to_string();
    assert!(e.contains("notify.channels[mail].to"), "{e}");
}

async fn send(receiver: &SmtpReceiver) -> crate::notify::Attempt {
    let data = release_data(Some("https://dualkey.contoso.com/console/releases/r1"));
    let sender = Sender::new(Duration::from_secs(5)).unwrap();
    sender.send(&channel(&receiver.url()), &message("release.requested", &data)).await
}

#[tokio::test]
async fn a_250_after_data_is_delivered_with_the_subject_and_both_parts() {
    let receiver = SmtpReceiver::start().await;
    let attempt = send(&receiver).await;
    assert_eq!((attempt.outcome.clone(), attempt.status), (Outcome::Delivered, Some(250)), "{attempt:?}");
    assert!(attempt.response.contains("queued"), "{attempt:?}");
    let mails = receiver.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].from, "dualkey@example.com");
    assert_eq!(mails[0].to, vec!["soc@example.com", "approvers@example.com"]);
    let data = &mails[0].data;
    assert!(data.contains("Subject: [dualkey] Release requested: desktop-fin-01.contoso.com"), "{data}");
    assert!(data.contains("Content-Type: text/plain") && data.contains("Content-Type: text/html"), "{data}");
}

#[tokio::test]
async fn a_451_is_retried_and_a_550_is_dead() {
    let receiver = SmtpReceiver::start().await;
    receiver.refuse_next(1, DataReply::Transient);
    receiver.refuse_next(1, DataReply::Permanent);
    let first = send(&receiver).await;
    assert_eq!(first.status, Some(451));
    assert!(matches!(&first.outcome, Outcome::Retry { reason, .. } if reason.contains("451")), "{first:?}");
    let second = send(&receiver).await;
    assert_eq!(second.status, Some(550));
    assert!(matches!(&second.outcome, Outcome::Dead { reason } if reason.contains("relaying denied")), "{second:?}");
    assert!(receiver.messages().is_empty());
    assert_eq!(send(&receiver).await.outcome, Outcome::Delivered);
}

#[tokio::test]
async fn no_smtp_server_is_retried() {
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let data = release_data(None);
    let attempt = Sender::new(Duration::from_secs(2))
        .unwrap()
        .send(&channel(&format!("smtp://127.0.0.1:{port}")), &message("release.requested", &data))
        .await;
    assert!(matches!(attempt.outcome, Outcome::Retry { .. }), "{attempt:?}");
    assert_eq!(attempt.status, None);
}
