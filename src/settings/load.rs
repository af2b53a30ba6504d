//! Loading and validating [`Settings`]: file, then environment, then checks that name the key.

use super::Settings;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// `config/default.toml`, compiled in so the binary starts anywhere.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/default.toml");

/// The HS256 secret shipped in `config/default.toml`. Known to everyone, so it is refused
/// unless the daemon listens on loopback only.
pub const WELL_KNOWN_DEV_SECRET: &str = "dualkey-dev-secret-do-not-use-in-production-0000";

const ENV_PREFIX: &str = "DUALKEY_";

/// The terminal client's variables (its server and bearer token): not settings, so a shell that
/// has them set can still run `dualkey serve`. Every other `DUALKEY_*` must name a setting.
const CLIENT_VARIABLES: [&str; 2] = ["DUALKEY_SERVER", "DUALKEY_TOKEN"];

/// Why the settings could not be loaded. The message always names the file, variable or key.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    // The OS error is part of the message and deliberately not a `source`: callers print the
    // cause chain (`{:#}`), which would repeat it.
    #[error("cannot read config file {path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    #[error("config file {origin} is not valid TOML: {message}")]
    Toml { origin: String, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("invalid policy: {0}")]
    Policy(String),
}

fn invalid(key: &str, message: impl Into<String>) -> SettingsError {
    SettingsError::Invalid { key: key.to_string(), message: message.into() }
}

/// Loads settings from `path` (or `config/default.toml` in the working directory, or the
/// embedded copy of it), applies `DUALKEY_<SECTION>__<KEY>` overrides from `env` (nested keys
/// too: `DUALKEY_POLICY__BREAK_GLASS__ENABLED`), and validates. An error about a value set by a
/// variable names the variable.
pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Settings, SettingsError> {
    let (text, origin) = match path {
        Some(p) => (
            std::fs::read_to_string(p).map_err(|error| SettingsError::Read { path: p.to_path_buf(), error })?,
            p.display().to_string(),
        ),
        None => match std::fs::read_to_string("config/default.toml") {
            Ok(text) => (text, "config/default.toml".to_string()),
            Err(_) => (EMBEDDED_DEFAULT.to_string(), "<embedded config/default.toml>".to_string()),
        },
    };
    load_from_str(&text, &origin, env)
}

/// Like [`load`], from TOML text already in memory.
pub fn load_from_str(
    text: &str,
    origin: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, SettingsError> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| SettingsError::Toml {
        origin: origin.into(),
        message: e.message().to_string(),
    })?;
    let origins = apply_env(&mut table, env)?;
    let deserializer = toml::Value::Table(table);
    let mut settings: Settings = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        let message = e.into_inner().to_string();
        // The key is named already; drop toml's own "in `section`" line.
        let message = message.split_once("\nin `").map_or(message.as_str(), |(m, _)| m).to_string();
        name_the_variable(invalid(&key, message), &origins)
    })?;
    normalise(&mut settings);
    validate(&settings).map_err(|e| name_the_variable(e, &origins)).map_err(|e| match e {
        // Point at the rule's line in the file, so the fix is one look away.
        SettingsError::Policy(message) => {
            let line = settings
                .policy
                .validate(&settings.auth.approver_role)
                .err()
                .and_then(|pe| pe.rule_index())
                .and_then(|i| crate::rules::rule_line(text, i));
            match line {
                Some(n) => SettingsError::Policy(format!("{message} ({origin}, line {n})")),
                None => SettingsError::Policy(message),
            }
        }
        other => other,
    })?;
    Ok(settings)
}

/// Where one environment override went: the variable's name and the dotted key it set.
struct EnvOrigin {
    var: String,
    key: String,
}

/// Puts each `DUALKEY_A__B__C` variable at key `a.b.c` of `table` (`__` separates levels, at any
/// depth), and returns where each went so later errors can name the variable; the client's own
/// variables ([`CLIENT_VARIABLES`]) are skipped. A name that does not fit the form is refused
/// here; one naming no setting is refused by deserialisation.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<EnvOrigin>, SettingsError> {
    let mut origins = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else { continue };
        if CLIENT_VARIABLES.contains(&name.as_str()) {
            continue;
        }
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        if path.len() < 2 || path.iter().any(|p| p.is_empty()) {
            return Err(SettingsError::Env {
                name,
                message:
                    "expected the form DUALKEY_<SECTION>__<KEY> (nested keys: DUALKEY_POLICY__BREAK_GLASS__ENABLED)"
                        .into(),
            });
        }
        let (leaf, sections) = path.split_last().expect("at least two parts");
        let mut at = &mut *table;
        for (depth, section) in sections.iter().enumerate() {
            let entry = at.entry(section.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(inner) = entry else {
                return Err(SettingsError::Env {
                    name,
                    message: format!("`{}` is not a section", path[..=depth].join(".")),
                });
            };
            at = inner;
        }
        at.insert(leaf.clone(), toml::Value::String(value));
        origins.push(EnvOrigin { var: name, key: path.join(".") });
    }
    Ok(origins)
}

/// Names the environment variable behind an error about a key it set, so the reader knows
/// what to fix: `DUALKEY_POLICY__MIN_COMMENT_LEN: policy.min_comment_len: ...`.
fn name_the_variable(e: SettingsError, origins: &[EnvOrigin]) -> SettingsError {
    // The key itself, or (for an unknown section) a section the variable created.
    let var_for = |key: &str| {
        let section = format!("{key}.");
        origins.iter().rev().find(|o| o.key == key || o.key.starts_with(&section)).map(|o| o.var.clone())
    };
    match e {
        SettingsError::Invalid { key, message } => match var_for(&key) {
            Some(var) => SettingsError::Env { name: var, message: format!("{key}: {message}") },
            None => SettingsError::Invalid { key, message },
        },
        SettingsError::Policy(message) => {
            match origins.iter().rev().find(|o| message.starts_with(&format!("{} ", o.key))) {
                Some(o) => SettingsError::Env { name: o.var.clone(), message },
                None => SettingsError::Policy(message),
            }
        }
        other => other,
    }
}

/// Empty strings (e.g. an environment variable set to "") mean "unset".
fn normalise(s: &mut Settings) {
    if s.auth.hs256_secret.as_ref().is_some_and(|v| v.is_empty()) {
        s.auth.hs256_secret = None;
    }
    if s.auth.jwks_url.as_deref().is_some_and(|v| v.trim().is_empty()) {
        s.auth.jwks_url = None;
    }
    let m = &mut s.mde;
    for opt in [
        &mut m.api_base,
        &mut m.token_url,
        &mut m.scope,
        &mut m.client_id,
        &mut m.cloud,
        &mut m.tenant_id,
        &mut m.certificate,
    ] {
        if opt.as_deref().is_some_and(|v| v.trim().is_empty()) {
            *opt = None;
        }
    }
    for secret in [&mut m.client_secret, &mut m.private_key] {
        if secret.as_ref().is_some_and(|v| v.is_empty()) {
            *secret = None;
        }
    }
    for path in [&mut m.client_secret_file, &mut m.certificate_file, &mut m.private_key_file] {
        if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            *path = None;
        }
    }
}

pub(super) fn check_url(key: &str, v: &str) -> Result<(), SettingsError> {
    let url = reqwest::Url::parse(v).map_err(|e| invalid(key, format!("`{v}` is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(key, format!("`{v}` must be an http or https URL")));
    }
    Ok(())
}

fn non_empty(key: &str, value: &str) -> Result<(), SettingsError> {
    if value.trim().is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    Ok(())
}

fn validate(s: &Settings) -> Result<(), SettingsError> {
    let bind: SocketAddr =
        s.server.bind.parse().map_err(|_| {
            invalid("server.bind", format!("`{}` is not an address like 127.0.0.1:8080", s.server.bind))
        })?;

    let postgres = s.database.is_postgres();
    if !s.database.url.starts_with("sqlite:") && !postgres {
        return Err(invalid(
            "database.url",
            "give sqlite://path?mode=rwc (one host) or postgres://user@host:5432/database (replicas)",
        ));
    }
    if postgres && reqwest::Url::parse(&s.database.url).is_err() {
        return Err(invalid(
            "database.url",
            "is not a postgres:// URL like postgres://dualkey@db.example:5432/dualkey",
        ));
    }
    if s.database.password_file.is_some() && !postgres {
        return Err(invalid("database.password_file", "is for postgres:// URLs only"));
    }
    if s.database.max_connections == 0 {
        return Err(invalid("database.max_connections", "must be at least 1"));
    }
    if s.database.busy_timeout.get().is_zero() {
        return Err(invalid("database.busy_timeout", "must be greater than zero"));
    }
    if s.database.max_read_connections == 0 {
        return Err(invalid("database.max_read_connections", "must be at least 1"));
    }

    let a = &s.auth;
    if a.hs256_secret.is_none() && a.jwks_url.is_none() {
        return Err(invalid(
            "auth.hs256_secret",
            "set auth.hs256_secret or auth.jwks_url so callers can be identified",
        ));
    }
    if let Some(secret) = &a.hs256_secret {
        if secret.expose().len() < 32 {
            return Err(invalid("auth.hs256_secret", "must be at least 32 bytes long"));
        }
        if secret.expose() == WELL_KNOWN_DEV_SECRET && !bind.ip().is_loopback() {
            return Err(invalid(
                "auth.hs256_secret",
                "the development secret from config/default.toml is public; set your own before listening beyond loopback",
            ));
        }
    }
    if let Some(url) = &a.jwks_url {
        check_url("auth.jwks_url", url)?;
    }
    if a.jwks_timeout.get().is_zero() {
        return Err(invalid("auth.jwks_timeout", "must be greater than zero"));
    }
    for (key, value) in [
        ("auth.issuer", &a.issuer),
        ("auth.audience", &a.audience),
        ("auth.principal_claim", &a.principal_claim),
        ("auth.roles_claim", &a.roles_claim),
        ("auth.requester_role", &a.requester_role),
        ("auth.approver_role", &a.approver_role),
        ("auth.auditor_role", &a.auditor_role),
        ("auth.isolator_claim", &a.isolator_claim),
    ] {
        non_empty(key, value)?;
    }

    let p = &s.policy;
    // The whole policy must validate now, so a bad one never half-loads.
    p.validate(&s.auth.approver_role).map_err(|e| SettingsError::Policy(e.to_string()))?;

    if let Some(o) = &s.oidc {
        o.validate()?;
    }
    s.console.validate()?;
    let rules: Vec<String> = s.policy.rules.iter().map(|r| r.name.clone()).chain(["default".to_string()]).collect();
    s.notify.validate(&rules)?;
    s.audit.validate()?;
    s.mde.validate()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_embedded_defaults_load() {
        let s = load_from_str(EMBEDDED_DEFAULT, "embedded", env(&[])).unwrap();
        assert_eq!(s.policy.approvals_required, 1);
        assert_eq!(s.auth.principal_claim, "sub");
    }

    #[test]
    fn environment_overrides_win_and_accept_numbers_as_strings() {
        let s = load_from_str(
            EMBEDDED_DEFAULT,
            "embedded",
            env(&[("DUALKEY_DATABASE__URL", "sqlite://x.db?mode=rwc"), ("DUALKEY_POLICY__APPROVALS_REQUIRED", "3")]),
        )
        .unwrap();
        assert_eq!(s.database.url, "sqlite://x.db?mode=rwc");
        assert_eq!(s.policy.approvals_required, 3);
    }

    #[test]
    fn an_invalid_value_names_its_key() {
        let err = load_from_str(EMBEDDED_DEFAULT, "embedded", env(&[("DUALKEY_POLICY__REQUEST_TTL", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("policy.request_ttl"), "{err}");
        let err = load_from_str(EMBEDDED_DEFAULT, "embedded", env(&[("DUALKEY_MDE__RATE_PER_HOUR", "5")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("mde.rate_per_hour"), "{err}");
    }

    #[test]
    fn environment_overrides_reach_nested_keys_at_any_depth() {
        let s = load_from_str(
            EMBEDDED_DEFAULT,
            "embedded",
            env(&[
                ("DUALKEY_POLICY__BREAK_GLASS__ENABLED", "true"),
                ("DUALKEY_POLICY__BREAK_GLASS__RATIFY_WITHIN", "30m"),
            ]),
        )
        .unwrap();
        assert!(s.policy.break_glass.enabled);
        assert_eq!(s.policy.break_glass.ratify_within.get(), std::time::Duration::from_secs(1800));
    }

    #[test]
    fn an_environment_variable_naming_no_setting_is_refused_and_named() {
        for (var, key) in [
            ("DUALKEY_POLICY__BREAK_GLASS__ENABLD", "policy.break_glass.enabld"),
            ("DUALKEY_AUTH__HS256SECRET", "auth.hs256secret"),
            ("DUALKEY_SERVR__BIND", "servr"),
        ] {
            let err = load_from_str(EMBEDDED_DEFAULT, "embedded", env(&[(var, "x")])).unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
            assert!(err.contains(key), "{var}: {err}");
        }
        for var in ["DUALKEY_POLICY", "DUALKEY_POLICY__", "DUALKEY_POLICY____ENABLED", "DUALKEY_SERVER__BIND__PORT"] {
            let err = load_from_str(EMBEDDED_DEFAULT, "embedded", env(&[(var, "1")])).unwrap_err().to_string();
            assert!(err.contains(var), "{var}: {err}");
        }
    }

    #[test]
    fn the_terminal_clients_own_variables_are_not_settings_and_are_let_through() {
        let s = load_from_str(
            EMBEDDED_DEFAULT,
            "embedded",
            env(&[("DUALKEY_SERVER", "https://dualkey.example.com"), ("DUALKEY_TOKEN", "eyJ.x.y")]),
        )
        .unwrap();
        assert_eq!(s.server.bind, load_from_str(EMBEDDED_DEFAULT, "embedded", env(&[])).unwrap().server.bind);
        for near_miss in ["DUALKEY_SERVERS", "DUALKEY_TOKEN_FILE", "DUALKEY_server"] {
            let err = load_from_str(EMBEDDED_DEFAULT, "embedded", env(&[(near_miss, "x")])).unwrap_err().to_string();
            assert!(err.contains(near_miss), "{near_miss} is still refused: {err}");
        }
    }

    #[test]
    fn an_invalid_value_from_the_environment_names_the_variable_and_the_key() {
        let err = load_from_str(EMBEDDED_DEFAULT, "embedded", env(&[("DUALKEY_POLICY__MIN_COMMENT_LEN", "abc")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("DUALKEY_POLICY__MIN_COMMENT_LEN: policy.min_comment_len: `abc` is not a whole number"),
            "{err}"
        );
        let err = load_from_str(EMBEDDED_DEFAULT, "embedded", env(&[("DUALKEY_POLICY__MIN_COMMENT_LEN", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("DUALKEY_POLICY__MIN_COMMENT_LEN") && err.contains("policy.min_comment_len"), "{err}");
        let err = load_from_str(EMBEDDED_DEFAULT, "embedded", env(&[("DUALKEY_POLICY__BREAK_GLASS__ROLE", "")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("DUALKEY_POLICY__BREAK_GLASS__ROLE"), "{err}");
    }

    #[test]
    fn the_documented_production_example_loads() {
        let text = include_str!("../../config/production.example.toml");
        let s = load_from_str(text, "production.example.toml", env(&[])).unwrap();
        assert_eq!(s.auth.principal_claim, "oid");
        assert!(s.auth.hs256_secret.is_none());
        assert_eq!(s.audit.forward.len(), 2, "a syslog and an HEC forwarder");
    }

    #[test]
    fn an_unknown_key_is_refused() {
        let err = load_from_str("[server]\nbnid = \"x\"\n", "t", env(&[])).unwrap_err().to_string();
        assert!(err.contains("bnid"), "{err}");
    }

    #[test]
    fn the_public_dev_secret_is_refused_beyond_loopback() {
        let err = load_from_str(EMBEDDED_DEFAULT, "embedded", env(&[("DUALKEY_SERVER__BIND", "0.0.0.0:8080")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.hs256_secret"), "{err}");
    }
}
