//! Console sessions: a random id in an `HttpOnly`, `SameSite=Lax` cookie (and `Secure`, named
//! `__Host-…`, unless served on loopback http), the session itself in the database under the
//! id's hash, ended by sign-out, `console.session_idle` or `console.session_max`.

use crate::auth::{Principal, SignIn};
use crate::clock::Timestamp;
use crate::db::sessions::{self, SessionRow};
use crate::error::ApiError;
use crate::state::AppState;
use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use base64::Engine;
use sha2::Digest;

/// A session's last-seen time is rewritten at most this often (a page view is not a write).
const TOUCH_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// A signed-in person.
pub(super) struct Session {
    pub principal: Principal,
    pub name: Option<String>,
    pub csrf: String,
    pub id_hash: String,
    pub signed_in_at: Timestamp,
    /// When the provider last authenticated the person: decisions need it recent.
    pub auth_time: Timestamp,
}

/// Whether reading the session counts as the person being active (a status poll does not).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Use {
    Active,
    Passive,
}

/// The cookie names and attributes for this console.
pub(super) struct Cookies {
    secure: bool,
}

impl Cookies {
    pub(super) fn for_base(base_url: &str) -> Self {
        Self { secure: !is_loopback_http(base_url) }
    }

    pub(super) fn session_name(&self) -> &'static str {
        if self.secure { "__Host-dualkey_session" } else { "dualkey_session" }
    }

    pub(super) fn login_name(&self) -> &'static str {
        if self.secure { "__Host-dualkey_login" } else { "dualkey_login" }
    }

    /// A `Set-Cookie` value; `max_age` zero deletes the cookie.
    pub(super) fn set(&self, name: &str, value: &str, max_age: std::time::Duration) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}; Max-Age={}", max_age.as_secs())
    }

    pub(super) fn clear(&self, name: &str) -> String {
        self.set(name, "", std::time::Duration::ZERO)
    }
}

/// True for `http://` on a loopback host, where browsers would drop a `Secure` cookie.
fn is_loopback_http(base_url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(base_url) else { return false };
    if url.scheme() != "http" {
        return false;
    }
    url.host_str().is_some_and(crate::net::is_loopback_host)
}

/// The value of cookie `name` in the request, if any.
pub(super) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// 32 random bytes, base64url: session ids, CSRF tokens, `state`, `nonce`, PKCE verifiers.
pub(super) fn random_token() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// SHA-256 in hex: what the database keeps instead of a browser's secret.
pub(super) fn hash(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// Equal without leaking where they differ through timing.
pub(super) fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The live session the request's cookie names, if any. A session past its idle or maximum
/// lifetime is ended here and is gone for good.
pub(super) async fn current(state: &AppState, headers: &HeaderMap, how: Use) -> Result<Option<Session>, ApiError> {
    let cookies = Cookies::for_base(&super::base_url(state));
    let Some(id) = cookie(headers, cookies.session_name()) else { return Ok(None) };
    let id_hash = hash(id);
    let row = {
        let mut conn = state.db.reader().await?;
        sessions::live(&mut conn, &id_hash).await?
    };
    let Some(row) = row else { return Ok(None) };
    let now = state.clock.now();
    let idle = state.settings.console.session_idle.get();
    if now >= row.expires_at || now >= row.last_seen_at.plus(idle) {
        let mut tx = state.db.begin().await?;
        sessions::end(&mut tx, &id_hash, now).await?;
        tx.commit().await?;
        return Ok(None);
    }
    if how == Use::Active && now >= row.last_seen_at.plus(TOUCH_EVERY) {
        let mut tx = state.db.begin().await?;
        sessions::touch(&mut tx, &id_hash, now).await?;
        tx.commit().await?;
    }
    Ok(Some(session_of(row)?))
}

fn session_of(row: SessionRow) -> Result<Session, ApiError> {
    let roles = row.roles()?;
    let amr = row.amr()?;
    let mut principal = Principal::new(row.principal.clone(), roles, row.upn.clone());
    principal.sign_in = Some(SignIn { signed_in_at: row.signed_in_at, auth_time: row.auth_time, amr });
    Ok(Session {
        principal,
        name: row.name,
        csrf: row.csrf_token,
        id_hash: row.id_hash,
        signed_in_at: row.signed_in_at,
        auth_time: row.auth_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_secure_with_the_host_prefix_except_on_loopback_http() {
        for (base, secure) in [
            ("http://127.0.0.1:8080", false),
            ("http://localhost:8080", false),
            ("http://[::1]:8080", false),
            ("https://127.0.0.1:8080", true),
            ("http://dualkey.example.com", true),
            ("https://dualkey.example.com", true),
        ] {
            let c = Cookies::for_base(base);
            assert_eq!(c.secure, secure, "{base}");
            let set = c.set(c.session_name(), "v", std::time::Duration::from_secs(60));
            assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Path=/"), "{set}");
            assert_eq!(set.contains("; Secure"), secure, "{set}");
            assert_eq!(set.starts_with("__Host-"), secure, "{set}");
        }
    }

    #[test]
    fn a_cookie_is_found_among_others_and_secrets_compare_whole() {
        let mut h = HeaderMap::new();
        h.insert(COOKIE, "a=1; dualkey_session=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h, "dualkey_session"), Some("abc"));
        assert_eq!(cookie(&h, "dualkey"), None);
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd") && !same_secret("abc", "ab"));
        assert_eq!(hash("x").len(), 64);
        assert_ne!(random_token(), random_token());
    }
}
