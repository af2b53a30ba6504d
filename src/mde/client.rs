//! The Defender for Endpoint client: one token source, one rate limiter per API (shared with
//! the other replicas through a [`Ledger`] when given one), and one function that sends a call
//! and classifies its answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::{MdeError, parse_retry_after};
use super::ledger::Ledger;
use super::limiter::{NotTaken, RateLimiter};
use super::query::percent_encode;
pub use super::query::{ActionQuery, Cmp, MachineQuery, Wait};
use super::rate::{Api, Limits, RollingWindow, Share};
use super::stats::{CallCode, CallStats};
use super::token::{MdeCredential, TokenHealth, TokenSource};
use super::types::{ActionType, IsolationType, Machine, MachineAction, ODataList};
use crate::clock::{Monotonic, SharedClock};
use crate::secret::Secret;

// Our clock and MDE's count the same call a network latency apart; a second of slack on the
// windows keeps a backlog draining at the limit from ever tipping MDE's count over it.
const WINDOW_SLACK: Duration = Duration::from_secs(1);

/// MDE's largest page (`$top` max), asked for so that a list takes as few calls as it can.
const PAGE_SIZE: usize = 10_000;

/// Most pages one list follows: 10 million entities, far past any tenant, so only a server
/// whose `@odata.nextLink` never ends reaches it.
const MAX_PAGES: usize = 1_000;

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
/// waits for its API's rate budget (as long as it takes, or as its [`Wait`] allows), and none
/// is retried except once after a 401 with a fresh token. Retrying 429/5xx/transport failures
/// is the caller's policy. Rate windows and token lifetimes are measured, and rate waits
/// slept, on the clock it is given. With a [`Ledger`] ([`with_ledger`](Self::with_ledger)),
/// the budget and a 429's pause are the tenant's, shared by every client on that ledger.
pub struct MdeClient {
    http: reqwest::Client,
    api_base: String,
    tokens: TokenSource,
    limiters: HashMap<Api, RateLimiter>,
    clock: SharedClock,
    stats: CallStats,
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
        let tokens = TokenSource::new(
            http.clone(),
            config.token_url,
            config.scope,
            config.client_id,
            config.credential,
            clock.clone(),
        );
        let api_base = config.api_base.trim_end_matches('/').to_owned();
        Ok(Self { http, api_base, tokens, limiters, clock, stats: CallStats::default() })
    }

    /// The same client, taking every call from `ledger` too (after its own window) and pausing
    /// an API there after a 429: the budget every replica on the ledger shares.
    pub fn with_ledger(mut self, ledger: Arc<dyn Ledger>) -> Self {
        self.limiters = self.limiters.into_iter().map(|(api, l)| (api, l.shared(api, ledger.clone()))).collect();
        self
    }

    /// Whether the app can get a token, for `/readyz`: from what the client knows, fetching
    /// (at most `bound`) only when nothing is known or the last failure is `recheck` old.
    pub async fn token_health(&self, bound: Duration, recheck: Duration) -> TokenHealth {
        self.tokens.check(bound, recheck).await
    }

    /// Every call this client sent, by API and answer, and when MDE last answered.
    pub fn stats(&self) -> &CallStats {
        &self.stats
    }

    /// The budget every API's limiter enforces (all are built from the same `[mde]` rates):
    /// calls per rolling minute and hour.
    pub fn limits(&self) -> Limits {
        self.limiter(Api::Unisolate).limits()
    }

    /// When `api`'s rate budget next allows a call by a caller with `share` (now or later),
    /// without taking it.
    pub fn ready_at(&self, api: Api, share: Share) -> Monotonic {
        self.limiters[&api].ready_at(share)
    }

    /// `POST /api/machines/{id}/unisolate` with `{"Comment": comment}`; expects 201.
    #[tracing::instrument(skip_all, fields(machine_id = %machine_id))]
    pub async fn unisolate(&self, machine_id: &str, comment: &str) -> Result<MachineAction, MdeError> {
        self.unisolate_waiting(machine_id, comment, Wait::Queue).await
    }

    /// Like [`Self::unisolate`], waiting for the budget at most as `wait` says (then
    /// [`MdeError::Busy`], nothing sent). The worker sends with `Wait::AtMost(0)` after waiting
    /// for the budget itself under its claim, so a send never waits where its lease could lapse.
    pub async fn unisolate_waiting(
        &self,
        machine_id: &str,
        comment: &str,
        wait: Wait,
    ) -> Result<MachineAction, MdeError> {
        let url = format!("{}/api/machines/{machine_id}/unisolate", self.api_base);
        let body = json!({ "Comment": comment });
        self.call_waiting(Api::Unisolate, wait, Method::POST, &url, Some(&body)).await
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
        let q = ActionQuery {
            machine_id: Some(machine_id.to_owned()),
            action_type: Some(action_type.clone()),
            ..ActionQuery::default()
        };
        self.actions_matching(&q, None, Wait::Queue).await
    }

    /// `GET /api/machineactions?$filter=machineId eq '{id}'`: every action of the machine, in
    /// one call (one unit of the ListActions budget) unless MDE pages the answer.
    #[tracing::instrument(skip_all, fields(machine_id = %machine_id))]
    pub async fn list_machine_actions(&self, machine_id: &str) -> Result<Vec<MachineAction>, MdeError> {
        self.list_machine_actions_waiting(machine_id, Wait::Queue).await
    }

    /// `GET /api/machineactions?$filter=machineId eq '{id}'` waiting at most as `wait` says.
    #[tracing::instrument(skip_all, fields(machine_id = %machine_id))]
    pub async fn list_machine_actions_waiting(
        &self,
        machine_id: &str,
        wait: Wait,
    ) -> Result<Vec<MachineAction>, MdeError> {
        let q = ActionQuery { machine_id: Some(machine_id.to_owned()), ..ActionQuery::default() };
        self.actions_matching(&q, None, wait).await
    }

    /// `GET /api/machineactions?$filter=…&$top=10000`, following `@odata.nextLink` (one
    /// ListActions call per page, each waiting at most as `wait` says). In MDE's order, which
    /// it does not guarantee; an action seen on two pages is kept once.
    #[tracing::instrument(skip_all)]
    pub async fn query_actions(&self, q: &ActionQuery, wait: Wait) -> Result<Vec<MachineAction>, MdeError> {
        self.actions_matching(q, Some(PAGE_SIZE), wait).await
    }

    /// `GET /api/machines?$filter=…&$top=10000`, following `@odata.nextLink` (one
    /// ListMachines call per page, each waiting at most as `wait` says). A machine seen on two
    /// pages is kept once.
    #[tracing::instrument(skip_all)]
    pub async fn list_machines(&self, q: &MachineQuery, wait: Wait) -> Result<Vec<Machine>, MdeError> {
        let url = list_url(&format!("{}/api/machines", self.api_base), q.filter()?, Some(PAGE_SIZE));
        self.all_pages(Api::ListMachines, wait, url, |m: &Machine| &m.id).await
    }

    async fn actions_matching(
        &self,
        q: &ActionQuery,
        top: Option<usize>,
        wait: Wait,
    ) -> Result<Vec<MachineAction>, MdeError> {
        let url = list_url(&format!("{}/api/machineactions", self.api_base), q.filter()?, top);
        self.all_pages(Api::ListActions, wait, url, |a: &MachineAction| &a.id).await
    }

    /// Reads `url` and every page its `@odata.nextLink`s lead to, on this client's origin only.
    async fn all_pages<T: DeserializeOwned>(
        &self,
        api: Api,
        wait: Wait,
        url: String,
        id: fn(&T) -> &str,
    ) -> Result<Vec<T>, MdeError> {
        let mut url = url;
        let mut all = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            let page: ODataList<T> = self.call_waiting(api, wait, Method::GET, &url, None).await?;
            // Entities created between two pages shift the later ones by as many.
            for item in page.value {
                if seen.insert(id(&item).to_owned()) {
                    all.push(item);
                }
            }
            match page.next_link {
                None => return Ok(all),
                Some(next) => url = self.next_page(api, &next)?,
            }
        }
        let detail = format!("@odata.nextLink still set after {MAX_PAGES} pages");
        Err(MdeError::InvalidResponse { api, status: 200, detail })
    }

    /// A `nextLink` resolved against `api_base`, refused unless it stays on its origin: the
    /// bearer token goes wherever the link points.
    fn next_page(&self, api: Api, next: &str) -> Result<String, MdeError> {
        let invalid = |detail: String| MdeError::InvalidResponse { api, status: 200, detail };
        let base = reqwest::Url::parse(&self.api_base).map_err(|e| MdeError::Config(format!("api_base: {e}")))?;
        let url = base.join(next).map_err(|e| invalid(format!("unreadable @odata.nextLink: {e}")))?;
        if url.origin() != base.origin() {
            return Err(invalid(format!("@odata.nextLink leaves {}: {}", base.origin().ascii_serialization(), url)));
        }
        Ok(url.into())
    }

    /// `GET /api/machines/{id}`. The Machine carries no isolation state.
    #[tracing::instrument(skip_all, fields(machine_id = %machine_id))]
    pub async fn get_machine(&self, machine_id: &str) -> Result<Machine, MdeError> {
        self.get_machine_waiting(machine_id, Wait::Queue).await
    }

    /// `GET /api/machines/{id}` waiting at most as `wait` says for the budget.
    #[tracing::instrument(skip_all, fields(machine_id = %machine_id))]
    pub async fn get_machine_waiting(&self, machine_id: &str, wait: Wait) -> Result<Machine, MdeError> {
        let url = format!("{}/api/machines/{machine_id}", self.api_base);
        self.call_waiting(Api::GetMachine, wait, Method::GET, &url, None).await
    }

    /// `POST /api/machineactions/{id}/cancel` with `{"Comment": comment}`; expects 200.
    #[tracing::instrument(skip_all, fields(action_id = %action_id))]
    pub async fn cancel_action(&self, action_id: &str, comment: &str) -> Result<MachineAction, MdeError> {
        let url = format!("{}/api/machineactions/{action_id}/cancel", self.api_base);
        let body = json!({ "Comment": comment });
        self.call(Api::CancelAction, Method::POST, &url, Some(&body)).await
    }

    /// Sends one call, waiting for its API's rate budget as long as it takes.
    async fn call<T: DeserializeOwned>(
        &self,
        api: Api,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, MdeError> {
        self.call_waiting(api, Wait::Queue, method, url, body).await
    }

    /// Sends one call within its API's rate budget, waiting for it at most as `wait` says;
    /// on 401, once more with a fresh token (within the same wait).
    async fn call_waiting<T: DeserializeOwned>(
        &self,
        api: Api,
        wait: Wait,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, MdeError> {
        let deadline = match wait {
            Wait::Queue => None,
            Wait::AtMost(d) => Some(self.clock.monotonic() + d),
        };
        // Refuse before fetching a token: a busy answer costs nothing.
        if let Some(deadline) = deadline {
            self.limiter(api).ready_by(deadline).map_err(|ready| self.busy(api, ready))?;
        }
        let token = self.tokens.get().await?;
        let answer = self.send(api, deadline, &method, url, body, &token).await?;
        let answer = if answer.status() == StatusCode::UNAUTHORIZED {
            tracing::info!(?api, "MDE refused the token; fetching a new one");
            self.tokens.invalidate(&token).await;
            let token = self.tokens.get().await?;
            self.send(api, deadline, &method, url, body, &token).await?
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
                self.limiter(api).pause_for(wait).await;
            }
            let err = MdeError::from_api_answer(api, status, &bytes, retry_after);
            tracing::warn!(?api, status, code = ?err.code(), "MDE refused the call");
            return Err(err);
        }
        serde_json::from_slice(&bytes).map_err(|e| MdeError::InvalidResponse { api, status, detail: e.to_string() })
    }

    /// Takes one call of `api`'s budget (by `deadline`, if given) and sends the request.
    async fn send(
        &self,
        api: Api,
        deadline: Option<Monotonic>,
        method: &Method,
        url: &str,
        body: Option<&serde_json::Value>,
        token: &Secret,
    ) -> Result<reqwest::Response, MdeError> {
        self.limiter(api).take(deadline).await.map_err(|refused| match refused {
            NotTaken::Until(at) => self.busy(api, at),
            NotTaken::Unaccounted(cause) => {
                tracing::warn!(?api, error = %cause, "cannot account for the MDE call in the shared budget; not sending");
                MdeError::Unaccounted { api, cause }
            }
        })?;
        let mut request = self.http.request(method.clone(), url).bearer_auth(token.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        let answer = request.send().await;
        let code = answer.as_ref().map_or(CallCode::Transport, |a| CallCode::Status(a.status().as_u16()));
        self.stats.record(api, code, self.clock.now());
        answer.map_err(|e| MdeError::from_transport(Some(api), &e))
    }

    fn limiter(&self, api: Api) -> &RateLimiter {
        &self.limiters[&api]
    }

    /// The refusal for a call `api`'s budget allows only at `ready`; never a zero wait, so a
    /// caller that retries after it does not spin.
    fn busy(&self, api: Api, ready: Monotonic) -> MdeError {
        let retry_after = ready.saturating_since(self.clock.monotonic()).max(Duration::from_millis(1));
        tracing::info!(?api, ?retry_after, "MDE rate budget spent; not sending");
        MdeError::Busy { api, retry_after }
    }
}

/// `{base}?$filter=…&$top=…`, leaving out what is not given.
fn list_url(base: &str, filter: Option<String>, top: Option<usize>) -> String {
    let mut params = Vec::new();
    if let Some(filter) = filter {
        params.push(format!("$filter={}", percent_encode(&filter)));
    }
    if let Some(top) = top {
        params.push(format!("$top={top}"));
    }
    if params.is_empty() { base.to_owned() } else { format!("{base}?{}", params.join("&")) }
}
