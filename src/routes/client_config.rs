//! `GET /api/v1/client-config`: what the terminal client needs to sign in, without a token.

use crate::error::ApiError;
use crate::routes::openapi::ErrorBody;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(client_config))
}

/// Public facts only: the identity provider, the terminal client's id and the scope it asks for.
#[derive(Serialize, utoipa::ToSchema)]
struct ClientConfig {
    issuer: String,
    cli_client_id: String,
    api_scope: Option<String>,
    scopes: Vec<String>,
}

/// What the terminal client needs to sign in.
#[utoipa::path(
    get,
    path = "/api/v1/client-config",
    tag = "health",
    security(()),
    responses(
        (status = 200, body = ClientConfig),
        (status = 404, description = "`oidc_not_configured`: this server has no `[oidc]` section", body = ErrorBody),
    )
)]
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
