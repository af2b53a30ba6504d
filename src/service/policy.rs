//! The policy in force: recorded in the audit chain, and reloaded whole or not at all.

use crate::audit::{self, Actor, AuditEvent, Subject};
use crate::settings::{Settings, SettingsError};
use crate::state::AppState;

/// Records the policy in force in the audit chain when its hash differs from the last one
/// recorded, so the chain shows which policy every later decision was made under.
pub(crate) async fn record_policy(state: &AppState) -> Result<(), sqlx::Error> {
    let policy = state.policy();
    let hash = policy.hash();
    let mut tx = state.db.begin().await?;
    // Kept whether or not the hash is new: a database from before documents were kept gets the
    // one in force now.
    crate::db::checkpoints::keep_policy(&mut tx, &hash, &policy.canonical(), state.clock.now()).await?;
    let last = crate::db::audit::last_details(&mut tx, "policy_loaded").await?;
    let last_hash = last
        .and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok())
        .and_then(|d| d["policy_hash"].as_str().map(str::to_string));
    if last_hash.as_deref() == Some(hash.as_str()) {
        return tx.commit().await;
    }
    let mut rules: Vec<String> = policy.rules().iter().map(|r| r.applied.name.clone()).collect();
    rules.push(policy.default_rule().name.clone());
    let event = AuditEvent::PolicyLoaded { policy_hash: hash.clone(), rules };
    audit::record(&mut tx, state.clock.now(), Actor::System, Subject::default(), &event).await?;
    tx.commit().await?;
    tracing::info!(policy_hash = %hash, "policy recorded in the audit chain");
    Ok(())
}

/// Puts the policy of freshly loaded settings in force, or, when they do not load, keeps the
/// old one and records the refusal. Only `[policy]` changes on a reload; other settings need a
/// restart.
/// `path` names the file it was read from (for the `policy.reload_refused` notification).
pub(crate) async fn reload(
    state: &AppState,
    path: &str,
    loaded: Result<Settings, SettingsError>,
) -> Result<bool, sqlx::Error> {
    let validated = loaded.and_then(|s| {
        s.policy.validate(&state.settings.auth.approver_role).map_err(|e| SettingsError::Policy(e.to_string()))
    });
    match validated {
        Ok(policy) => {
            state.set_policy(policy);
            record_policy(state).await?;
            Ok(true)
        }
        Err(e) => {
            let error = e.to_string();
            tracing::error!(%error, "policy reload refused; the previous policy stays in force");
            let mut tx = state.db.begin().await?;
            let now = state.clock.now();
            let data = serde_json::json!({ "reason": error, "path": path });
            let event = AuditEvent::PolicyReloadRefused { error, policy_hash_in_force: state.policy().hash() };
            audit::record(&mut tx, now, Actor::System, Subject::default(), &event).await?;
            crate::notify::outbox::other_event(&mut tx, "policy.reload_refused", &data, now).await?;
            tx.commit().await?;
            Ok(false)
        }
    }
}
