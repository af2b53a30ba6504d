//! Who can sign in to the development identity provider, as which app, and for how long its
//! codes and tokens live.

use std::time::Duration;

use crate::secret::Secret;

/// Client id of the dev app registration that the console and the terminal client share.
pub const DEV_APP_CLIENT_ID: &str = "dualkey-dev-app";
/// Audience of access tokens issued for [`DEV_API_SCOPE`]: the value for `auth.audience`.
pub const DEV_API_AUDIENCE: &str = "api://dualkey-dev";
/// The scope a client asks for to get an access token the dualkey API accepts.
pub const DEV_API_SCOPE: &str = "api://dualkey-dev/.default";

/// The domain of the dev users' `preferred_username`/`upn`, e.g. `bob@dualkey.dev`.
pub(crate) const DEV_USER_DOMAIN: &str = "dualkey.dev";

/// A person who can sign in to the dev identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevUser {
    /// The `oid` claim and the local part of `preferred_username`, e.g. `bob`.
    pub name: String,
    /// The `name` claim and the start of the sign-in button's text, e.g. `Bob`.
    pub display_name: String,
    /// The app roles in the `roles` claim, e.g. `Release.Approve`.
    pub roles: Vec<String>,
}

impl DevUser {
    fn new(name: &str, display_name: &str, role: &str) -> Self {
        Self { name: name.into(), display_name: display_name.into(), roles: vec![role.into()] }
    }

    /// `bob@dualkey.dev`: the `preferred_username` and `upn` claims.
    pub(crate) fn username(&self) -> String {
        format!("{}@{DEV_USER_DOMAIN}", self.name)
    }
}

/// The six people of `serve --dev`: alice requests, bob and carol approve, olga owns Tier 0,
/// audrey audits, bree holds break-glass.
pub fn dev_users() -> Vec<DevUser> {
    vec![
        DevUser::new("alice", "Alice", "Release.Request"),
        DevUser::new("bob", "Bob", "Release.Approve"),
        DevUser::new("carol", "Carol", "Release.Approve"),
        DevUser::new("olga", "Olga", "Tier0.Owner"),
        DevUser::new("audrey", "Audrey", "Audit.Read"),
        DevUser::new("bree", "Bree", "Release.BreakGlass"),
    ]
}

/// The development identity provider's app registration and lifetimes. `Default` is the dev
/// setup: the [`dev_users`], a public client [`DEV_APP_CLIENT_ID`], the [`DEV_API_SCOPE`].
#[derive(Debug, Clone)]
pub struct DevIdpConfig {
    pub users: Vec<DevUser>,
    /// The one app that may sign people in (console and terminal client share it).
    pub client_id: String,
    /// `None`: a public client, authenticated by PKCE alone; `Some`: the token and device
    /// code endpoints require this secret (form field or HTTP Basic).
    pub client_secret: Option<Secret>,
    /// Redirect URIs allowed besides loopback ones (`http://127.0.0.1:*`, `http://localhost:*`,
    /// `http://[::1]:*`), compared exactly.
    pub redirect_uris: Vec<String>,
    /// The `aud` of access tokens issued for `api_scope`.
    pub api_audience: String,
    /// The scope that yields an access token for `api_audience`.
    pub api_scope: String,
    pub access_token_ttl: Duration,
    pub id_token_ttl: Duration,
    /// How long a device code can be approved and redeemed.
    pub device_code_ttl: Duration,
    /// The polling interval announced for device codes (RFC 8628 `interval`); 0 in tests.
    pub device_interval: Duration,
}

impl Default for DevIdpConfig {
    fn default() -> Self {
        Self {
            users: dev_users(),
            client_id: DEV_APP_CLIENT_ID.into(),
            client_secret: None,
            redirect_uris: Vec::new(),
            api_audience: DEV_API_AUDIENCE.into(),
            api_scope: DEV_API_SCOPE.into(),
            access_token_ttl: Duration::from_secs(3600),
            id_token_ttl: Duration::from_secs(3600),
            device_code_ttl: Duration::from_secs(15 * 60),
            device_interval: Duration::from_secs(5),
        }
    }
}

impl DevIdpConfig {
    /// The user called `name`, if there is one.
    pub(crate) fn user(&self, name: &str) -> Option<&DevUser> {
        self.users.iter().find(|u| u.name == name)
    }
}

/// How the next ID token is broken, for the tests of a relying party's checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdTokenFault {
    /// Signed, then one bit of the signature flipped: fails verification with the JWKS key.
    BadSignature,
    /// `aud` is another app's client id.
    WrongAudience,
    /// `nonce` is not the one the sign-in request carried.
    WrongNonce,
    /// `exp` lies ten minutes in the past (beyond any usual leeway).
    Expired,
    /// `iss` is another tenant's issuer.
    WrongIssuer,
}
