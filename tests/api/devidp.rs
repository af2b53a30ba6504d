//! The simulator's development identity provider, through real HTTP: discovery, the sign-in
//! page, codes with PKCE, refresh rotation, the device flow on the test clock, and the broken
//! ID tokens that relying-party tests ask for.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dualkey::clock::{Clock, ManualClock};
use dualkey::mde::simulator::{
    DEV_API_AUDIENCE, DEV_API_SCOPE, DEV_APP_CLIENT_ID, DevIdpConfig, IdTokenFault, Simulator, SimulatorConfig,
    SimulatorHandle,
};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::{StatusCode, Url, header};
use serde_json::Value;
use sha2::{Digest, Sha256};

mod device;
mod sign_in;
mod tokens;

const REDIRECT: &str = "http://127.0.0.1:4180/ui/callback";
const VERIFIER: &str = "a-pkce-verifier-of-forty-three-characters-or-more.0123456789";
const SCOPE: &str = "openid profile email offline_access";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A simulator on a test clock and a client that shows redirects instead of following them.
struct Idp {
    sim: Arc<SimulatorHandle>,
    clock: ManualClock,
    http: reqwest::Client,
}

impl Idp {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    async fn start_with(tweak: impl FnOnce(&mut DevIdpConfig)) -> Self {
        let mut config = SimulatorConfig::default();
        config.idp.device_interval = Duration::ZERO;
        tweak(&mut config.idp);
        let clock = ManualClock::new();
        let sim = Simulator::start_with_clock(config, Arc::new(clock.clone())).await.expect("the simulator binds");
        Self::over(Arc::new(sim), clock)
    }

    /// Drives a simulator started elsewhere (e.g. shared with a daemon) on `clock`.
    fn over(sim: Arc<SimulatorHandle>, clock: ManualClock) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { sim, clock, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.sim.base_url(), self.sim.config().tenant_id)
    }

    /// A sound authorization request, with `changes` applied (`None` removes a parameter).
    fn request(changes: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
        let challenge = challenge(VERIFIER);
        let mut params: Vec<(String, String)> = [
            ("response_type", "code"),
            ("client_id", DEV_APP_CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("scope", SCOPE),
            ("state", "state-1"),
            ("nonce", "nonce-1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (name, value) in changes {
            params.retain(|(k, _)| k != name);
            if let Some(value) = value {
                params.push(((*name).to_owned(), (*value).to_owned()));
            }
        }
        params
    }

    async fn authorize_page(&self, params: &[(String, String)]) -> (StatusCode, header::HeaderMap, String) {
        let response = self.http.get(self.url("oauth2/v2.0/authorize")).query(params).send().await.unwrap();
        (response.status(), response.headers().clone(), response.text().await.unwrap())
    }

    /// Presses `user`'s button on the sign-in page of `params`.
    async fn press(&self, params: &[(String, String)], user: &str) -> reqwest::Response {
        let mut form = params.to_vec();
        form.push(("user".into(), user.into()));
        self.http.post(self.url("oauth2/v2.0/authorize")).form(&form).send().await.unwrap()
    }

    /// Signs `user` in for `scope` and returns the code the app received.
    async fn code_for(&self, user: &str, scope: &str) -> String {
        let response = self.press(&Self::request(&[("scope", Some(scope))]), user).await;
        assert_eq!(response.status(), StatusCode::FOUND);
        redirect_query(&response)["code"].clone()
    }

    async fn token(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self.http.post(self.sim.token_url()).form(form).send().await.unwrap();
        (response.status(), response.json().await.unwrap())
    }

    async fn redeem(&self, code: &str, verifier: &str, redirect_uri: &str) -> (StatusCode, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("client_id", DEV_APP_CLIENT_ID),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
        ])
        .await
    }

    /// The token answer of a complete sign-in of `user` for `scope`.
    async fn tokens_for(&self, user: &str, scope: &str) -> Value {
        let code = self.code_for(user, scope).await;
        let (status, body) = self.redeem(&code, VERIFIER, REDIRECT).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        let form =
            [("grant_type", "refresh_token"), ("client_id", DEV_APP_CLIENT_ID), ("refresh_token", refresh_token)];
        self.token(&form).await
    }

    /// The JWKS's one key, as a relying party reads it.
    async fn key(&self) -> DecodingKey {
        let jwks: JwkSet = self.http.get(self.sim.idp_jwks_url()).send().await.unwrap().json().await.unwrap();
        assert_eq!(jwks.keys.len(), 1);
        DecodingKey::from_jwk(&jwks.keys[0]).unwrap()
    }

    /// Verifies `token` as a relying party for `audience` would: signature, `iss`, `aud`, `exp`.
    async fn verify(&self, token: &str, audience: &str) -> Result<Value, ErrorKind> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[self.sim.idp_issuer()]);
        jsonwebtoken::decode::<Value>(token, &self.key().await, &validation)
            .map(|data| data.claims)
            .map_err(|e| e.kind().clone())
    }

    async fn device_code(&self, scope: &str) -> Value {
        let form = [("client_id", DEV_APP_CLIENT_ID), ("scope", scope)];
        let response = self.http.post(self.url("oauth2/v2.0/devicecode")).form(&form).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    async fn poll(&self, device: &Value) -> (StatusCode, Value) {
        let code = device["device_code"].as_str().unwrap();
        self.token(&[("grant_type", DEVICE_GRANT), ("client_id", DEV_APP_CLIENT_ID), ("device_code", code)]).await
    }

    /// Answers the device verification page with `fields` plus the device's code.
    async fn answer(&self, device: &Value, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let mut form = vec![("user_code", device["user_code"].as_str().unwrap())];
        form.extend_from_slice(fields);
        let response = self.http.post(self.sim.devicelogin_url()).form(&form).send().await.unwrap();
        (response.status(), response.text().await.unwrap())
    }

    fn now_secs(&self) -> i64 {
        self.clock.now().unix_ms() / 1000
    }
}

/// The query of a redirect's `Location`, after checking it goes to [`REDIRECT`].
fn redirect_query(response: &reqwest::Response) -> HashMap<String, String> {
    let location = response.headers()[header::LOCATION].to_str().unwrap();
    assert!(location.starts_with(&format!("{REDIRECT}?")), "{location}");
    Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

/// A JWT's claims, read without verifying anything.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn oauth_error(body: &Value) -> &str {
    assert!(body["error_description"].is_string(), "{body}");
    body["error"].as_str().unwrap()
}

#[tokio::test]
async fn the_discovery_document_names_every_endpoint_and_what_it_supports() {
    let idp = Idp::start().await;
    let issuer = idp.sim.idp_issuer();
    assert_eq!(issuer, format!("{}/{}/v2.0", idp.sim.base_url(), idp.sim.config().tenant_id));
    let url = format!("{issuer}/.well-known/openid-configuration");
    let doc: Value = idp.http.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["issuer"], issuer);
    assert_eq!(doc["authorization_endpoint"], idp.url("oauth2/v2.0/authorize"));
    assert_eq!(doc["token_endpoint"], idp.sim.token_url());
    assert_eq!(doc["device_authorization_endpoint"], idp.url("oauth2/v2.0/devicecode"));
    assert_eq!(doc["jwks_uri"], idp.sim.idp_jwks_url());
    assert_eq!(doc["end_session_endpoint"], idp.url("oauth2/v2.0/logout"));
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(doc["response_modes_supported"], serde_json::json!(["query"]));
    assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));
    let grants = doc["grant_types_supported"].as_array().unwrap();
    for grant in ["authorization_code", "refresh_token", DEVICE_GRANT] {
        assert!(grants.iter().any(|g| g == grant), "{grant} missing");
    }
    assert!(doc["scopes_supported"].as_array().unwrap().iter().any(|s| s == DEV_API_SCOPE));
    assert!(doc["claims_supported"].as_array().unwrap().iter().any(|c| c == "roles"));
}
