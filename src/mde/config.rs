//! The client's configuration built from the `[mde]` settings: endpoints after the cloud
//! preset, and the credential, reading secret and key files now.

use super::client::MdeClientConfig;
use super::token::MdeCredential;
use crate::secret::Secret;
use crate::settings::{MdeSettings, SettingsError};
use std::path::Path;

fn invalid(key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid { key: key.to_string(), message: message.into() }
}

fn read_file(key: &str, path: &Path) -> Result<String, SettingsError> {
    std::fs::read_to_string(path).map_err(|e| invalid(key, format!("cannot read {}: {e}", path.display())))
}

impl MdeClientConfig {
    /// The client's configuration from `[mde]`, reading secret and key files now. Errors name
    /// the key.
    pub fn from_settings(s: &MdeSettings) -> Result<Self, SettingsError> {
        let e = s.endpoints()?;
        let need = |key: &str, v: Option<String>| v.ok_or_else(|| invalid(key, "not configured"));
        let credential = if let Some(secret) = &s.client_secret {
            MdeCredential::ClientSecret(secret.clone())
        } else if let Some(path) = &s.client_secret_file {
            MdeCredential::ClientSecret(Secret::new(read_file("mde.client_secret_file", path)?.trim()))
        } else {
            let certificate_pem = match (&s.certificate, &s.certificate_file) {
                (Some(pem), _) => pem.clone(),
                (None, Some(path)) => read_file("mde.certificate_file", path)?,
                (None, None) => return Err(invalid("mde.client_secret", "no credential configured")),
            };
            let private_key_pem = match (&s.private_key, &s.private_key_file) {
                (Some(k), _) => k.clone(),
                (None, Some(path)) => Secret::new(read_file("mde.private_key_file", path)?),
                (None, None) => return Err(invalid("mde.private_key_file", "a certificate needs its private key")),
            };
            MdeCredential::Certificate { certificate_pem, private_key_pem, alg: s.assertion_alg }
        };
        Ok(Self {
            api_base: need("mde.api_base", e.api_base)?,
            token_url: need("mde.token_url", e.token_url)?,
            scope: need("mde.scope", e.scope)?,
            client_id: need("mde.client_id", s.client_id.clone())?,
            credential,
            rate_per_minute: s.rate_per_minute,
            rate_per_hour: s.rate_per_hour,
            request_timeout: s.request_timeout.get(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{EMBEDDED_DEFAULT, load_from_str};

    #[test]
    fn a_missing_secret_file_is_reported_by_its_key() {
        let env = [
            ("DUALKEY_MDE__CLOUD", "commercial"),
            ("DUALKEY_MDE__TENANT_ID", "t"),
            ("DUALKEY_MDE__WORKER_ENABLED", "true"),
            ("DUALKEY_MDE__CLIENT_ID", "app"),
            ("DUALKEY_MDE__CLIENT_SECRET_FILE", "/nonexistent/secret"),
        ];
        let s = load_from_str(EMBEDDED_DEFAULT, "test", env.map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        let err = MdeClientConfig::from_settings(&s.mde).unwrap_err().to_string();
        assert!(err.contains("mde.client_secret_file"), "{err}");
    }

    #[test]
    fn a_cloud_preset_fills_the_client_endpoints() {
        let env = [
            ("DUALKEY_MDE__CLOUD", "gcc-high"),
            ("DUALKEY_MDE__TENANT_ID", "tenant-1"),
            ("DUALKEY_MDE__CLIENT_ID", "app"),
            ("DUALKEY_MDE__CLIENT_SECRET", "s3cret"),
        ];
        let s = load_from_str(EMBEDDED_DEFAULT, "test", env.map(|(k, v)| (k.to_string(), v.to_string()))).unwrap();
        let c = MdeClientConfig::from_settings(&s.mde).unwrap();
        assert_eq!(c.api_base, "https://api-gov.securitycenter.microsoft.us");
        assert!(c.token_url.starts_with("https://login.microsoftonline.us/tenant-1/"), "{}", c.token_url);
        assert_eq!(c.scope, "https://securitycenter.onmicrosoft.us/windowsatpservice/.default");
    }
}
