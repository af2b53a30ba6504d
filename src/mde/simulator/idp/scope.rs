//! Requested scopes, checked against what the dev identity provider knows: the OpenID Connect
//! scopes, `offline_access`, and the API scope.

use std::fmt;

use super::config::DevIdpConfig;

/// The OpenID Connect and refresh scopes every sign-in may ask for.
pub(crate) const STANDARD_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// A set of known scope values, in the order first requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope(Vec<String>);

/// Why a `scope` parameter was refused: the OAuth error code and its description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScopeRefused {
    pub error: &'static str,
    pub description: String,
}

impl Scope {
    /// Parses a space-separated `scope`; an absent or empty one, or one with a value this
    /// provider does not serve, is refused.
    pub(crate) fn parse(raw: Option<&str>, config: &DevIdpConfig) -> Result<Self, ScopeRefused> {
        let mut values: Vec<String> = Vec::new();
        for value in raw.unwrap_or("").split_ascii_whitespace() {
            if !STANDARD_SCOPES.contains(&value) && value != config.api_scope {
                let description = format!(
                    "The scope '{value}' is not served here; ask for some of {} and {}.",
                    STANDARD_SCOPES.join(" "),
                    config.api_scope
                );
                return Err(ScopeRefused { error: "invalid_scope", description });
            }
            if !values.iter().any(|v| v == value) {
                values.push(value.to_owned());
            }
        }
        if values.is_empty() {
            let description = "The request must contain the parameter 'scope'.".to_owned();
            return Err(ScopeRefused { error: "invalid_request", description });
        }
        Ok(Self(values))
    }

    /// Whether `value` was granted.
    pub(crate) fn has(&self, value: &str) -> bool {
        self.0.iter().any(|v| v == value)
    }

    /// Whether every value of `self` is in `other`.
    pub(crate) fn is_within(&self, other: &Scope) -> bool {
        self.0.iter().all(|v| other.has(v))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_parse_once_each_and_unknown_or_missing_ones_are_refused() {
        let config = DevIdpConfig::default();
        let scope = Scope::parse(Some("openid  api://dualkey-dev/.default openid"), &config).unwrap();
        assert_eq!(scope.to_string(), "openid api://dualkey-dev/.default");
        assert!(scope.has("openid") && !scope.has("offline_access"));
        assert_eq!(Scope::parse(Some("openid User.Read"), &config).unwrap_err().error, "invalid_scope");
        assert_eq!(Scope::parse(Some(" "), &config).unwrap_err().error, "invalid_request");
        assert_eq!(Scope::parse(None, &config).unwrap_err().error, "invalid_request");
    }

    #[test]
    fn a_narrower_scope_is_within_a_wider_one_and_not_the_reverse() {
        let config = DevIdpConfig::default();
        let wide = Scope::parse(Some("openid profile offline_access"), &config).unwrap();
        let narrow = Scope::parse(Some("openid"), &config).unwrap();
        assert!(narrow.is_within(&wide));
        assert!(!wide.is_within(&narrow));
    }
}
