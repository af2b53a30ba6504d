//! `[notify]`: where dualkey tells people that something needs them (channels), which events
//! go where (routes), and how hard it tries.

use super::SettingsError;
use crate::duration::HumanDuration;
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;

/// Every event dualkey emits (the `type` of a webhook message).
pub const EVENTS: &[&str] = &[
    "release.requested",
    "release.approval_added",
    "release.approved",
    "release.rejected",
    "release.cancelled",
    "release.expired",
    "release.dispatched",
    "release.succeeded",
    "release.failed",
    "break_glass.used",
    "break_glass.ratified",
    "break_glass.unratified",
    "policy.reload_refused",
    "bypass.detected",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySettings {
    pub channels: Vec<ChannelSettings>,
    pub routes: Vec<RouteSettings>,
    /// Backoff before the second attempt, doubling (with jitter) up to `backoff_max`.
    pub backoff_base: HumanDuration,
    pub backoff_max: HumanDuration,
    /// One attempt (HTTP request or SMTP conversation) may take this long.
    pub request_timeout: HumanDuration,
    /// A message not delivered this long after its event is dead.
    pub max_age: HumanDuration,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            channels: Vec::new(),
            routes: Vec::new(),
            backoff_base: HumanDuration::from_secs(2),
            backoff_max: HumanDuration::from_secs(300),
            request_timeout: HumanDuration::from_secs(10),
            max_age: HumanDuration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Teams,
    Slack,
    Webhook,
    Email,
}

/// One channel as written. Which keys apply depends on `kind`; [`NotifySettings`] validation
/// says which are missing or extra.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettings {
    pub name: String,
    pub kind: ChannelKind,
    /// Teams, Slack, webhook: the URL (a secret: whoever holds it can post), or a file holding it.
    #[serde(default)]
    pub url: Option<Secret>,
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// Webhook: the signing secret, `whsec_` + base64 (Standard Webhooks), or a file holding it.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// E-mail: `smtp://host:port` (STARTTLS when offered) or `smtps://host:port` (implicit TLS).
    #[serde(default)]
    pub smtp_url: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub username_file: Option<PathBuf>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSettings {
    pub events: Vec<String>,
    /// Only releases decided under these policy rules (`default` is the default rule).
    #[serde(default)]
    pub rules: Option<Vec<String>>,
    pub channels: Vec<String>,
}

fn invalid(key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid { key: key.to_string(), message: message.into() }
}

/// An `http://` URL is allowed only to a loopback host (a test receiver, a local relay).
pub fn check_channel_url(key: &str, url: &str) -> Result<(), SettingsError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| invalid(key, format!("not a URL ({e})")))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if crate::net::is_loopback_host(parsed.host_str().unwrap_or_default()) => Ok(()),
        "http" => Err(invalid(key, "an http:// URL is allowed only to a loopback host; use https://")),
        other => Err(invalid(key, format!("`{other}` URLs are not supported; use https://"))),
    }
}

impl NotifySettings {
    /// Checks names, kinds and durations; `rules` are the policy's rule names (with `default`).
    /// URLs given inline are checked here; URLs in files when the daemon reads them.
    pub(super) fn validate(&self, rules: &[String]) -> Result<(), SettingsError> {
        for (key, d) in [
            ("notify.backoff_base", &self.backoff_base),
            ("notify.backoff_max", &self.backoff_max),
            ("notify.request_timeout", &self.request_timeout),
        ] {
            if d.get().is_zero() {
                return Err(invalid(key, "must be greater than zero"));
            }
        }
        if self.max_age.get() < std::time::Duration::from_secs(60) {
            return Err(invalid("notify.max_age", "must be at least 1m"));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in self.channels.iter().enumerate() {
            let key = |k: &str| format!("notify.channels[{i}].{k}");
            if c.name.trim().is_empty() || !names.insert(c.name.as_str()) {
                return Err(invalid(&key("name"), format!("`{}` is empty or names two channels", c.name)));
            }
            let one_of = |a: bool, b: bool, what: &str| match (a, b) {
                (true, true) => Err(invalid(&key(what), format!("set {what} or {what}_file, not both"))),
                (false, false) => {
                    Err(invalid(&key(what), format!("a {:?} channel needs {what} or {what}_file", c.kind)))
                }
                _ => Ok(()),
            };
            match c.kind {
                ChannelKind::Teams | ChannelKind::Slack | ChannelKind::Webhook => {
                    one_of(c.url.is_some(), c.url_file.is_some(), "url")?;
                    if let Some(url) = &c.url {
                        check_channel_url(&key("url"), url.expose())?;
                    }
                    if c.kind == ChannelKind::Webhook {
                        one_of(c.secret.is_some(), c.secret_file.is_some(), "secret")?;
                    }
                }
                ChannelKind::Email => {
                    let smtp = c
                        .smtp_url
                        .as_deref()
                        .ok_or_else(|| invalid(&key("smtp_url"), "an email channel needs smtp_url"))?;
                    let parsed =
                        reqwest::Url::parse(smtp).map_err(|e| invalid(&key("smtp_url"), format!("not a URL ({e})")))?;
                    if !matches!(parsed.scheme(), "smtp" | "smtps") || parsed.host_str().is_none() {
                        return Err(invalid(&key("smtp_url"), "must be smtp://host[:port] or smtps://host[:port]"));
                    }
                    if c.from.as_deref().is_none_or(|f| !f.contains('@')) {
                        return Err(invalid(&key("from"), "an email channel needs a from address"));
                    }
                    if c.to.is_empty() || c.to.iter().any(|t| !t.contains('@')) {
                        return Err(invalid(&key("to"), "an email channel needs one or more addresses"));
                    }
                }
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            let key = |k: &str| format!("notify.routes[{i}].{k}");
            if r.events.is_empty() || r.channels.is_empty() {
                return Err(invalid(&key("events"), "a route needs events and channels"));
            }
            if let Some(e) = r.events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
                return Err(invalid(&key("events"), format!("unknown event `{e}` (known: {})", EVENTS.join(", "))));
            }
            if let Some(c) = r.channels.iter().find(|c| !names.contains(c.as_str())) {
                return Err(invalid(&key("channels"), format!("unknown channel `{c}`")));
            }
            if let Some(rule) = r.rules.iter().flatten().find(|rule| !rules.contains(rule)) {
                return Err(invalid(&key("rules"), format!("unknown policy rule `{rule}`")));
            }
        }
        Ok(())
    }

    /// The channels a message for `event` about a release decided under `rule` goes to, each once.
    pub fn channels_for(&self, event: &str, rule: Option<&str>) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for r in &self.routes {
            let rule_ok = match (&r.rules, rule) {
                (None, _) => true,
                (Some(rules), Some(rule)) => rules.iter().any(|x| x == rule),
                (Some(_), None) => false,
            };
            if rule_ok && r.events.iter().any(|e| e == event) {
                for c in &r.channels {
                    if !out.contains(&c.as_str()) {
                        out.push(c);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::settings::{EMBEDDED_DEFAULT, load_from_str};

    fn with_notify(notify: &str) -> Result<crate::settings::Settings, crate::settings::SettingsError> {
        let text = format!(
            "{EMBEDDED_DEFAULT}\n[[policy.rules]]\nname = \"tier0\"\nmatch = {{ tags = [\"crown-jewel\"] }}\nrequire = [ {{ role = \"Release.Approve\", count = 2 }} ]\n{notify}"
        );
        load_from_str(&text, "test", [])
    }

    const HOOK: &str = "[[notify.channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"https://hooks.example.com/x\"\nsecret = \"whsec_c2VjcmV0\"\n";

    #[test]
    fn routes_name_known_channels_events_and_rules_and_fan_out_once_per_channel() {
        let s = with_notify(&format!(
            "{HOOK}[[notify.routes]]\nevents = [\"release.requested\"]\nrules = [\"tier0\"]\nchannels = [\"hook\"]\n[[notify.routes]]\nevents = [\"release.requested\", \"release.failed\"]\nchannels = [\"hook\"]\n"
        ))
        .unwrap();
        assert_eq!(s.notify.channels_for("release.requested", Some("tier0")), ["hook"]);
        assert_eq!(s.notify.channels_for("release.failed", Some("default")), ["hook"]);
        assert!(s.notify.channels_for("release.approved", Some("tier0")).is_empty());
        assert_eq!(s.notify.backoff_base.get().as_secs(), 2);
        assert_eq!(s.notify.max_age.get().as_secs(), 24 * 3600);
    }

    #[test]
    fn start_up_refuses_unknown_names_and_plain_http_beyond_loopback() {
        for (notify, key) in [
            (format!("{HOOK}[[notify.routes]]\nevents = [\"release.requested\"]\nchannels = [\"nope\"]\n"), "notify.routes[0].channels"),
            (format!("{HOOK}[[notify.routes]]\nevents = [\"release.teleported\"]\nchannels = [\"hook\"]\n"), "notify.routes[0].events"),
            (format!("{HOOK}[[notify.routes]]\nevents = [\"release.requested\"]\nrules = [\"tier9\"]\nchannels = [\"hook\"]\n"), "notify.routes[0].rules"),
            (HOOK.replace("https://hooks.example.com/x", "http://hooks.example.com/x"), "notify.channels[0].url"),
            (HOOK.replace("secret = \"whsec_c2VjcmV0\"\n", ""), "notify.channels[0].secret"),
            ("[[notify.channels]]\nname = \"mail\"\nkind = \"email\"\nsmtp_url = \"http://mail.example.com\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n".into(), "notify.channels[0].smtp_url"),
            ("[notify]\nmax_age = \"30s\"\n".into(), "notify.max_age"),
        ] {
            let e = with_notify(&notify).unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
        for ok in ["http://127.0.0.1:9000/x", "http://localhost/x", "http://[::1]:8/x"] {
            assert!(with_notify(&HOOK.replace("https://hooks.example.com/x", ok)).is_ok(), "{ok}");
        }
    }
}
