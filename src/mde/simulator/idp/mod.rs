//! A development OpenID Connect identity provider, shaped like Entra ID v2 and served by the
//! simulator (same port, state and clock): discovery and JWKS, an authorize page with a button
//! per dev user, the authorization code (PKCE S256), refresh and device code grants at the
//! simulator's token endpoint, and a device verification page. For `serve --dev` and tests
//! only: anyone who can reach it can sign in as anyone.

mod authorize;
mod config;
mod device;
mod discovery;
mod grants;
mod html;
mod keys;
mod mint;
mod oauth;
mod scope;
mod state;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;

pub use config::{DEV_API_AUDIENCE, DEV_API_SCOPE, DEV_APP_CLIENT_ID, DevIdpConfig, DevUser, IdTokenFault, dev_users};
pub(crate) use grants::{grant, handles};
pub(crate) use keys::SigningKey;
pub(crate) use state::IdpState;

use super::state::Shared;

/// The device code grant type of RFC 8628.
pub(crate) const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// The identity provider's routes; the token endpoint is the simulator's own.
pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(discovery::openid_configuration))
        .route("/{tenant}/discovery/v2.0/keys", get(discovery::jwks))
        .route("/{tenant}/oauth2/v2.0/authorize", get(authorize::show).post(authorize::sign_in))
        .route("/{tenant}/oauth2/v2.0/devicecode", axum::routing::post(device::device_authorization))
        .route("/{tenant}/oauth2/v2.0/logout", get(discovery::logout))
        .route("/devicelogin", get(device::show).post(device::answer))
}

/// Whether a request path (split on `/`) is one of the routes of [`router`].
pub(crate) fn is_idp_path(segments: &[&str]) -> bool {
    matches!(
        segments,
        [_, "v2.0", ".well-known", "openid-configuration"]
            | [_, "discovery", "v2.0", "keys"]
            | [_, "oauth2", "v2.0", "authorize" | "devicecode" | "logout"]
            | ["devicelogin"]
    )
}

/// 256 random bits, base64url: codes and refresh tokens.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Shared {
    /// `{base}/{tenant}/v2.0`.
    pub(crate) fn idp_issuer(&self) -> String {
        issuer(&self.base_url, &self.config.tenant_id)
    }

    /// `{base}/{tenant}/{path}`.
    pub(crate) fn idp_url(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.base_url, self.config.tenant_id)
    }

    /// `{base}/{tenant}/discovery/v2.0/keys`.
    pub(crate) fn idp_jwks_url(&self) -> String {
        self.idp_url("discovery/v2.0/keys")
    }

    /// `{base}/devicelogin`.
    pub(crate) fn devicelogin_url(&self) -> String {
        format!("{}/devicelogin", self.base_url)
    }
}

/// The issuer of a simulator served at `base_url` for `tenant`.
pub(crate) fn issuer(base_url: &str, tenant: &str) -> String {
    format!("{base_url}/{tenant}/v2.0")
}
