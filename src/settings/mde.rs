//! `[mde]`: the Defender API, the app's credentials, and how the release worker paces itself.
//! Plain data: the MDE client and the worker build their own configuration from it
//! (`MdeClientConfig::from_settings`, `WorkerConfig::from_settings`).

use super::cloud::CloudPreset;
use super::load::SettingsError;
use crate::duration::HumanDuration;
use crate::lenient::{lenient_bool, lenient_u32};
use crate::secret::Secret;
use serde::{Deserialize, Deserializer, de};
use std::path::PathBuf;

/// The signature algorithm of a certificate assertion (`mde.assertion_alg`). Entra's current
/// doc says PS256; the previous one used RS256, which Entra still accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AssertionAlg {
    #[default]
    PS256,
    RS256,
}

impl<'de> Deserialize<'de> for AssertionAlg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "PS256" => Ok(Self::PS256),
            "RS256" => Ok(Self::RS256),
            other => Err(de::Error::custom(format!("`{other}` is not PS256 or RS256"))),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MdeSettings {
    /// `commercial`, `gcc`, `gcc-high` or `dod`: fills `api_base`, `token_url` and `scope`
    /// (explicit keys win). Needs `tenant_id` for the token URL.
    pub cloud: Option<String>,
    pub tenant_id: Option<String>,
    pub api_base: Option<String>,
    pub token_url: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub client_secret_file: Option<PathBuf>,
    /// The app's certificate (PEM) for a signed client assertion instead of a secret.
    pub certificate: Option<String>,
    pub certificate_file: Option<PathBuf>,
    pub private_key: Option<Secret>,
    pub private_key_file: Option<PathBuf>,
    /// `PS256` (Entra's recommendation) or `RS256`.
    pub assertion_alg: AssertionAlg,
    #[serde(deserialize_with = "lenient_u32")]
    pub rate_per_minute: u32,
    #[serde(deserialize_with = "lenient_u32")]
    pub rate_per_hour: u32,
    pub poll_interval: HumanDuration,
    pub request_timeout: HumanDuration,
    /// Run the release worker inside `serve` (off for an API-only instance).
    #[serde(deserialize_with = "lenient_bool")]
    pub worker_enabled: bool,
    /// Attempts to send a release before it is `failed`.
    #[serde(deserialize_with = "lenient_u32")]
    pub max_attempts: u32,
    pub backoff_base: HumanDuration,
    pub backoff_max: HumanDuration,
    /// How long a claim holds without renewal: the worker renews it every third of it while it
    /// works the job (MDE calls included), so a dead worker's job is taken over within it.
    pub lease: HumanDuration,
    /// Longest time between looks for approvals written by another process.
    pub scan_interval: HumanDuration,
    /// On shutdown, how long an in-flight MDE call may take before the daemon exits anyway.
    pub shutdown_grace: HumanDuration,
    /// A request uses cached facts about a device no older than this; older ones are read again.
    pub device_max_age: HumanDuration,
    /// The longest an API request waits for MDE rate budget before answering 503 `mde_busy`.
    pub request_wait: HumanDuration,
    /// How often the tenant's Unisolates are read when no action is in flight.
    pub bypass_scan_interval: HumanDuration,
    /// Unisolates created before this (RFC 3339) are never reported as bypasses; unset: the
    /// first start of this installation.
    pub bypass_scan_since: Option<String>,
    /// How MDE names this app in an action's `requestor`; unset: learned from the first action
    /// dualkey creates.
    pub app_requestor: Option<String>,
}

impl Default for MdeSettings {
    fn default() -> Self {
        Self {
            cloud: None,
            tenant_id: None,
            api_base: None,
            token_url: None,
            scope: None,
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            certificate: None,
            certificate_file: None,
            private_key: None,
            private_key_file: None,
            assertion_alg: AssertionAlg::PS256,
            rate_per_minute: 100,
            rate_per_hour: 1500,
            poll_interval: HumanDuration::from_secs(10),
            request_timeout: HumanDuration::from_secs(30),
            worker_enabled: true,
            max_attempts: 8,
            backoff_base: HumanDuration::from_secs(2),
            backoff_max: HumanDuration::from_secs(300),
            lease: HumanDuration::from_secs(30),
            scan_interval: HumanDuration::from_secs(5),
            shutdown_grace: HumanDuration::from_secs(30),
            device_max_age: HumanDuration::from_secs(60),
            request_wait: HumanDuration::from_secs(2),
            bypass_scan_interval: HumanDuration::from_secs(60),
            bypass_scan_since: None,
            app_requestor: None,
        }
    }
}

/// The shortest `mde.lease`: renewed every third of it, a claim costs at most a write a second.
const MIN_LEASE: std::time::Duration = std::time::Duration::from_secs(3);

fn invalid(key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid { key: key.to_string(), message: message.into() }
}

/// Where the API and token endpoint are, after applying the cloud preset (explicit keys win).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdeEndpoints {
    pub api_base: Option<String>,
    pub token_url: Option<String>,
    pub scope: Option<String>,
}

impl MdeSettings {
    /// The endpoints after applying `mde.cloud`; an unknown cloud or one without a tenant is an
    /// error naming the key.
    pub fn endpoints(&self) -> Result<MdeEndpoints, SettingsError> {
        let preset = match &self.cloud {
            None => None,
            Some(name) => {
                let preset = CloudPreset::parse(name).ok_or_else(|| {
                    invalid("mde.cloud", format!("`{name}` is not one of commercial, gcc, gcc-high, dod"))
                })?;
                let tenant = self.tenant_id.as_deref().filter(|t| !t.trim().is_empty());
                let tenant = tenant.ok_or_else(|| invalid("mde.tenant_id", "needed with mde.cloud"))?;
                Some(preset.endpoints(tenant))
            }
        };
        Ok(MdeEndpoints {
            api_base: self.api_base.clone().or_else(|| preset.as_ref().map(|p| p.api_base.clone())),
            token_url: self.token_url.clone().or_else(|| preset.as_ref().map(|p| p.token_url.clone())),
            scope: self.scope.clone().or_else(|| preset.as_ref().map(|p| p.scope.clone())),
        })
    }

    /// Checks what can be checked without reading files; with the worker on, the API, the app
    /// and exactly one kind of credential must be configured.
    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        let endpoints = self.endpoints()?;
        for (key, value) in [("mde.api_base", &endpoints.api_base), ("mde.token_url", &endpoints.token_url)] {
            if let Some(v) = value {
                super::load::check_url(key, v)?;
            }
        }
        if self.rate_per_minute == 0 {
            return Err(invalid("mde.rate_per_minute", "must be at least 1"));
        }
        if self.rate_per_hour < self.rate_per_minute {
            return Err(invalid("mde.rate_per_hour", "must be at least mde.rate_per_minute"));
        }
        for (key, d) in [
            ("mde.poll_interval", self.poll_interval),
            ("mde.request_timeout", self.request_timeout),
            ("mde.backoff_base", self.backoff_base),
            ("mde.scan_interval", self.scan_interval),
            ("mde.device_max_age", self.device_max_age),
            ("mde.bypass_scan_interval", self.bypass_scan_interval),
        ] {
            if d.get().is_zero() {
                return Err(invalid(key, "must be greater than zero"));
            }
        }
        if self.backoff_max < self.backoff_base {
            return Err(invalid("mde.backoff_max", "must be at least mde.backoff_base"));
        }
        if let Some(since) = &self.bypass_scan_since
            && time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339).is_err()
        {
            return Err(invalid("mde.bypass_scan_since", format!("`{since}` is not an RFC 3339 time")));
        }
        if self.app_requestor.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return Err(invalid("mde.app_requestor", "must not be empty"));
        }
        if self.max_attempts == 0 {
            return Err(invalid("mde.max_attempts", "must be at least 1"));
        }
        if self.lease.get() < MIN_LEASE {
            return Err(invalid(
                "mde.lease",
                "must be at least 3s: the worker renews it every third of it, at most once a second",
            ));
        }
        if !self.worker_enabled {
            return Ok(());
        }
        let missing =
            |key: &str| invalid(key, "required while mde.worker_enabled is true (or set mde.cloud and mde.tenant_id)");
        endpoints.api_base.as_ref().ok_or_else(|| missing("mde.api_base"))?;
        endpoints.token_url.as_ref().ok_or_else(|| missing("mde.token_url"))?;
        endpoints.scope.as_ref().ok_or_else(|| missing("mde.scope"))?;
        self.client_id.as_ref().ok_or_else(|| invalid("mde.client_id", "required while mde.worker_enabled is true"))?;
        let secrets = [self.client_secret.is_some(), self.client_secret_file.is_some()].iter().filter(|b| **b).count();
        let cert = self.certificate.is_some() || self.certificate_file.is_some();
        let key = self.private_key.is_some() || self.private_key_file.is_some();
        match (secrets, cert, key) {
            (1, false, false) | (0, true, true) => Ok(()),
            (0, false, false) => Err(invalid(
                "mde.client_secret",
                "set one credential: client_secret, client_secret_file, or certificate(_file) with private_key(_file)",
            )),
            (0, true, false) => Err(invalid("mde.private_key_file", "a certificate needs its private key")),
            (0, false, true) => Err(invalid("mde.certificate_file", "a private key needs its certificate")),
            _ => Err(invalid("mde.client_secret", "set only one kind of credential (secret or certificate)")),
        }
    }

    /// True when an MDE API is configured (directly or through a cloud preset), so the daemon
    /// builds a client for it even if the worker is off.
    pub fn is_configured(&self) -> bool {
        self.endpoints().is_ok_and(|e| e.api_base.is_some())
    }
}

#[cfg(test)]
mod tests {
    use crate::settings::{EMBEDDED_DEFAULT, load_from_str};

    fn load(pairs: &[(&str, &str)]) -> Result<crate::settings::Settings, crate::settings::SettingsError> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        load_from_str(EMBEDDED_DEFAULT, "test", env)
    }

    const WORKER: [(&str, &str); 3] = [
        ("DUALKEY_MDE__WORKER_ENABLED", "true"),
        ("DUALKEY_MDE__CLIENT_ID", "app"),
        ("DUALKEY_MDE__CLIENT_SECRET", "s3cret"),
    ];

    #[test]
    fn a_cloud_preset_fills_the_endpoints_and_explicit_keys_win() {
        let mut env = WORKER.to_vec();
        env.extend([("DUALKEY_MDE__CLOUD", "gcc-high"), ("DUALKEY_MDE__TENANT_ID", "tenant-1")]);
        let e = load(&env).unwrap().mde.endpoints().unwrap();
        assert_eq!(e.api_base.as_deref(), Some("https://api-gov.securitycenter.microsoft.us"));
        let token_url = e.token_url.unwrap();
        assert!(token_url.starts_with("https://login.microsoftonline.us/tenant-1/"), "{token_url}");
        env.push(("DUALKEY_MDE__API_BASE", "https://eu.api.security.microsoft.com"));
        let e = load(&env).unwrap().mde.endpoints().unwrap();
        assert_eq!(e.api_base.as_deref(), Some("https://eu.api.security.microsoft.com"));
    }

    #[test]
    fn the_worker_needs_an_api_and_exactly_one_credential() {
        let err = load(&WORKER).unwrap_err().to_string();
        assert!(err.contains("mde.api_base"), "{err}");
        let mut env = WORKER.to_vec();
        env.extend([("DUALKEY_MDE__CLOUD", "commercial"), ("DUALKEY_MDE__TENANT_ID", "t")]);
        assert!(load(&env).is_ok());
        env.push(("DUALKEY_MDE__CERTIFICATE_FILE", "/etc/dualkey/app.crt"));
        let err = load(&env).unwrap_err().to_string();
        assert!(err.contains("mde.client_secret") || err.contains("mde.private_key_file"), "{err}");
        let err = load(&[("DUALKEY_MDE__CLOUD", "moon")]).unwrap_err().to_string();
        assert!(err.contains("mde.cloud"), "{err}");
    }

    #[test]
    fn the_secret_is_never_printed_by_debug() {
        let shown = format!(
            "{:?}",
            load(
                &WORKER
                    .iter()
                    .copied()
                    .chain([("DUALKEY_MDE__CLOUD", "commercial"), ("DUALKEY_MDE__TENANT_ID", "t")])
                    .collect::<Vec<_>>()
            )
            .unwrap()
        );
        assert!(!shown.contains("s3cret"), "Debug of the settings shows a secret");
    }

    #[test]
    fn the_lease_is_30s_by_default_may_be_shorter_than_a_call_and_is_at_least_3s() {
        assert_eq!(load(&[]).unwrap().mde.lease.get(), std::time::Duration::from_secs(30));
        let s = load(&[("DUALKEY_MDE__LEASE", "3s"), ("DUALKEY_MDE__REQUEST_TIMEOUT", "2m")]).unwrap();
        assert_eq!(s.mde.lease.get(), std::time::Duration::from_secs(3), "the heartbeat covers a long call");
        for short in ["2999ms", "0s"] {
            let err = load(&[("DUALKEY_MDE__LEASE", short)]).unwrap_err().to_string();
            assert!(err.contains("mde.lease") && err.contains("at least 3s"), "{short}: {err}");
        }
    }

    #[test]
    fn the_view_settings_have_defaults_and_a_bad_since_is_refused_by_its_key() {
        let s = load(&[]).unwrap().mde;
        assert_eq!(s.device_max_age.get().as_secs(), 60);
        assert_eq!(s.request_wait.get().as_secs(), 2);
        assert_eq!(s.bypass_scan_interval.get().as_secs(), 60);
        let err = load(&[("DUALKEY_MDE__BYPASS_SCAN_SINCE", "yesterday")]).unwrap_err().to_string();
        assert!(err.contains("mde.bypass_scan_since"), "{err}");
        assert!(load(&[("DUALKEY_MDE__BYPASS_SCAN_SINCE", "2026-11-01T00:00:00Z")]).is_ok());
        let err = load(&[("DUALKEY_MDE__DEVICE_MAX_AGE", "0s")]).unwrap_err().to_string();
        assert!(err.contains("mde.device_max_age"), "{err}");
    }

    #[test]
    fn an_unknown_assertion_alg_is_refused_naming_the_key() {
        let err = load(&[("DUALKEY_MDE__ASSERTION_ALG", "HS256")]).unwrap_err().to_string();
        assert!(err.contains("mde.assertion_alg") && err.contains("PS256 or RS256"), "{err}");
        let s = load(&[("DUALKEY_MDE__ASSERTION_ALG", "RS256")]).unwrap();
        assert_eq!(s.mde.assertion_alg, super::AssertionAlg::RS256);
    }
}
