//! Minting HS256 tokens from the configured secret, for development and scripts.

use crate::settings::AuthSettings;
use jsonwebtoken::{EncodingKey, Header, encode};
use serde_json::json;
use time::OffsetDateTime;

/// A signed HS256 token for `sub` with `roles`, valid from `now` for `ttl`, carrying the
/// configured issuer and audience. Fails when no `hs256_secret` is configured.
pub(crate) fn mint_hs256(
    settings: &AuthSettings,
    sub: &str,
    roles: &[String],
    ttl: std::time::Duration,
    now: OffsetDateTime,
) -> anyhow::Result<String> {
    let secret = settings
        .hs256_secret
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("auth.hs256_secret is not set, so dualkey cannot mint tokens"))?;
    let iat = now.unix_timestamp();
    let mut claims = serde_json::Map::new();
    claims.insert(settings.principal_claim.clone(), json!(sub));
    claims.insert("sub".into(), json!(sub));
    claims.insert(settings.roles_claim.clone(), json!(roles));
    claims.insert("iss".into(), json!(settings.issuer));
    claims.insert("aud".into(), json!(settings.audience));
    claims.insert("iat".into(), json!(iat));
    claims.insert("nbf".into(), json!(iat));
    claims.insert("exp".into(), json!(iat + ttl.as_secs() as i64));
    Ok(encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.expose().as_bytes())?)?)
}
