//! Building a [`Forwarder`] from its settings: the token and CA files are read now, so a
//! missing or malformed one stops start-up rather than the first batch. Errors name the key
//! (`audit.forward[0].token_file`) and never quote the token.

use super::{Forwarder, Target, hec, tcp};
use crate::secret::Secret;
use crate::settings::{ForwardKind, ForwardSettings, SettingsError, split_address};
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

fn invalid(index: usize, key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid { key: format!("audit.forward[{index}].{key}"), message: message.into() }
}

impl Forwarder {
    /// The forwarder written at `audit.forward[index]` (already validated with the settings),
    /// naming itself `host` in syslog messages.
    pub(crate) fn from_settings(index: usize, s: &ForwardSettings, host: &str) -> Result<Forwarder, SettingsError> {
        let timeout = s.timeout.get();
        let target = match s.kind {
            ForwardKind::Syslog => {
                let address = s.address.as_deref().ok_or_else(|| invalid(index, "address", "is missing"))?;
                let (h, port) = split_address(address).map_err(|m| invalid(index, "address", m))?;
                let tls = if s.tls() {
                    let name = ServerName::try_from(h.to_string())
                        .map_err(|_| invalid(index, "address", "the host is not a name a certificate can carry"))?;
                    Some((tls_config(index, s.ca_file.as_deref())?, name))
                } else {
                    None
                };
                Target::Syslog { endpoint: tcp::Endpoint { host: h.to_string(), port, tls }, host: host.to_string() }
            }
            ForwardKind::Http => {
                let url = s.url.as_deref().ok_or_else(|| invalid(index, "url", "is missing"))?;
                let url = reqwest::Url::parse(url).map_err(|e| invalid(index, "url", format!("not a URL ({e})")))?;
                let path = s.token_file.as_deref().ok_or_else(|| invalid(index, "token_file", "is missing"))?;
                let token = read_token(index, path)?;
                Target::Hec(hec::Endpoint::new(url, token, timeout).map_err(|m| invalid(index, "token_file", m))?)
            }
        };
        Ok(Forwarder {
            name: s.name.clone(),
            target,
            batch_size: i64::from(s.batch_size),
            backoff_base: s.backoff_base.get(),
            backoff_max: s.backoff_max.get(),
            timeout,
        })
    }
}

/// The token file's content, trimmed; an empty file is an error.
fn read_token(index: usize, path: &Path) -> Result<Secret, SettingsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(index, "token_file", format!("cannot read {}: {e}", path.display())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(invalid(index, "token_file", format!("{} is empty", path.display())));
    }
    Ok(Secret::new(token))
}

/// TLS 1.2 or 1.3 with aws-lc-rs, trusting the certificates of `ca_file`, or without one the
/// system's roots (through the platform verifier).
fn tls_config(index: usize, ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, SettingsError> {
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(index, "tls", format!("cannot set up TLS: {e}")))?;
    let config = match ca_file {
        Some(path) => {
            let key = "ca_file";
            let pem =
                std::fs::read(path).map_err(|e| invalid(index, key, format!("cannot read {}: {e}", path.display())))?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| invalid(index, key, format!("{} is not PEM: {e}", path.display())))?;
                roots.add(cert).map_err(|e| {
                    invalid(index, key, format!("{} holds an unusable certificate: {e}", path.display()))
                })?;
            }
            if roots.is_empty() {
                return Err(invalid(index, key, format!("{} holds no certificate", path.display())));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| invalid(index, "tls", format!("cannot load the system's roots: {e}")))?
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn settings(text: &str) -> ForwardSettings {
        toml::from_str(&format!("name = \"siem\"\n{text}")).unwrap()
    }

    fn file(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    fn error(s: &ForwardSettings) -> String {
        Forwarder::from_settings(2, s, "h").unwrap_err().to_string()
    }

    const HEC: &str = "kind = \"http\"\nurl = \"https://splunk.example.com:8088/services/collector/event\"";

    #[test]
    fn the_token_is_read_trimmed_and_never_shown() {
        let token = file("  0f1e2d3c-aaaa-bbbb-cccc-0123456789ab\n");
        let f =
            Forwarder::from_settings(0, &settings(&format!("{HEC}\ntoken_file = {:?}", token.path())), "h").unwrap();
        let shown = format!("{f:?}");
        assert!(!shown.contains("0f1e2d3c") && shown.contains("[redacted]"), "{shown}");
        assert_eq!((f.name.as_str(), f.batch_size, f.timeout), ("siem", 100, std::time::Duration::from_secs(10)));
    }

    #[test]
    fn an_unreadable_or_empty_token_file_is_named_by_its_key() {
        let e = error(&settings(&format!("{HEC}\ntoken_file = \"/nonexistent/hec-token\"")));
        assert!(e.contains("`audit.forward[2].token_file`") && e.contains("cannot read /nonexistent/hec-token"), "{e}");
        let empty = file("\n");
        let e = error(&settings(&format!("{HEC}\ntoken_file = {:?}", empty.path())));
        assert!(e.contains("`audit.forward[2].token_file`") && e.contains("is empty"), "{e}");
        let bad = file("s3cr3t\u{7f}token");
        let e = error(&settings(&format!("{HEC}\ntoken_file = {:?}", bad.path())));
        assert!(e.contains("`audit.forward[2].token_file`") && !e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let syslog = "kind = \"syslog\"\naddress = \"127.0.0.1:6514\"\ntls = true";
        let e = error(&settings(&format!("{syslog}\nca_file = \"/nonexistent/ca.pem\"")));
        assert!(e.contains("`audit.forward[2].ca_file`") && e.contains("cannot read"), "{e}");
        let not_pem = file("hello\n");
        let e = error(&settings(&format!("{syslog}\nca_file = {:?}", not_pem.path())));
        assert!(e.contains("`audit.forward[2].ca_file`") && e.contains("no certificate"), "{e}");
        // Without a ca_file, the system's roots are used.
        Forwarder::from_settings(0, &settings(syslog), "h").unwrap();
    }
}
