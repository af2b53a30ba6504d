//! `[oidc]` (who signs people in) and `[console]` (the web console's sessions).

use super::SettingsError;
use crate::duration::HumanDuration;
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;

/// The OpenID Connect provider people sign in with (Entra ID in production). Unset: the
/// console cannot sign anyone in and `dualkey login` has nothing to talk to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcSettings {
    /// Discovery is at `{issuer}/.well-known/openid-configuration`; ID tokens must carry it as `iss`.
    pub issuer: String,
    /// The console's client id: ID tokens must carry it as `aud`.
    pub client_id: String,
    /// Confidential client secret; unset (with no file either) means a public client (PKCE only).
    #[serde(default)]
    pub client_secret: Option<Secret>,
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Scopes the console asks for.
    /// A TOML list, or one space-separated string (as an environment variable gives it).
    #[serde(default = "default_scopes", deserialize_with = "scope_list")]
    pub scopes: Vec<String>,
    /// The scope the terminal client asks for, so that `[auth]` accepts its access token.
    #[serde(default)]
    pub api_scope: Option<String>,
    /// The terminal client's client id; defaults to `client_id`.
    #[serde(default)]
    pub cli_client_id: Option<String>,
    /// How long one request to the provider (discovery, token, keys) may take.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(String::from).to_vec()
}

fn scope_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scopes {
        List(Vec<String>),
        Text(String),
    }
    Ok(match Scopes::deserialize(deserializer)? {
        Scopes::List(l) => l,
        Scopes::Text(t) => t.split_whitespace().map(String::from).collect(),
    })
}

fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}

impl OidcSettings {
    /// The client secret, read from its file now when given as one.
    pub fn client_secret(&self) -> Result<Option<Secret>, SettingsError> {
        match (&self.client_secret, &self.client_secret_file) {
            (Some(s), _) => Ok(Some(s.clone())),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|s| Some(Secret::new(s.trim())))
                .map_err(|e| invalid("oidc.client_secret_file", format!("cannot read {}: {e}", path.display()))),
            (None, None) => Ok(None),
        }
    }

    /// The client id the terminal client uses.
    pub fn cli_client_id(&self) -> &str {
        self.cli_client_id.as_deref().unwrap_or(&self.client_id)
    }

    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        super::load::check_url("oidc.issuer", &self.issuer)?;
        if self.client_id.trim().is_empty() {
            return Err(invalid("oidc.client_id", "must not be empty"));
        }
        if self.client_secret.is_some() && self.client_secret_file.is_some() {
            return Err(invalid("oidc.client_secret", "set client_secret or client_secret_file, not both"));
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return Err(invalid("oidc.scopes", "must include `openid`"));
        }
        if self.timeout.get().is_zero() {
            return Err(invalid("oidc.timeout", "must be greater than zero"));
        }
        // The secret file is read when the daemon starts (`client_secret`), like `[mde]`'s.
        Ok(())
    }
}

/// The web console under `/ui/`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSettings {
    /// The URL people open, e.g. `https://dualkey.example.com` (set it behind a proxy). The
    /// sign-in redirect URI is `{public_url}/ui/callback`. Default: `http://{server.bind}`.
    pub public_url: Option<String>,
    /// A session unused for this long ends.
    pub session_idle: HumanDuration,
    /// A session ends this long after sign-in, however busy.
    pub session_max: HumanDuration,
    /// Approving or rejecting needs a sign-in no older than this; older, the person signs in again.
    pub reauth_for_decision: HumanDuration,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            public_url: None,
            session_idle: HumanDuration::from_secs(30 * 60),
            session_max: HumanDuration::from_secs(8 * 3600),
            reauth_for_decision: HumanDuration::from_secs(15 * 60),
        }
    }
}

impl ConsoleSettings {
    /// `public_url` without a trailing slash, or `http://{bind}`.
    pub fn base_url(&self, bind: &str) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{bind}"),
        }
    }

    pub(super) fn validate(&self) -> Result<(), SettingsError> {
        if let Some(url) = &self.public_url {
            super::load::check_url("console.public_url", url)?;
            let parsed = reqwest::Url::parse(url).map_err(|e| invalid("console.public_url", e.to_string()))?;
            if !parsed.path().trim_end_matches('/').is_empty() || parsed.query().is_some() {
                return Err(invalid("console.public_url", "give the origin only, like https://dualkey.example.com"));
            }
        }
        for (key, d) in [
            ("console.session_idle", &self.session_idle),
            ("console.session_max", &self.session_max),
            ("console.reauth_for_decision", &self.reauth_for_decision),
        ] {
            if d.get().is_zero() {
                return Err(invalid(key, "must be greater than zero"));
            }
        }
        if self.session_idle.get() > self.session_max.get() {
            return Err(invalid("console.session_idle", "must not be longer than console.session_max"));
        }
        Ok(())
    }
}

fn invalid(key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid { key: key.to_string(), message: message.into() }
}

#[cfg(test)]
mod tests {
    use crate::settings::{EMBEDDED_DEFAULT, load_from_str};

    fn with(vars: &[(&str, &str)]) -> Result<crate::settings::Settings, crate::settings::SettingsError> {
        load_from_str(EMBEDDED_DEFAULT, "test", vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn oidc_is_off_by_default_and_the_console_has_the_documented_defaults() {
        let s = with(&[]).unwrap();
        assert!(s.oidc.is_none());
        let c = s.console;
        assert_eq!(
            (c.session_idle.get().as_secs(), c.session_max.get().as_secs(), c.reauth_for_decision.get().as_secs()),
            (1800, 8 * 3600, 900)
        );
        assert_eq!(c.base_url("127.0.0.1:8080"), "http://127.0.0.1:8080");
    }

    #[test]
    fn an_oidc_section_gets_default_scopes_and_the_cli_shares_the_client_id() {
        let s =
            with(&[("DUALKEY_OIDC__ISSUER", "https://idp.example/v2.0"), ("DUALKEY_OIDC__CLIENT_ID", "app")]).unwrap();
        let o = s.oidc.unwrap();
        assert_eq!(o.scopes, ["openid", "profile", "email"]);
        assert_eq!(o.cli_client_id(), "app");
        assert!(o.client_secret().unwrap().is_none());
        let spaced = [
            ("DUALKEY_OIDC__ISSUER", "https://idp.example/v2.0"),
            ("DUALKEY_OIDC__CLIENT_ID", "app"),
            ("DUALKEY_OIDC__SCOPES", "openid  email"),
        ];
        assert_eq!(with(&spaced).unwrap().oidc.unwrap().scopes, ["openid", "email"]);
    }

    #[test]
    fn bad_console_and_oidc_values_name_their_key() {
        let base = [("DUALKEY_OIDC__ISSUER", "https://idp.example/v2.0"), ("DUALKEY_OIDC__CLIENT_ID", "app")];
        for (extra, key) in [
            (("DUALKEY_OIDC__ISSUER", "not a url"), "oidc.issuer"),
            (("DUALKEY_OIDC__CLIENT_ID", " "), "oidc.client_id"),
            (("DUALKEY_OIDC__SCOPES", "profile email"), "oidc.scopes"),
            (("DUALKEY_CONSOLE__PUBLIC_URL", "https://dualkey.example/ui"), "console.public_url"),
            (("DUALKEY_CONSOLE__SESSION_IDLE", "9h"), "console.session_idle"),
            (("DUALKEY_CONSOLE__REAUTH_FOR_DECISION", "0s"), "console.reauth_for_decision"),
        ] {
            let mut vars = base.to_vec();
            vars.push(extra);
            let e = with(&vars).unwrap_err().to_string();
            assert!(e.contains(key), "{key}: {e}");
        }
    }
}
