//! Who a token says its holder is, for `whoami` and the line `login` ends with. The payload is
//! decoded for display only: the server verifies every token it is sent, the client never
//! trusts one for anything.

use super::output::clean;
use crate::clock::Timestamp;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

/// The claims worth showing; absent ones are `None`.
#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct Claims {
    oid: Option<String>,
    sub: Option<String>,
    preferred_username: Option<String>,
    upn: Option<String>,
    name: Option<String>,
    roles: Vec<String>,
    exp: Option<i64>,
}

/// What `whoami` prints (as JSON with `--output json`).
#[derive(Serialize, Debug, PartialEq)]
pub(crate) struct Identity {
    pub server: String,
    /// `oid` when the token has one (Entra ID's stable user id), else `sub`.
    pub principal: Option<String>,
    pub username: Option<String>,
    pub name: Option<String>,
    pub roles: Vec<String>,
    pub expires_at: Option<Timestamp>,
    /// `login` (the stored sign-in) or `DUALKEY_TOKEN`.
    pub source: &'static str,
    /// True when a refresh token lets the next command renew an expired access token.
    pub renewable: bool,
}

impl Identity {
    /// Reads `token`'s payload; `expires_at` is the stored expiry when there is one, else the
    /// token's `exp`.
    pub(crate) fn of_token(
        server: &str,
        token: &str,
        expires_at: Option<Timestamp>,
        source: &'static str,
        renewable: bool,
    ) -> Self {
        let claims = token
            .split('.')
            .nth(1)
            .and_then(|p| URL_SAFE_NO_PAD.decode(p.trim_end_matches('=')).ok())
            .and_then(|json| serde_json::from_slice::<Claims>(&json).ok())
            .unwrap_or_default();
        let exp = claims.exp.map(|s| Timestamp::from_unix_ms(s.saturating_mul(1000)));
        Self {
            server: server.to_string(),
            principal: claims.oid.or(claims.sub),
            username: claims.preferred_username.or(claims.upn),
            name: claims.name,
            roles: claims.roles,
            expires_at: expires_at.or(exp),
            source,
            renewable,
        }
    }

    /// The identity as `label  value` lines.
    pub(crate) fn render(&self, now: Timestamp) -> String {
        let unknown = || "(not in the token)".to_string();
        let expiry = match self.expires_at {
            Some(t) if t > now => format!("{t} (in {})", super::output::age(t.since(now))),
            Some(t) if self.renewable => {
                format!("{t} (expired {} ago; the next command renews it)", super::output::age(now.since(t)))
            }
            Some(t) => format!("{t} (expired {} ago)", super::output::age(now.since(t))),
            None => unknown(),
        };
        let source = match (self.source, self.renewable) {
            ("login", true) => "dualkey login (renewable)",
            ("login", false) => "dualkey login (not renewable: log in again when it expires)",
            _ => "DUALKEY_TOKEN",
        };
        let roles = if self.roles.is_empty() { "(none)".to_string() } else { self.roles.join(", ") };
        let mut out = String::new();
        for (label, value) in [
            ("Server", self.server.clone()),
            ("Principal", self.principal.clone().unwrap_or_else(unknown)),
            ("Username", self.username.clone().unwrap_or_else(unknown)),
            ("Name", self.name.clone().unwrap_or_else(unknown)),
            ("Roles", roles),
            ("Expires", expiry),
            ("Token from", source.to_string()),
        ] {
            let _ = writeln!(out, "{label:<10}  {}", clean(&value));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(payload: serde_json::Value) -> String {
        format!("eyJhbGciOiJSUzI1NiJ9.{}.c2lnbmF0dXJl", URL_SAFE_NO_PAD.encode(payload.to_string()))
    }

    #[test]
    fn the_principal_is_the_oid_when_there_is_one_and_the_expiry_is_shown_plainly() {
        let t = token(serde_json::json!({"oid": "bob", "sub": "pairwise-1", "preferred_username": "bob@dualkey.dev",
            "name": "Bob", "roles": ["Release.Approve"], "exp": 1_700_003_600}));
        let id = Identity::of_token("http://127.0.0.1:1", &t, None, "login", true);
        assert_eq!(id.principal.as_deref(), Some("bob"));
        assert_eq!(id.expires_at, Some(Timestamp::from_unix_ms(1_700_003_600_000)));
        let text = id.render(Timestamp::from_unix_ms(1_700_000_000_000));
        assert!(text.contains("Principal   bob\n"), "{text}");
        assert!(text.contains("Roles       Release.Approve\n"), "{text}");
        assert!(text.contains("Expires     2023-11-14T23:13:20.000Z (in 1h)\n"), "{text}");
        let later = id.render(Timestamp::from_unix_ms(1_700_004_000_000));
        assert!(later.contains("expired 6m ago; the next command renews it"), "{later}");
    }

    #[test]
    fn a_token_that_is_not_a_jwt_shows_as_unknown_without_failing() {
        let id = Identity::of_token("https://a", "opaque-token", None, "DUALKEY_TOKEN", false);
        assert_eq!(id.principal, None);
        let text = id.render(Timestamp::EPOCH);
        assert!(text.contains("Principal   (not in the token)"), "{text}");
        assert!(!text.contains("opaque-token"), "{text}");
        let sub =
            Identity::of_token("https://a", &token(serde_json::json!({"sub": "alice"})), None, "DUALKEY_TOKEN", false);
        assert_eq!(sub.principal.as_deref(), Some("alice"));
    }
}
