//! One command's conversation with a dualkey server: which server, which bearer token, and the
//! one silent refresh a stored sign-in may get.
//!
//! A stored sign-in is refreshed before the call when its stored expiry has passed, or once
//! after the server answers 401 `invalid_token` (then the call is sent once more). A token from
//! `DUALKEY_TOKEN` is sent as given: when the server refuses it, the refusal is the answer,
//! never a quiet fall back to someone's stored sign-in.

use super::ClientError;
use super::credentials::{Credentials, Login, Store, Token};
use super::oidc::{check_transport, http_client, refresh, unreachable_error};
use crate::clock::Clock;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// How long before its stored expiry a token is renewed, so it does not lapse in flight.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

/// Where a command's bearer token comes from.
pub(crate) enum Bearer {
    /// `DUALKEY_TOKEN`: sent as given, never refreshed.
    Env(Token),
    /// The stored sign-in; `refreshed` once this command has renewed it.
    Stored { login: Login, refreshed: bool },
}

/// A server and a token to call it with.
pub(crate) struct Session<'a> {
    http: reqwest::Client,
    server: String,
    bearer: Bearer,
    /// Where a renewed sign-in is saved; `None` with `DUALKEY_TOKEN`, which needs no file.
    store: Option<&'a Store>,
    clock: &'a dyn Clock,
}

/// A server URL as the credentials file keys it: checked for transport, no trailing slash.
pub(crate) fn normalise_server(url: &str) -> Result<String, ClientError> {
    let parsed = check_transport("the server", url.trim())?;
    if parsed.query().is_some() || parsed.fragment().is_some() || !parsed.username().is_empty() {
        return Err(ClientError::Usage(format!(
            "the server `{url}` must be a plain URL like https://dualkey.example.com"
        )));
    }
    Ok(parsed.as_str().trim_end_matches('/').to_string())
}

/// The server a command talks to: the one named (`--server` / `DUALKEY_SERVER`), else the one
/// signed in to last.
pub(crate) fn pick_server(
    named: Option<&str>,
    creds: impl FnOnce() -> Result<Credentials, ClientError>,
) -> Result<String, ClientError> {
    match named {
        Some(url) => normalise_server(url),
        None => creds()?.latest_server().map(str::to_string).ok_or_else(|| {
            ClientError::Usage(
                "no server: pass --server URL or set DUALKEY_SERVER (or run `dualkey login --server URL`)".into(),
            )
        }),
    }
}

impl<'a> Session<'a> {
    /// A session for `server`: `DUALKEY_TOKEN` when `env_token` is set (the store is then never
    /// touched), else the stored login.
    pub(crate) fn open(
        server: String,
        env_token: Option<Token>,
        store: Result<&'a Store, ClientError>,
        clock: &'a dyn Clock,
    ) -> Result<Self, ClientError> {
        let (bearer, store) = match env_token {
            Some(token) => (Bearer::Env(token), None),
            None => {
                let store = store?;
                let Some(login) = store.load()?.get(&server).cloned() else {
                    return Err(ClientError::other(format!(
                        "not signed in to {server}: run `dualkey login --server {server}` (or set DUALKEY_TOKEN)"
                    )));
                };
                (Bearer::Stored { login, refreshed: false }, Some(store))
            }
        };
        Ok(Self { http: http_client()?, server, bearer, store, clock })
    }

    /// Calls `method` on `/api/v1/{segments...}` (each segment escaped) with `query` and a JSON
    /// `body`; the answer's JSON, or the API's error.
    pub(crate) async fn call(
        &mut self,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let mut url = reqwest::Url::parse(&format!("{}/api/v1", self.server))
            .map_err(|e| ClientError::other(format!("bad server URL: {e}")))?;
        url.path_segments_mut().map_err(|_| ClientError::other("bad server URL"))?.extend(segments);
        if let Bearer::Stored { login, refreshed: false } = &self.bearer
            && login.expires_at <= self.clock.now().plus(EXPIRY_MARGIN)
        {
            self.renew().await?;
        }
        let answer = self.send(&method, &url, query, body).await?;
        let failure = match answer.status() {
            s if s.is_success() => return read_json(answer).await,
            _ => api_failure(answer).await,
        };
        match (&failure, &self.bearer) {
            (ClientError::Api { status: 401, code, .. }, Bearer::Stored { refreshed: false, .. })
                if code == "invalid_token" =>
            {
                self.renew().await?;
                let again = self.send(&method, &url, query, body).await?;
                if again.status().is_success() { read_json(again).await } else { Err(api_failure(again).await) }
            }
            _ => Err(failure),
        }
    }

    async fn send(
        &self,
        method: &Method,
        url: &reqwest::Url,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<reqwest::Response, ClientError> {
        let token = match &self.bearer {
            Bearer::Env(t) => t,
            Bearer::Stored { login, .. } => &login.access_token,
        };
        let mut req = self.http.request(method.clone(), url.clone()).bearer_auth(token.expose()).query(query);
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await.map_err(|e| unreachable_error(&self.server, e))
    }

    /// Renews the stored sign-in with its refresh token and saves the new tokens (the provider
    /// may have rotated the refresh token: the old one no longer works). Under the store's lock:
    /// a sign-in another command renewed meanwhile is taken as it is, not renewed again with a
    /// refresh token that is already spent.
    async fn renew(&mut self) -> Result<(), ClientError> {
        let (Bearer::Stored { login, .. }, Some(store)) = (&self.bearer, self.store) else { return Ok(()) };
        let locked = store.lock()?;
        let mut creds = locked.load()?;
        let now = self.clock.now();
        let fresh = match creds.get(&self.server) {
            None => return Err(ClientError::other(format!("signed out of {} meanwhile", self.server))),
            Some(current)
                if current.access_token != login.access_token && current.expires_at > now.plus(EXPIRY_MARGIN) =>
            {
                current.clone()
            }
            Some(current) => {
                let fresh = refresh(&self.http, current, now).await?;
                creds.insert(&self.server, fresh.clone());
                locked.save(&creds)?;
                fresh
            }
        };
        self.bearer = Bearer::Stored { login: fresh, refreshed: true };
        Ok(())
    }
}

async fn read_json(r: reqwest::Response) -> Result<Value, ClientError> {
    let url = r.url().clone();
    r.json().await.map_err(|e| ClientError::other(format!("{url} answered with something that is not JSON: {e}")))
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorObject,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: String,
    message: String,
}

/// The API's error, as `{"error": {"code", "message"}}` says; a body of another shape (a proxy's
/// page) becomes `http_<status>`.
pub(crate) async fn api_failure(r: reqwest::Response) -> ClientError {
    let status = r.status();
    let body = r.bytes().await.unwrap_or_default();
    match serde_json::from_slice::<ErrorBody>(&body) {
        Ok(ErrorBody { error }) => {
            ClientError::Api { status: status.as_u16(), code: error.code, message: error.message }
        }
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: format!("http_{}", status.as_u16()),
            message: status.canonical_reason().unwrap_or("unexpected answer").to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_are_keyed_without_a_trailing_slash_and_tokens_never_go_out_in_the_clear() {
        assert_eq!(normalise_server("https://dualkey.example.com/").unwrap(), "https://dualkey.example.com");
        assert_eq!(normalise_server("http://127.0.0.1:8080").unwrap(), "http://127.0.0.1:8080");
        assert_eq!(normalise_server("http://localhost:8080/dk/").unwrap(), "http://localhost:8080/dk");
        assert_eq!(normalise_server("http://[::1]:8080").unwrap(), "http://[::1]:8080");
        for bad in ["http://dualkey.example.com", "ftp://x", "dualkey.example.com", "https://h/?a=1", "https://u:p@h"] {
            assert!(matches!(normalise_server(bad), Err(ClientError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn with_no_server_named_the_latest_login_is_used_or_the_person_is_told_what_to_pass() {
        let err = pick_server(None, || Ok(Credentials::default())).unwrap_err();
        assert!(matches!(&err, ClientError::Usage(m) if m.contains("--server")), "{err}");
        assert_eq!(pick_server(Some("https://a.example/"), || panic!("not read")).unwrap(), "https://a.example");
    }
}
