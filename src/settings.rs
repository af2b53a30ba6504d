//! The settings tree: `config/default.toml` (or `--config PATH`), then `DUALKEY_<SECTION>__<KEY>`
//! environment overrides (`__` separates levels: `DUALKEY_POLICY__BREAK_GLASS__ENABLED`). Every
//! key is documented in `config/production.example.toml`.

mod audit;
mod cloud;
mod compat;
mod console;
mod load;
mod log;
mod mde;
mod notify;

pub use audit::{AuditSettings, ForwardKind, ForwardSettings, split_address};
pub use cloud::{CloudEndpoints, CloudPreset};
pub use compat::CompatSettings;
pub use console::{ConsoleSettings, OidcSettings};
pub use load::{EMBEDDED_DEFAULT, SettingsError, WELL_KNOWN_DEV_SECRET, load, load_from_str};
pub use log::{LogFormat, LogLevel, LogSettings};
pub use mde::{AssertionAlg, MdeEndpoints, MdeSettings};
pub use notify::{ChannelKind, ChannelSettings, EVENTS, NotifySettings, RouteSettings, check_channel_url};
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
    /// Sign-in for people (console and terminal client); unset: API tokens only.
    #[serde(default)]
    pub oidc: Option<OidcSettings>,
    #[serde(default)]
    pub console: ConsoleSettings,
    /// Notifications: channels, routes, retries.
    #[serde(default)]
    pub notify: NotifySettings,
    /// The signed Merkle log and its off-host copies.
    #[serde(default)]
    pub audit: AuditSettings,
    /// Other products' APIs dualkey answers (`[compat] mde_routes`).
    #[serde(default)]
    pub compat: CompatSettings,
    /// `[log]`: line format and dualkey's own level.
    #[serde(default)]
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address and port to listen on, e.g. `127.0.0.1:8080`; port 0 picks a free port.
    pub bind: String,
    /// How long a client has to send a whole request head, counted from the moment its
    /// connection opens or its previous response was sent; then the connection is closed.
    #[serde(deserialize_with = "positive_duration")]
    pub header_timeout: HumanDuration,
    /// How long a client has to send a whole request body once its head has arrived; then it
    /// is answered 408 `body_timeout` and the connection is closed.
    #[serde(deserialize_with = "positive_duration")]
    pub body_timeout: HumanDuration,
    /// A connection on which no byte moves either way for this long, while no request is being
    /// handled, is closed (e.g. a client that stopped reading its response).
    #[serde(deserialize_with = "positive_duration")]
    pub idle_timeout: HumanDuration,
    /// Connections served at once; one more is answered 503 `too_many_connections` and closed.
    #[serde(deserialize_with = "positive_u32")]
    pub max_connections: u32,
    /// Where `GET /metrics` is served instead of the main listener, e.g. `127.0.0.1:9090`
    /// (only `/metrics` there); `None` serves it on the main listener, without a token.
    pub metrics_bind: Option<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            header_timeout: HumanDuration::from_secs(10),
            body_timeout: HumanDuration::from_secs(30),
            idle_timeout: HumanDuration::from_secs(60),
            max_connections: 1024,
            metrics_bind: None,
        }
    }
}

fn positive_duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<HumanDuration, D::Error> {
    let d = HumanDuration::deserialize(deserializer)?;
    if d.get().is_zero() {
        return Err(serde::de::Error::custom("must be greater than zero"));
    }
    Ok(d)
}

fn positive_u32<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u32, D::Error> {
    let n = lenient_u32(deserializer)?;
    if n == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(n)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://path?mode=rwc` (one host) or `postgres://user@host:5432/db?sslmode=verify-full`
    /// (any number of replicas). May hold a password; it is never logged.
    pub url: String,
    /// PostgreSQL only: a file holding the password (first line), instead of the URL.
    pub password_file: Option<std::path::PathBuf>,
    /// How long a writer waits for the database's write lock, or for a connection, before
    /// giving up (the request then answers 503).
    pub busy_timeout: HumanDuration,
    /// SQLite: read connections in the pool (writes use one dedicated connection).
    #[serde(deserialize_with = "lenient_u32")]
    pub max_read_connections: u32,
    /// PostgreSQL: connections in this replica's pool.
    #[serde(deserialize_with = "lenient_u32")]
    pub max_connections: u32,
}

impl DatabaseSettings {
    /// `url` fit for a log line or an error message: a password in it is replaced by `REDACTED`.
    pub fn redacted_url(&self) -> String {
        redacted(&self.url)
    }

    /// True for a `postgres://` (or `postgresql://`) URL; anything else names SQLite.
    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")
    }
}

/// `url` with any password replaced by `REDACTED`.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://dualkey.db?mode=rwc".into(),
            password_file: None,
            busy_timeout: HumanDuration::from_secs(5),
            max_read_connections: 8,
            max_connections: 10,
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
    /// How long one JWKS fetch may take. Only a token whose key is not cached waits for it.
    pub jwks_timeout: HumanDuration,
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
            jwks_timeout: HumanDuration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod server_tests {
    use super::*;

    fn with(var: &str, value: &str) -> Result<Settings, SettingsError> {
        load_from_str(EMBEDDED_DEFAULT, "test", [(var.to_string(), value.to_string())])
    }

    #[test]
    fn connection_limits_default_to_the_documented_values() {
        let s = load_from_str(EMBEDDED_DEFAULT, "test", []).unwrap().server;
        assert_eq!(
            (s.header_timeout.get().as_secs(), s.body_timeout.get().as_secs(), s.idle_timeout.get().as_secs()),
            (10, 30, 60)
        );
        assert_eq!(s.max_connections, 1024);
        assert_eq!(with("DUALKEY_SERVER__MAX_CONNECTIONS", "900").unwrap().server.max_connections, 900);
    }

    #[test]
    fn a_zero_connection_limit_stops_start_up_and_names_the_key() {
        for (var, value, key) in [
            ("DUALKEY_SERVER__HEADER_TIMEOUT", "0s", "server.header_timeout"),
            ("DUALKEY_SERVER__BODY_TIMEOUT", "0ms", "server.body_timeout"),
            ("DUALKEY_SERVER__IDLE_TIMEOUT", "0s", "server.idle_timeout"),
            ("DUALKEY_SERVER__MAX_CONNECTIONS", "0", "server.max_connections"),
        ] {
            let e = with(var, value).unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
        }
    }
}
