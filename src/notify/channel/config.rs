//! Building a [`Channel`] from its settings: the files it names are read now, so a missing or
//! malformed secret stops start-up rather than the first message.

use super::email::EmailTarget;
use super::{Channel, SigningKey, Target};
use crate::secret::Secret;
use crate::settings::{ChannelKind, ChannelSettings, SettingsError, check_channel_url};
use base64::Engine as _;
use std::path::Path;

/// The prefix of a Standard Webhooks signing secret.
const WHSEC_PREFIX: &str = "whsec_";
/// Standard Webhooks: a signing secret is between 24 and 64 random bytes.
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

pub(super) fn invalid(channel: &str, key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid { key: format!("notify.channels[{channel}].{key}"), message: message.into() }
}

impl Channel {
    /// Reads `url_file`, `secret_file`, `username_file` and `password_file` (each trimmed),
    /// checks a URL read from a file as an inline one is checked, and decodes the webhook's
    /// `whsec_` secret. Errors name the key (`notify.channels[<name>].url_file`) and never
    /// contain a URL or a secret.
    pub(crate) fn from_settings(c: &ChannelSettings) -> Result<Channel, SettingsError> {
        let name = c.name.as_str();
        let target = match c.kind {
            ChannelKind::Teams | ChannelKind::Slack => Target::Chat { url: url(c)? },
            ChannelKind::Webhook => {
                let secret = one_of(name, "secret", c.secret.as_ref(), c.secret_file.as_deref())?;
                let key = decode_signing_secret(&secret)
                    .map_err(|m| invalid(name, if c.secret_file.is_some() { "secret_file" } else { "secret" }, m))?;
                Target::Webhook { url: url(c)?, key }
            }
            ChannelKind::Email => {
                let credentials = match (&c.username_file, &c.password_file) {
                    (None, None) => None,
                    (Some(u), Some(p)) => {
                        Some((read_secret(name, "username_file", u)?, read_secret(name, "password_file", p)?))
                    }
                    (Some(_), None) => return Err(invalid(name, "password_file", "username_file needs password_file")),
                    (None, Some(_)) => return Err(invalid(name, "username_file", "password_file needs username_file")),
                };
                Target::Email(EmailTarget::new(c, credentials)?)
            }
        };
        Ok(Channel { name: c.name.clone(), kind: c.kind, target })
    }
}

fn url(c: &ChannelSettings) -> Result<Secret, SettingsError> {
    let url = one_of(&c.name, "url", c.url.as_ref(), c.url_file.as_deref())?;
    let key = if c.url_file.is_some() { "url_file" } else { "url" };
    // check_channel_url quotes no part of the URL; the key says which file held it.
    check_channel_url(&format!("notify.channels[{}].{key}", c.name), url.expose())?;
    Ok(url)
}

/// The inline value or the file's content; settings validation already refused both or neither.
fn one_of(channel: &str, key: &str, inline: Option<&Secret>, file: Option<&Path>) -> Result<Secret, SettingsError> {
    match (inline, file) {
        (_, Some(path)) => read_secret(channel, &format!("{key}_file"), path),
        (Some(value), None) => Ok(Secret::new(value.expose().trim())),
        (None, None) => Err(invalid(channel, key, format!("needs {key} or {key}_file"))),
    }
}

/// The file's content, trimmed; an empty file is an error.
fn read_secret(channel: &str, key: &str, path: &Path) -> Result<Secret, SettingsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(channel, key, format!("cannot read {}: {e}", path.display())))?;
    let value = text.trim();
    if value.is_empty() {
        return Err(invalid(channel, key, format!("{} is empty", path.display())));
    }
    Ok(Secret::new(value))
}

/// `whsec_` + standard base64 (padding optional and trailing bits ignored, as the Standard
/// Webhooks libraries accept it) of
/// 24 to 64 bytes. The message never quotes the secret.
pub(super) fn decode_signing_secret(secret: &Secret) -> Result<SigningKey, String> {
    let Some(encoded) = secret.expose().strip_prefix(WHSEC_PREFIX) else {
        return Err("the signing secret must start with `whsec_` (Standard Webhooks)".into());
    };
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let key =
        engine.decode(encoded).map_err(|_| "the signing secret after `whsec_` is not standard base64".to_string())?;
    if !KEY_BYTES.contains(&key.len()) {
        return Err(format!(
            "the signing secret decodes to {} bytes; Standard Webhooks secrets are {} to {} bytes",
            key.len(),
            KEY_BYTES.start(),
            KEY_BYTES.end()
        ));
    }
    Ok(SigningKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn channel(kind: &str, extra: &str) -> ChannelSettings {
        toml::from_str(&format!("name = \"c1\"\nkind = \"{kind}\"\n{extra}")).unwrap()
    }

    fn file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    fn error(c: &ChannelSettings) -> String {
        Channel::from_settings(c).unwrap_err().to_string()
    }

    #[test]
    fn a_url_and_a_secret_are_read_from_their_files_and_trimmed() {
        let url = file("  https://hooks.example.com/s3cr3t-path\n");
        let secret = file(&format!("{SECRET}\n"));
        let c = channel("webhook", &format!("url_file = {:?}\nsecret_file = {:?}", url.path(), secret.path()));
        let ch = Channel::from_settings(&c).unwrap();
        let Target::Webhook { url, key } = &ch.target else { panic!("{ch:?}") };
        assert_eq!(url.expose(), "https://hooks.example.com/s3cr3t-path");
        assert_eq!(key.0.len(), 24);
        let shown = format!("{ch:?}");
        assert!(!shown.contains("s3cr3t") && !shown.contains("MfKQ9"), "{shown}");
    }

    #[test]
    fn an_unreadable_file_is_named_by_its_key() {
        let c = channel("teams", "url_file = \"/nonexistent/teams-url\"");
        let e = error(&c);
        assert!(e.contains("notify.channels[c1].url_file") && e.contains("cannot read /nonexistent/teams-url"), "{e}");
    }

    #[test]
    fn an_http_url_from_a_file_to_a_remote_host_is_refused_without_quoting_it() {
        let url = file("http://hooks.example.com/s3cr3t-path");
        let e = error(&channel("slack", &format!("url_file = {:?}", url.path())));
        assert!(e.contains("notify.channels[c1].url_file") && e.contains("loopback"), "{e}");
        assert!(!e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn a_signing_secret_must_be_whsec_and_base64_of_24_to_64_bytes() {
        let url = "url = \"https://hooks.example.com/x\"";
        for (secret, expected) in [
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with `whsec_`"),
            ("whsec_not*base64!!", "not standard base64"),
            ("whsec_c2hvcnQ=", "decodes to 5 bytes"),
        ] {
            let e = error(&channel("webhook", &format!("{url}\nsecret = {secret:?}")));
            assert!(e.contains("notify.channels[c1].secret") && e.contains(expected), "{secret}: {e}");
            assert!(!e.contains(secret.trim_start_matches("whsec_")), "{e}");
        }
        // Unpadded base64 is accepted, as the reference libraries do (their own test secret).
        assert!(decode_signing_secret(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwBr")).is_ok());
    }

    #[test]
    fn an_empty_password_file_or_a_missing_half_of_the_credentials_is_refused() {
        let mail = "smtp_url = \"smtp://mail.example.com\"\nfrom = \"dualkey@example.com\"\nto = [\"a@example.com\"]";
        let empty = file("\n");
        let user = file("alice");
        let e = error(&channel(
            "email",
            &format!("{mail}\nusername_file = {:?}\npassword_file = {:?}", user.path(), empty.path()),
        ));
        assert!(e.contains("notify.channels[c1].password_file") && e.contains("is empty"), "{e}");
        let e = error(&channel("email", &format!("{mail}\nusername_file = {:?}", user.path())));
        assert!(e.contains("notify.channels[c1].password_file"), "{e}");
    }
}
