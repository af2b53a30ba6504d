//! One `[[audit.forward]]`: where an off-host copy of the trail goes (a syslog receiver over
//! TCP or TLS, or a Splunk HTTP Event Collector) and how hard dualkey tries. Which keys apply
//! depends on `kind`; [`ForwardSettings::validate`] names the key that is missing, extra or wrong.

use crate::duration::HumanDuration;
use crate::settings::SettingsError;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForwardKind {
    /// RFC 5424 messages, octet-counted (RFC 6587), over TCP or TLS (RFC 5425).
    Syslog,
    /// Splunk HEC batches over HTTPS.
    Http,
}

/// One forwarder as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardSettings {
    /// Names the forwarder's cursor in the database: a new name starts again from seq 1.
    pub name: String,
    pub kind: ForwardKind,
    /// Syslog: `host:port` (`[::1]:6514` for an IPv6 address).
    #[serde(default)]
    pub address: Option<String>,
    /// Syslog: TLS with the receiver's certificate checked. Default: false (plain TCP).
    #[serde(default)]
    pub tls: Option<bool>,
    /// Syslog over TLS: PEM certificates to trust instead of the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// HTTP: the full HEC endpoint, e.g. `https://splunk.example.com:8088/services/collector/event`.
    #[serde(default)]
    pub url: Option<String>,
    /// HTTP: a file holding the HEC token (read at start-up, trimmed, never logged).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// At most this many entries per batch (one HTTP request, one write). Default: 100.
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Wait after the first failure, doubling (with jitter) up to `backoff_max`. Default: "1s".
    #[serde(default = "default_backoff_base")]
    pub backoff_base: HumanDuration,
    /// Default: "5m".
    #[serde(default = "default_backoff_max")]
    pub backoff_max: HumanDuration,
    /// One connect (TLS handshake included), one batch write or one HTTP request may take this
    /// long. Default: "10s".
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

/// The largest `batch_size` accepted.
const MAX_BATCH_SIZE: u32 = 10_000;

fn default_batch_size() -> u32 {
    100
}

fn default_backoff_base() -> HumanDuration {
    HumanDuration::from_secs(1)
}

fn default_backoff_max() -> HumanDuration {
    HumanDuration::from_secs(300)
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

impl ForwardSettings {
    /// Whether a syslog forwarder uses TLS.
    pub fn tls(&self) -> bool {
        self.tls.unwrap_or(false)
    }

    /// Checks the forwarder written at `audit.forward[index]`: the keys its kind needs are there
    /// and well formed, the others absent. Files are read when the daemon starts, not here.
    pub(in crate::settings) fn validate(&self, index: usize) -> Result<(), SettingsError> {
        let key = |k: &str| format!("audit.forward[{index}].{k}");
        let invalid = |k: &str, message: String| SettingsError::Invalid { key: key(k), message };
        let name_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        if self.name.is_empty() || self.name.len() > 64 || !self.name.chars().all(name_ok) {
            return Err(invalid("name", "must be 1 to 64 letters, digits, `-`, `_` or `.`".into()));
        }
        // (key, whether it is set), for the keys a kind needs and those it refuses.
        type Keys<'a> = &'a [(&'a str, bool)];
        let (needs, refuses): (Keys, Keys) = match self.kind {
            ForwardKind::Syslog => (
                &[("address", self.address.is_some())],
                &[("url", self.url.is_some()), ("token_file", self.token_file.is_some())],
            ),
            ForwardKind::Http => (
                &[("url", self.url.is_some()), ("token_file", self.token_file.is_some())],
                &[
                    ("address", self.address.is_some()),
                    ("tls", self.tls.is_some()),
                    ("ca_file", self.ca_file.is_some()),
                ],
            ),
        };
        let kind = match self.kind {
            ForwardKind::Syslog => "syslog",
            ForwardKind::Http => "http",
        };
        if let Some((k, _)) = needs.iter().find(|(_, set)| !set) {
            return Err(invalid(k, format!("a kind = \"{kind}\" forwarder needs {k}")));
        }
        if let Some((k, _)) = refuses.iter().find(|(_, set)| *set) {
            return Err(invalid(k, format!("does not apply to kind = \"{kind}\"")));
        }
        if let Some(address) = &self.address {
            split_address(address).map_err(|m| invalid("address", m))?;
        }
        if self.ca_file.is_some() && !self.tls() {
            return Err(invalid("ca_file", "applies only with tls = true".into()));
        }
        if let Some(url) = &self.url {
            crate::settings::check_channel_url(&key("url"), url)?;
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(invalid("batch_size", format!("must be between 1 and {MAX_BATCH_SIZE}")));
        }
        for (k, d) in [("backoff_base", self.backoff_base), ("timeout", self.timeout)] {
            if d.get().is_zero() {
                return Err(invalid(k, "must be longer than zero".into()));
            }
        }
        if self.backoff_max < self.backoff_base {
            return Err(invalid("backoff_max", "must not be shorter than backoff_base".into()));
        }
        Ok(())
    }
}

/// `host:port` as a host (brackets of an IPv6 address removed) and a port from 1 to 65535.
pub fn split_address(address: &str) -> Result<(&str, u16), String> {
    let shape = || format!("`{address}` is not host:port (e.g. \"siem.example.com:6514\" or \"[::1]:514\")");
    let (host, port) = address.rsplit_once(':').ok_or_else(shape)?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(shape)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').filter(|h| h.parse::<std::net::Ipv6Addr>().is_ok()).ok_or_else(shape)?,
        None => host,
    };
    let host_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '_');
    if host.is_empty() || !host.chars().all(host_char) || (host.contains(':') && !address.starts_with('[')) {
        return Err(shape());
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarder(text: &str) -> Result<(), String> {
        let f: ForwardSettings = toml::from_str(&format!("name = \"siem\"\n{text}")).map_err(|e| e.to_string())?;
        f.validate(0).map_err(|e| e.to_string())
    }

    #[test]
    fn a_syslog_and_an_http_forwarder_with_their_keys_are_accepted() {
        forwarder("kind = \"syslog\"\naddress = \"siem.example.com:6514\"\ntls = true\nca_file = \"/etc/ca.pem\"")
            .unwrap();
        forwarder("kind = \"syslog\"\naddress = \"[::1]:514\"").unwrap();
        let hec = "kind = \"http\"\nurl = \"https://splunk.example.com:8088/services/collector/event\"";
        forwarder(&format!("{hec}\ntoken_file = \"/etc/hec\"\nbatch_size = 500\nbackoff_max = \"1m\"")).unwrap();
    }

    #[test]
    fn each_error_names_the_key_that_is_wrong() {
        let syslog = "kind = \"syslog\"\naddress = \"siem.example.com:514\"";
        let hec = "kind = \"http\"\nurl = \"https://splunk.example.com/services/collector/event\"\ntoken_file = \"/t\"";
        let cases = [
            ("kind = \"syslog\"", "audit.forward[0].address", "needs address"),
            ("kind = \"syslog\"\naddress = \"siem.example.com\"", "audit.forward[0].address", "host:port"),
            ("kind = \"syslog\"\naddress = \"siem:0\"", "audit.forward[0].address", "host:port"),
            ("kind = \"syslog\"\naddress = \"::1:514\"", "audit.forward[0].address", "host:port"),
            (&format!("{syslog}\nurl = \"https://x.example\""), "audit.forward[0].url", "does not apply"),
            (&format!("{syslog}\ntoken_file = \"/t\""), "audit.forward[0].token_file", "does not apply"),
            (&format!("{syslog}\nca_file = \"/ca.pem\""), "audit.forward[0].ca_file", "tls = true"),
            (&format!("{syslog}\nbatch_size = 0"), "audit.forward[0].batch_size", "between 1"),
            (&format!("{syslog}\ntimeout = \"0s\""), "audit.forward[0].timeout", "longer than zero"),
            (
                &format!("{syslog}\nbackoff_base = \"1m\"\nbackoff_max = \"1s\""),
                "audit.forward[0].backoff_max",
                "shorter",
            ),
            ("kind = \"http\"\ntoken_file = \"/t\"", "audit.forward[0].url", "needs url"),
            (
                "kind = \"http\"\nurl = \"https://splunk.example.com/\"",
                "audit.forward[0].token_file",
                "needs token_file",
            ),
            (&format!("{hec}\ntls = true"), "audit.forward[0].tls", "does not apply"),
            (&format!("{hec}\naddress = \"a:1\""), "audit.forward[0].address", "does not apply"),
            (
                "kind = \"http\"\nurl = \"http://splunk.example.com/services/collector/event\"\ntoken_file = \"/t\"",
                "audit.forward[0].url",
                "loopback",
            ),
        ];
        for (text, key, says) in cases {
            let e = forwarder(text).unwrap_err();
            assert!(e.contains(&format!("`{key}`")) && e.contains(says), "{text}: {e}");
        }
        let loopback = "kind = \"http\"\nurl = \"http://127.0.0.1:8088/services/collector/event\"\ntoken_file = \"/t\"";
        forwarder(loopback).unwrap();
    }

    #[test]
    fn a_name_is_plain_text_that_fits_a_log_line() {
        for name in ["", "a b", "siem\nfake", &"x".repeat(65)] {
            let f = ForwardSettings {
                name: name.into(),
                ..toml::from_str("name = \"x\"\nkind = \"syslog\"\naddress = \"a:1\"").unwrap()
            };
            let e = f.validate(3).unwrap_err().to_string();
            assert!(e.contains("`audit.forward[3].name`"), "{name:?}: {e}");
        }
    }

    #[test]
    fn a_forwarder_in_a_config_file_is_checked_when_the_settings_load() {
        let load = |section: &str| {
            let text = format!("{}\n[[audit.forward]]\nname = \"siem\"\n{section}", crate::settings::EMBEDDED_DEFAULT);
            crate::settings::load_from_str(&text, "test.toml", std::iter::empty()).map(|s| s.audit.forward)
        };
        let ok =
            load("kind = \"http\"\nurl = \"http://[::1]:8088/services/collector/event\"\ntoken_file = \"/t\"").unwrap();
        assert_eq!(
            (ok[0].kind, ok[0].batch_size, ok[0].timeout),
            (ForwardKind::Http, 100, HumanDuration::from_secs(10))
        );
        let e = load("kind = \"syslog\"\naddress = \"siem.example.com\"").unwrap_err().to_string();
        assert!(e.contains("`audit.forward[0].address`"), "{e}");
        let e = load("kind = \"syslog\"\naddress = \"a:1\"\nprotocol = \"udp\"").unwrap_err().to_string();
        assert!(e.contains("audit.forward[0]") && e.contains("protocol"), "{e}");
        let e = load("kind = \"relp\"\naddress = \"a:1\"").unwrap_err().to_string();
        assert!(e.contains("audit.forward[0].kind"), "{e}");
    }

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(split_address("siem.example.com:6514"), Ok(("siem.example.com", 6514)));
        assert_eq!(split_address("127.0.0.1:514"), Ok(("127.0.0.1", 514)));
        assert_eq!(split_address("[::1]:514"), Ok(("::1", 514)));
        for bad in ["", ":514", "siem", "siem:", "siem:65536", "[::1:514", "[siem]:514", "si em:514", "a/b:1"] {
            assert!(split_address(bad).is_err(), "{bad}");
        }
    }
}
