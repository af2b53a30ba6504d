//! `GET /api/v1/client-config`: what the terminal client needs to sign in, without a token.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/client-config", get(client_config))
}

/// Public facts only: the identity provider, the terminal client's id and the scope it asks for.
#[derive(Serialize)]
struct ClientConfig {
    issuer: String,
    cli_client_id: String,
    api_scope: Option<String>,
    scopes: Vec<String>,
}

async fn client_config(State(state): State<AppState>) -> Result<Json<ClientConfig>, ApiError> {
    let oidc = state.settings.oidc.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "oidc_not_configured",
            "this dualkey server has no [oidc] section, so nobody signs in to it",
        )
    })?;
    Ok(Json(ClientConfig {
        issuer: oidc.issuer.clone(),
        cli_client_id: oidc.cli_client_id().to_string(),
        api_scope: oidc.api_scope.clone(),
        scopes: oidc.scopes.clone(),
    }))
}
