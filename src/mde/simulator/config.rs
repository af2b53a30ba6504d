//! What a simulator instance knows: its tenant and app, its machines, and its behaviour.

use std::time::Duration;

use super::idp::{self, DevIdpConfig};
use crate::mde::client::MdeClientConfig;
use crate::mde::token::MdeCredential;
use crate::mde::types::ActionStatus;
use crate::secret::Secret;

/// Tenant id of the default (dev) simulator.
pub const DEV_TENANT_ID: &str = "00000000-0000-4000-8000-00000000d0a1";
/// Client id of the default (dev) simulator's app registration.
pub const DEV_CLIENT_ID: &str = "00000000-0000-4000-8000-0000000c11e7";
/// Client secret of the default (dev) simulator. Not a secret: it only opens the simulator.
pub const DEV_CLIENT_SECRET: &str = "dualkey-dev-client-secret";

/// A machine known to the simulator.
#[derive(Debug, Clone)]
pub struct SeedMachine {
    /// 40 lower-case hex characters, as MDE device ids are.
    pub id: String,
    pub computer_dns_name: String,
    pub rbac_group_id: i64,
    pub rbac_group_name: String,
    pub machine_tags: Vec<String>,
    pub risk_score: String,
    pub health_status: String,
    pub exposure_level: String,
    /// Seeds a Succeeded Isolate action by `isolated_by`, so isolation is derivable only from
    /// machine actions, as in MDE.
    pub isolated: bool,
    /// The UPN of the analyst who isolated the machine.
    pub isolated_by: String,
    /// How new actions on this machine end: `Succeeded` normally, or `Failed`/`TimeOut`.
    pub final_status: ActionStatus,
    /// How long new actions on this machine stay Pending, then InProgress, instead of the
    /// simulator's `pending_for` and `in_progress_for` (e.g. a device that is rarely online).
    pub completes_after: Option<(Duration, Duration)>,
}

impl SeedMachine {
    /// An active, isolated machine with the given id and DNS name.
    pub fn isolated(id: &str, computer_dns_name: &str) -> Self {
        Self {
            id: id.to_owned(),
            computer_dns_name: computer_dns_name.to_owned(),
            rbac_group_id: 140,
            rbac_group_name: "Workstations".into(),
            machine_tags: vec![],
            risk_score: "Medium".into(),
            health_status: "Active".into(),
            exposure_level: "Medium".into(),
            isolated: true,
            isolated_by: "analyst@contoso.onmicrosoft.com".into(),
            final_status: ActionStatus::Succeeded,
            completes_after: None,
        }
    }
}

/// The 32 hex characters after the 8-digit index of a [`fleet`] machine's id. Chosen apart from
/// the API tests' `machine(n)` ids (`{n:08x}` + `"ab"` x 16), so the two never collide.
const FLEET_ID_SUFFIX: &str = "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd";

/// `n` isolated machines for scale tests and demos, the same on every call. Machine `i`
/// (1-based) is built as follows:
/// - id `format!("{i:08x}")` + `"cd"` x 16, e.g. `00000001cdcd…cd`; DNS name `ws-{i:04}.contoso.com`;
/// - every 10th (`i % 10 == 0`) in rbac group "Tier0" (id 10), tagged `tier0`; of the others,
///   `i % 3 == 0` in "Servers" (id 150), the rest in "Workstations" (id 140);
/// - every 7th (`i % 7 == 0`) also tagged `outbreak-2026`;
/// - risk score by `i % 4`: 0 `High`, 1 `Low`, 2 and 3 `Medium`;
/// - health `Inactive` when `i % 20 == 7`, else `Active`.
pub fn fleet(n: usize) -> Vec<SeedMachine> {
    (1..=n)
        .map(|i| {
            let mut m = SeedMachine::isolated(&format!("{i:08x}{FLEET_ID_SUFFIX}"), &format!("ws-{i:04}.contoso.com"));
            let (group_id, group) = match i {
                _ if i % 10 == 0 => (10, "Tier0"),
                _ if i % 3 == 0 => (150, "Servers"),
                _ => (140, "Workstations"),
            };
            (m.rbac_group_id, m.rbac_group_name) = (group_id, group.into());
            if group_id == 10 {
                m.machine_tags.push("tier0".into());
            }
            if i % 7 == 0 {
                m.machine_tags.push("outbreak-2026".into());
            }
            m.risk_score = match i % 4 {
                0 => "High",
                1 => "Low",
                _ => "Medium",
            }
            .into();
            if i % 20 == 7 {
                m.health_status = "Inactive".into();
            }
            m
        })
        .collect()
}

/// The five isolated machines of `serve --dev`, with fixed ids the README can show.
pub fn default_seed() -> Vec<SeedMachine> {
    [
        ("1e5bc9d7e413ddd7902c2932e418702b84d0cc07", "desktop-fin-01.contoso.com"),
        ("7b1f4967d9728e5aa3c06a9e617a22a4a5a17378", "laptop-hr-07.contoso.com"),
        ("f46b9bb259ed4a7fb9981b73510e3cc7aa81ec1f", "srv-build-02.contoso.com"),
        ("a1b2c3d4e5f60718293a4b5c6d7e8f9012345678", "desktop-eng-11.contoso.com"),
        ("0c0ffee0c0ffee0c0ffee0c0ffee0c0ffee0c0ff", "kiosk-lobby-01.contoso.com"),
    ]
    .into_iter()
    .map(|(id, dns)| SeedMachine::isolated(id, dns))
    .collect()
}

/// What a second isolate/unisolate does while one is Pending/InProgress. MDE has been seen
/// doing both (M365 issues #5903/#5904).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuplicateBehavior {
    /// 400 `ActiveRequestAlreadyExists` "Action is already in progress" (documented).
    Reject,
    /// 201 with the existing pending action.
    ReturnExisting,
}

/// What unisolate does on a machine that is not isolated; real behaviour is UNCONFIRMED.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotIsolatedBehavior {
    /// 201, and the action runs its course.
    Accept,
    /// 400 `BadRequest`.
    Reject,
}

/// Everything configurable about a simulator. `Default` is the dev setup.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    pub tenant_id: String,
    pub client_id: String,
    /// Accepted `client_secret`, if secrets are allowed.
    pub client_secret: Option<Secret>,
    /// Certificate whose key must sign client assertions, if certificates are allowed.
    pub certificate_pem: Option<String>,
    /// Shown as `requestor` of actions the app creates.
    pub app_display_name: String,
    /// Application roles in issued tokens, e.g. `Machine.Isolate`, `Machine.Read.All`.
    pub app_roles: Vec<String>,
    /// Token audiences the API accepts (the scope minus `/.default`); others get 403.
    pub accepted_audiences: Vec<String>,
    pub token_lifetime: Duration,
    pub machines: Vec<SeedMachine>,
    /// How long a new action stays Pending, then InProgress (unless its machine says
    /// otherwise in [`SeedMachine::completes_after`]).
    pub pending_for: Duration,
    pub in_progress_for: Duration,
    /// Per API family (MDE: 100 and 1500).
    pub rate_per_minute: u32,
    pub rate_per_hour: u32,
    /// Limits for particular API families instead of the two above: `(api, per_minute, per_hour)`.
    pub api_limits: Vec<(crate::mde::rate::Api, u32, u32)>,
    pub duplicate: DuplicateBehavior,
    pub not_isolated: NotIsolatedBehavior,
    /// The development identity provider served beside the API.
    pub idp: DevIdpConfig,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            tenant_id: DEV_TENANT_ID.into(),
            client_id: DEV_CLIENT_ID.into(),
            client_secret: Some(Secret::new(DEV_CLIENT_SECRET)),
            certificate_pem: None,
            app_display_name: "dualkey release worker".into(),
            app_roles: vec!["Machine.Isolate".into(), "Machine.Read.All".into()],
            accepted_audiences: vec![
                "https://api.securitycenter.microsoft.com".into(),
                "https://api.security.microsoft.com".into(),
                "https://securitycenter.onmicrosoft.com/windowsatpservice".into(),
                "https://securitycenter.onmicrosoft.us/windowsatpservice".into(),
            ],
            token_lifetime: Duration::from_secs(3599),
            machines: default_seed(),
            pending_for: Duration::from_secs(5),
            in_progress_for: Duration::from_secs(20),
            rate_per_minute: 100,
            rate_per_hour: 1500,
            api_limits: Vec::new(),
            duplicate: DuplicateBehavior::Reject,
            not_isolated: NotIsolatedBehavior::Accept,
            idp: DevIdpConfig::default(),
        }
    }
}

impl SimulatorConfig {
    /// The OpenID Connect issuer of the dev identity provider of this simulator served at
    /// `base_url`: `{base_url}/{tenant}/v2.0`.
    pub fn idp_issuer(&self, base_url: &str) -> String {
        idp::issuer(base_url, &self.tenant_id)
    }

    /// A client configuration that works against this simulator served at `base_url`
    /// (`http://host:port`): its token URL, the commercial scope, its client id and secret,
    /// MDE's real limits. `None` if the simulator accepts no client secret.
    pub fn client_config(&self, base_url: &str) -> Option<MdeClientConfig> {
        let secret = self.client_secret.clone()?;
        Some(MdeClientConfig {
            api_base: base_url.to_owned(),
            token_url: format!("{base_url}/{}/oauth2/v2.0/token", self.tenant_id),
            scope: "https://api.securitycenter.microsoft.com/.default".into(),
            client_id: self.client_id.clone(),
            credential: MdeCredential::ClientSecret(secret),
            rate_per_minute: 100,
            rate_per_hour: 1500,
            request_timeout: Duration::from_secs(30),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_is_deterministic_with_distinct_ids_and_the_documented_groups() {
        let machines = fleet(30);
        assert_eq!(machines.len(), 30);
        let ids: std::collections::HashSet<_> = machines.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids.len(), 30);
        assert!(machines.iter().all(|m| m.id.len() == 40 && m.isolated));
        assert_eq!(machines[0].id, format!("00000001{}", "cd".repeat(16)));
        assert_eq!(machines[0].computer_dns_name, "ws-0001.contoso.com");
        let tier0: Vec<_> =
            machines.iter().filter(|m| m.rbac_group_id == 10).map(|m| m.computer_dns_name.as_str()).collect();
        assert_eq!(tier0, ["ws-0010.contoso.com", "ws-0020.contoso.com", "ws-0030.contoso.com"]);
        assert!(machines[9].machine_tags.contains(&"tier0".to_owned()));
        assert_eq!(machines[2].rbac_group_name, "Servers");
        assert_eq!(machines[13].machine_tags, ["outbreak-2026"]);
        assert_eq!(fleet(30)[17].id, machines[17].id, "the same on every call");
        assert!(default_seed().iter().all(|d| !ids.contains(d.id.as_str())));
    }
}
