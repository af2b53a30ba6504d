//! A development OpenID Connect identity provider, shaped like Entra ID v2 and served by the
//! simulator (same port, state and clock): discovery and JWKS, an authorize page with a button
//! per dev user, the authorization code (PKCE S256), refresh and device code grants at the
//! simulator's token endpoint, and a device verification page. For `serve --dev` and tests
//! only: anyone who can reach it can sign in as anyone.

mod config;
mod keys;

pub use config::{DEV_API_AUDIENCE, DEV_API_SCOPE, DEV_APP_CLIENT_ID, DevIdpConfig, DevUser, IdTokenFault, dev_users};
pub(crate) use keys::SigningKey;

/// The issuer of a simulator served at `base_url` for `tenant`.
pub(crate) fn issuer(base_url: &str, tenant: &str) -> String {
    format!("{base_url}/{tenant}/v2.0")
}
