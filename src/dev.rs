//! `serve --dev`: the built-in MDE simulator and its development identity provider, with
//! `[mde]`, `[oidc]` and `[auth]` pointed at them, so a fresh clone takes a release from request
//! to `succeeded` with two people in two browser windows, without copying a token.

use crate::clock::{Clock, SystemClock};
use crate::mde::MdeCredential;
use crate::mde::simulator::{
    DEV_API_AUDIENCE, DEV_API_SCOPE, DEV_APP_CLIENT_ID, Simulator, SimulatorConfig, SimulatorHandle,
};
use crate::settings::{OidcSettings, Settings};
use crate::startup::Application;
use anyhow::Context;
use std::io::Write;

/// The policy `--dev` runs when the settings keep the default one: a tier0 rule for the build
/// server (an approver and a Tier0 owner) and break-glass, so every development user has a part.
const DEV_POLICY: &str = r#"
approvals_required = 1
request_ttl = "24h"
min_comment_len = 10

[[rules]]
name = "tier0"
match = { computer_dns_names = ["srv-*"] }
require = [ { role = "Release.Approve", count = 1 }, { role = "Tier0.Owner", count = 1 } ]

[break_glass]
enabled = true
role = "Release.BreakGlass"
ratify_within = "1h"
"#;

/// Starts the simulator on a free loopback port and points `[mde]`, `[oidc]` and `[auth]` at
/// it. The HS256 secret stays too, for the printed tokens.
pub(crate) async fn start(settings: &mut Settings) -> anyhow::Result<SimulatorHandle> {
    let config = SimulatorConfig {
        pending_for: std::time::Duration::from_secs(2),
        in_progress_for: std::time::Duration::from_secs(3),
        ..SimulatorConfig::default()
    };
    let sim = Simulator::start(config).await.context("starting the MDE simulator")?;
    let client = sim.client_config().context("the simulator has no client secret")?;
    let m = &mut settings.mde;
    m.cloud = None;
    m.tenant_id = None;
    m.api_base = Some(client.api_base);
    m.token_url = Some(client.token_url);
    m.scope = Some(client.scope);
    m.client_id = Some(client.client_id);
    m.client_secret = match client.credential {
        MdeCredential::ClientSecret(s) => Some(s),
        MdeCredential::Certificate { .. } => None,
    };
    (m.client_secret_file, m.certificate, m.certificate_file, m.private_key, m.private_key_file) =
        (None, None, None, None, None);
    m.worker_enabled = true;
    m.poll_interval = "1s".parse().map_err(anyhow::Error::msg)?;

    let issuer = sim.idp_issuer();
    let oidc = format!("issuer = \"{issuer}\"\nclient_id = \"{DEV_APP_CLIENT_ID}\"\napi_scope = \"{DEV_API_SCOPE}\"\n");
    settings.oidc = Some(toml::from_str::<OidcSettings>(&oidc).context("the development [oidc] section")?);
    let a = &mut settings.auth;
    a.jwks_url = Some(sim.idp_jwks_url());
    a.issuer = issuer;
    a.audience = DEV_API_AUDIENCE.into();
    // As for Entra ID: `sub` differs per application, `oid` names the person everywhere.
    a.principal_claim = "oid".into();
    if is_embedded_policy(settings) {
        let value: toml::Value = toml::from_str(DEV_POLICY).context("the development policy")?;
        settings.policy = crate::rules::PolicyDocument::from_toml(value).context("the development policy")?;
    }
    Ok(sim)
}

/// True when `[policy]` is the one of the embedded `config/default.toml` (no rules, no
/// break-glass): `--dev` then shows every part; a policy of the operator's own is kept.
fn is_embedded_policy(settings: &Settings) -> bool {
    let embedded = crate::settings::load_from_str(crate::settings::EMBEDDED_DEFAULT, "embedded", []);
    embedded.is_ok_and(|e| e.policy == settings.policy)
}

/// Prints where everything is, the development users, and tokens for scripts.
pub(crate) fn print_banner(app: &Application, sim: &SimulatorHandle) -> anyhow::Result<()> {
    let s = &app.state().settings;
    let a = &s.auth;
    let ttl = std::time::Duration::from_secs(12 * 3600);
    let now = SystemClock.now().to_datetime();
    let mint = |sub: &str, role: &str| crate::auth::mint_hs256(a, sub, &[role.to_string()], ttl, now);
    let (requester, approver, auditor) =
        (mint("alice", &a.requester_role)?, mint("bob", &a.approver_role)?, mint("audrey", &a.auditor_role)?);
    let every_role = every_role(app);
    let all_roles = crate::auth::mint_hs256(a, "root", &every_role, ttl, now)?;
    let machines: String =
        sim.config().machines.iter().map(|m| format!("    {}  {}\n", m.id, m.computer_dns_name)).collect();
    let users: String =
        sim.config().idp.users.iter().map(|u| format!("    {:<8} {}\n", u.name, u.roles.join(", "))).collect();
    let addr = app.local_addr();
    let line = "=".repeat(78);
    // One locked write; a closed stdout (the reader went away) must not take the daemon down.
    let _ = writeln!(
        std::io::stdout().lock(),
        "{line}\n  DEVELOPMENT SETUP -- NOT FOR PRODUCTION\n  dualkey is running with --dev: a built-in identity provider signs anyone in as\n  any user below, and the tokens below are valid for 12 hours.\n{line}\n\n  Console:   http://{addr}/ui/   (two people: a normal and a private window)\n  CLI:       dualkey login --server http://{addr}\n  API:       http://{addr}/api/v1\n  Database:  {db}\n  MDE:       simulator at {mde} (no real tenant is touched)\n  Sign-in:   development identity provider at {idp}\n\n  Users to sign in as:\n{users}\n  Isolated machines in the simulator:\n{machines}\n  Tokens for scripts (or DUALKEY_TOKEN for the CLI):\n\n  Requester (alice, {rr}):\n    export REQUESTER_TOKEN={requester}\n\n  Approver (bob, {ar}):\n    export APPROVER_TOKEN={approver}\n\n  Auditor (audrey, {au}):\n    export AUDITOR_TOKEN={auditor}\n\n  Every role (root, {every}; for API fuzzers such as Schemathesis):\n    export ALL_ROLES_TOKEN={all_roles}\n\n{line}",
        db = s.database.url,
        mde = sim.base_url(),
        idp = sim.idp_issuer(),
        rr = a.requester_role,
        ar = a.approver_role,
        au = a.auditor_role,
        every = every_role.join(", "),
    );
    Ok(())
}

/// The three roles of `[auth]`, break-glass's and every role a slot of the policy asks for: one
/// caller who may try every operation (never one person in production, where roles are split).
fn every_role(app: &Application) -> Vec<String> {
    let state = app.state();
    let a = &state.settings.auth;
    let policy = state.policy();
    let mut roles = vec![a.requester_role.clone(), a.approver_role.clone(), a.auditor_role.clone()];
    roles.extend(policy.break_glass().map(|b| b.role.clone()));
    roles.extend(policy.slot_roles().map(str::to_string));
    let mut seen = std::collections::HashSet::new();
    roles.retain(|r| seen.insert(r.clone()));
    roles
}
