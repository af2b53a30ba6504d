//! The Defender for Endpoint client: one token source, one rate limiter per API, and one
//! function that sends a call and classifies its answer.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::{MdeError, parse_retry_after};
use super::rate::{Api, RateLimiter, RollingWindow, Share};
use super::token::{MdeCredential, TokenHealth, TokenSource};
use super::types::{ActionType, IsolationType, Machine, MachineAction, ODataList};
use crate::clock::{Monotonic, SharedClock};
use crate::secret::Secret;

// Our clock and MDE's count the same call a network latency apart; a second of slack on the
// windows keeps a backlog draining at the limit from ever tipping MDE's count over it.
const WINDOW_SLACK: Duration = Duration::from_secs(1);

/// Everything the client needs; filled from the `[mde]` settings.
#[derive(Debug, Clone)]
pub struct MdeClientConfig {
    /// e.g. `https://api.security.microsoft.com` (no trailing `/api`).
    pub api_base: String,
    /// e.g. `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`.
    pub token_url: String,
    /// e.g. `https://api.securitycenter.microsoft.com/.default`.
    pub scope: String,
    pub client_id: String,
    pub credential: MdeCredential,
    /// Calls allowed per API in any rolling minute (MDE: 100).
    pub rate_per_minute: u32,
    /// Calls allowed per API in any rolling hour (MDE: 1500).
    pub rate_per_hour: u32,
    /// Timeout of one HTTP request, token requests included.
    pub request_timeout: Duration,
}

/// A client for the MDE machine-action APIs. Cheap to share behind an `Arc`; every call
/// waits for its API's rate budget, and none is retried except once after a 401 with a fresh
/// token. Retrying 429/5xx/transport failures is the caller's policy. Rate windows and token
/// lifetimes are measured, and rate waits slept, on the clock it is given.
pub struct MdeClient {
    http: reqwest::Client,
    api_base: String,
    tokens: TokenSource,
    limiters: HashMap<Api, RateLimiter>,
}

impl MdeClient {
    /// Builds the client on `clock`; fails only if the HTTP stack cannot be set up.
    pub fn new(config: MdeClientConfig, clock: SharedClock) -> Result<Self, MdeError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .build()
            .map_err(|e| MdeError::Config(format!("cannot build the HTTP client: {e}")))?;
        let limiters = Api::ALL
            .into_iter()
            .map(|api| {
                let window = RollingWindow::new(config.rate_per_minute, config.rate_per_hour).with_slack(WINDOW_SLACK);
                (api, RateLimiter::new(window, clock.clone()))
            })
            .collect();
        let tokens =
            TokenSource::new(http.clone(), config.token_url, config.scope, config.client_id, config.credential, clock);
        Ok(Self { http, api_base: config.api_base.trim_end_matches('/').to_owned(), tokens, limiters })
    }

    /// Whether the app can get a token, for `/readyz`: from what the client knows, fetching
    /// (at most `bound`) only when nothing is known or the last failure is `recheck` old.
    pub async fn token_health(&self, bound: Duration, recheck: Duration) -> TokenHealth {
        self.tokens.check(bound, recheck).await
    }

    /// When `api`'s rate budget next allows a call by a caller with `share` (now or later),
    /// without taking it.
    pub fn ready_at(&self, api: Api, share: Share) -> Monotonic {
        self.limiters[&api].ready_at(share)
    }

    /// `POST /api/machines/{id}/unisolate` with `{"Comment": comment}`; expects 201.
    #[tracing::instrument(skip_all, fields(machine_id = %machine_id))]
    pub async fn unisolate(&self, machine_id: &str, comment: &str) -> Result<MachineAction, MdeError> {
        let url = format!("{}/api/machines/{machine_id}/unisolate", self.api_base);
        let body = json!({ "Comment": comment });
        self.call(Api::Unisolate, Method::POST, &url, Some(&body)).await
    }

    /// `POST /api/machines/{id}/isolate` with `{"Comment", "IsolationType"}`; expects 201.
    #[tracing::instrument(skip_all, fields(machine_id = %machine_id))]
    pub async fn isolate(
        &self,
        machine_id: &str,
        comment: &str,
        isolation: IsolationType,
    ) -> Result<MachineAction, MdeError> {
        let url = format!("{}/api/machines/{machine_id}/isolate", self.api_base);
        let body = json!({ "Comment": comment, "IsolationType": isolation });
        self.call(Api::Isolate, Method::POST, &url, Some(&body)).await
    }

    /// `GET /api/machineactions/{id}`.
    #[tracing::instrument(skip_all, fields(action_id = %action_id))]
    pub async fn get_action(&self, action_id: &str) -> Result<MachineAction, MdeError> {
        let url = format!("{}/api/machineactions/{action_id}", self.api_base);
        self.call(Api::GetAction, Method::GET, &url, None).await
    }

    /// `GET /api/machineactions?$filter=machineId eq '{id}' and type eq '{type}'`. The order
    /// of the answer is not guaranteed by MDE; sort by `creationDateTimeUtc` if it matters.
    #[tracing::instrument(skip_all, fields(machine_id = %machine_id))]
    pub async fn list_actions(
        &self,
        machine_id: &str,
        action_type: &ActionType,
    ) -> Result<Vec<MachineAction>, MdeError> {
        self.list_filtered(machine_id, Some(action_type)).await
    }

    /// `GET /api/machineactions?$filter=machineId eq '{id}'`: every action of the machine, in
    /// one call (one unit of the ListActions budget).
    #[tracing::instrument(skip_all, fields(machine_id = %machine_id))]
    pub async fn list_machine_actions(&self, machine_id: &str) -> Result<Vec<MachineAction>, MdeError> {
        self.list_filtered(machine_id, None).await
    }

    async fn list_filtered(
        &self,
        machine_id: &str,
        action_type: Option<&ActionType>,
    ) -> Result<Vec<MachineAction>, MdeError> {
        let url = format!("{}/api/machineactions", self.api_base);
        // Ids are hex and types are enum names, so neither can carry a quote; refuse rather
        // than build a broken filter if one ever does.
        if machine_id.contains('\'') || action_type.is_some_and(|t| t.as_str().contains('\'')) {
            return Err(MdeError::Config("a quote in a $filter value".into()));
        }
        let filter = match action_type {
            Some(t) => format!("machineId eq '{machine_id}' and type eq '{}'", t.as_str()),
            None => format!("machineId eq '{machine_id}'"),
        };
        // Spaces as %20, not the form encoding's `+`: OData examples are written that way.
        let url = format!("{url}?$filter={}", percent_encode(&filter));
        let list: ODataList<MachineAction> = self.call(Api::ListActions, Method::GET, &url, None).await?;
        Ok(list.value)
    }

    /// `GET /api/machines/{id}`. The Machine carries no isolation state.
    #[tracing::instrument(skip_all, fields(machine_id = %machine_id))]
    pub async fn get_machine(&self, machine_id: &str) -> Result<Machine, MdeError> {
        let url = format!("{}/api/machines/{machine_id}", self.api_base);
        self.call(Api::GetMachine, Method::GET, &url, None).await
    }

    /// `POST /api/machineactions/{id}/cancel` with `{"Comment": comment}`; expects 200.
    #[tracing::instrument(skip_all, fields(action_id = %action_id))]
    pub async fn cancel_action(&self, action_id: &str, comment: &str) -> Result<MachineAction, MdeError> {
        let url = format!("{}/api/machineactions/{action_id}/cancel", self.api_base);
        let body = json!({ "Comment": comment });
        self.call(Api::CancelAction, Method::POST, &url, Some(&body)).await
    }

    /// Sends one call within its API's rate budget; on 401, once more with a fresh token.
    async fn call<T: DeserializeOwned>(
        &self,
        api: Api,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, MdeError> {
        let token = self.tokens.get().await?;
        let answer = self.send(api, &method, url, body, &token).await?;
        let answer = if answer.status() == StatusCode::UNAUTHORIZED {
            tracing::info!(?api, "MDE refused the token; fetching a new one");
            self.tokens.invalidate(&token).await;
            let token = self.tokens.get().await?;
            self.send(api, &method, url, body, &token).await?
        } else {
            answer
        };
        let status = answer.status().as_u16();
        let retry_after = parse_retry_after(answer.headers());
        let bytes = answer.bytes().await.map_err(|e| MdeError::from_transport(Some(api), &e))?;
        if !(200..300).contains(&status) {
            if status == 429 {
                // At least a minute if MDE gave no usable Retry-After, as XSOAR does.
                let wait = retry_after.unwrap_or(Duration::from_secs(60));
                self.limiter(api).block_for(wait);
            }
            let err = MdeError::from_api_answer(api, status, &bytes, retry_after);
            tracing::warn!(?api, status, code = ?err.code(), "MDE refused the call");
            return Err(err);
        }
        serde_json::from_slice(&bytes).map_err(|e| MdeError::InvalidResponse { api, status, detail: e.to_string() })
    }

    async fn send(
        &self,
        api: Api,
        method: &Method,
        url: &str,
        body: Option<&serde_json::Value>,
        token: &Secret,
    ) -> Result<reqwest::Response, MdeError> {
        self.limiter(api).acquire().await;
        let mut request = self.http.request(method.clone(), url).bearer_auth(token.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.map_err(|e| MdeError::from_transport(Some(api), &e))
    }

    fn limiter(&self, api: Api) -> &RateLimiter {
        &self.limiters[&api]
    }
}

/// Percent-encodes everything but unreserved characters and the OData quote.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3 / 2);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~'".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
