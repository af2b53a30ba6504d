//! The settings tree: `config/default.toml` (or `--config PATH`), then `DUALKEY_<SECTION>__<KEY>`
//! environment overrides. Every key is documented in `config/production.example.toml`.

mod cloud;
mod load;
mod mde;

pub use cloud::{CloudEndpoints, CloudPreset};
pub use load::{EMBEDDED_DEFAULT, SettingsError, WELL_KNOWN_DEV_SECRET, load, load_from_str};
pub use mde::{AssertionAlg, MdeEndpoints, MdeSettings};
// Settings are where durations are written (`settings::HumanDuration` in the CLI).
pub use crate::duration::HumanDuration;

use crate::lenient::lenient_u32;
use crate::secret::Secret;
use serde::Deserialize;

/// All of dualkey's settings. Built only through [`load`], which validates it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub database: DatabaseSettings,
    #[serde(default)]
    pub auth: AuthSettings,
    /// `[policy]` as written. Only [`crate::rules::PolicyDocument::validate`] reads it, at start-up
    /// and on reload; everything else reads the validated policy in force (`AppState::policy`).
    #[serde(default)]
    pub policy: crate::rules::PolicyDocument,
    #[serde(default)]
    pub mde: MdeSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address and port to listen on, e.g. `127.0.0.1:8080`; port 0 picks a free port.
    pub bind: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self { bind: "127.0.0.1:8080".into() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://path?mode=rwc`
    pub url: String,
    /// How long a writer waits for SQLite's lock before giving up.
    pub busy_timeout: HumanDuration,
    /// Read connections in the pool (writes use one dedicated connection).
    #[serde(deserialize_with = "lenient_u32")]
    pub max_read_connections: u32,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://dualkey.db?mode=rwc".into(),
            busy_timeout: HumanDuration::from_secs(5),
            max_read_connections: 8,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Shared secret for HS256 tokens (at least 32 bytes). Unset disables HS256.
    pub hs256_secret: Option<Secret>,
    /// JWKS URL for RS256 tokens. Unset disables RS256.
    pub jwks_url: Option<String>,
    pub issuer: String,
    pub audience: String,
    pub principal_claim: String,
    pub roles_claim: String,
    pub requester_role: String,
    pub approver_role: String,
    pub auditor_role: String,
    /// Claim compared (without case) with the requestor of a device's Isolate action under
    /// `exclude_isolator`; `preferred_username` is the fallback when it is absent.
    pub isolator_claim: String,
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: HumanDuration,
    /// Never refetch the JWKS for an unknown `kid` more often than this.
    pub jwks_min_refresh: HumanDuration,
    /// Refetch the JWKS when the cached copy is older than this.
    pub jwks_max_age: HumanDuration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            hs256_secret: None,
            jwks_url: None,
            issuer: String::new(),
            audience: String::new(),
            principal_claim: "sub".into(),
            roles_claim: "roles".into(),
            requester_role: "Release.Request".into(),
            approver_role: "Release.Approve".into(),
            auditor_role: "Audit.Read".into(),
            isolator_claim: "upn".into(),
            leeway: HumanDuration::from_secs(60),
            jwks_min_refresh: HumanDuration::from_secs(5),
            jwks_max_age: HumanDuration::from_secs(24 * 3600),
        }
    }
}
