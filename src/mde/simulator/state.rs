//! The simulator's memory: machines, actions (whose status follows from their age), issued
//! tokens, rate windows, queued faults and the request log. Ages, token lifetimes and rate
//! windows are all measured on the simulator's clock.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use time::OffsetDateTime;

use super::config::{SeedMachine, SimulatorConfig};
use super::faults::{Fault, FaultAction, RouteKind, SeenRequest};
use super::idp::{IdpState, SigningKey};
use super::wire::{WireAction, timestamp};
use crate::clock::{Monotonic, SharedClock};
use crate::mde::rate::{Api, RollingWindow};
use crate::mde::types::{ActionStatus, ActionType};

/// What the routes share: fixed facts plus the mutable state behind one lock, never held
/// across an `.await`.
pub(crate) struct Shared {
    pub config: SimulatorConfig,
    pub base_url: String,
    pub clock: SharedClock,
    /// The identity provider's signing key, generated on first use: most simulators (every
    /// MDE test) never sign anyone in, and RSA key generation is not free.
    idp_key: OnceLock<SigningKey>,
    state: Mutex<State>,
}

impl Shared {
    pub(super) fn new(config: SimulatorConfig, base_url: String, clock: SharedClock) -> Self {
        let state = State::seeded(&config, wall_now(&clock));
        Self { config, base_url, clock, idp_key: OnceLock::new(), state: Mutex::new(state) }
    }

    /// Wall time on the simulator's clock, to the millisecond as dualkey keeps it.
    pub(super) fn now(&self) -> OffsetDateTime {
        wall_now(&self.clock)
    }

    /// Monotonic time on the simulator's clock.
    pub(super) fn monotonic(&self) -> Monotonic {
        self.clock.monotonic()
    }

    /// The identity provider's signing key (generated now if this is its first use).
    pub(super) fn idp_key(&self) -> &SigningKey {
        self.idp_key.get_or_init(SigningKey::generate)
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation is a single push or field write, so a poisoned lock is still sound.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.base_url, self.config.tenant_id)
    }

    /// An action as JSON, its status derived for `now`.
    pub(super) fn render(&self, action: &ActionRecord, now: OffsetDateTime, context: bool) -> WireAction {
        action.render(now, context.then(|| self.entity_context()))
    }

    fn entity_context(&self) -> String {
        format!("{}/api/$metadata#MachineActions/$entity", self.base_url)
    }
}

fn wall_now(clock: &SharedClock) -> OffsetDateTime {
    clock.now().to_datetime()
}

/// An access token the simulator issued.
pub(crate) struct IssuedToken {
    pub audience: String,
    pub roles: Vec<String>,
    pub expires_at: Monotonic,
}

/// A cancellation of an action.
#[derive(Clone)]
pub(crate) struct Cancellation {
    pub requestor: String,
    pub comment: String,
    pub at: OffsetDateTime,
}

/// `requestSource` of actions created through the API.
pub(crate) const PUBLIC_API: &str = "PublicApi";
/// `requestSource` of actions someone created in the portal (UNCONFIRMED spelling).
pub(crate) const PORTAL: &str = "Portal";

/// A machine action; its status is a function of its age, its phases, its machine's final
/// status and whether it was cancelled.
#[derive(Clone)]
pub(crate) struct ActionRecord {
    pub id: String,
    pub action_type: ActionType,
    pub scope: Option<String>,
    pub requestor: String,
    pub comment: String,
    pub machine_id: String,
    pub computer_dns_name: String,
    pub created: OffsetDateTime,
    /// How long it stays Pending, then InProgress.
    pub phases: (Duration, Duration),
    pub outcome: ActionStatus,
    pub cancelled: Option<Cancellation>,
    pub request_source: &'static str,
}

impl ActionRecord {
    /// A new action of `machine` created through the API at `created`, with no scope; it
    /// runs for the machine's phases (or the simulator's) and ends as the machine says.
    pub(super) fn new(
        config: &SimulatorConfig,
        machine: &SeedMachine,
        action_type: ActionType,
        requestor: String,
        comment: String,
        created: OffsetDateTime,
    ) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            action_type,
            scope: None,
            requestor,
            comment,
            machine_id: machine.id.clone(),
            computer_dns_name: machine.computer_dns_name.clone(),
            created,
            phases: machine.completes_after.unwrap_or((config.pending_for, config.in_progress_for)),
            outcome: machine.final_status.clone(),
            cancelled: None,
            request_source: PUBLIC_API,
        }
    }

    /// The status at `now` and when it last changed.
    pub(super) fn status_at(&self, now: OffsetDateTime) -> (ActionStatus, OffsetDateTime) {
        if let Some(c) = &self.cancelled {
            return (ActionStatus::Cancelled, c.at);
        }
        let started = self.created + self.phases.0;
        let finished = started + self.phases.1;
        if now < started {
            (ActionStatus::Pending, self.created)
        } else if now < finished {
            (ActionStatus::InProgress, started)
        } else {
            (self.outcome.clone(), finished)
        }
    }

    fn render(&self, now: OffsetDateTime, odata_context: Option<String>) -> WireAction {
        let (status, updated) = self.status_at(now);
        let c = self.cancelled.as_ref();
        WireAction {
            odata_context,
            id: self.id.clone(),
            action_type: self.action_type.clone(),
            title: None,
            requestor: self.requestor.clone(),
            requestor_comment: self.comment.clone(),
            status,
            machine_id: self.machine_id.clone(),
            computer_dns_name: self.computer_dns_name.clone(),
            creation_date_time_utc: timestamp(self.created),
            last_update_date_time_utc: timestamp(updated),
            cancellation_requestor: c.map(|c| c.requestor.clone()),
            cancellation_comment: c.map(|c| c.comment.clone()),
            cancellation_date_time_utc: c.map(|c| timestamp(c.at)),
            error_h_result: 0,
            scope: self.scope.clone(),
            external_id: None,
            request_source: self.request_source,
            related_file_info: None,
            commands: vec![],
            troubleshoot_info: None,
        }
    }
}

/// Everything that changes while the simulator runs.
pub(crate) struct State {
    pub machines: Vec<SeedMachine>,
    /// In creation order.
    pub actions: Vec<ActionRecord>,
    pub tokens: HashMap<String, IssuedToken>,
    pub windows: HashMap<Api, RollingWindow>,
    pub faults: VecDeque<Fault>,
    pub requests: Vec<SeenRequest>,
    pub idp: IdpState,
}

impl State {
    fn seeded(config: &SimulatorConfig, now: OffsetDateTime) -> Self {
        let windows = Api::ALL
            .into_iter()
            .map(|api| {
                let (per_minute, per_hour) = config
                    .api_limits
                    .iter()
                    .find(|(a, _, _)| *a == api)
                    .map_or((config.rate_per_minute, config.rate_per_hour), |(_, m, h)| (*m, *h));
                let window = RollingWindow::new(per_minute, per_hour);
                (api, window)
            })
            .collect();
        let mut state = Self {
            machines: Vec::with_capacity(config.machines.len()),
            actions: Vec::new(),
            tokens: HashMap::new(),
            windows,
            faults: VecDeque::new(),
            requests: Vec::new(),
            idp: IdpState::default(),
        };
        state.add_machines(config, config.machines.iter().cloned(), now);
        state
    }

    /// Adds machines as if seeded at `now`: an isolated one gets a Succeeded Isolate a day
    /// old, so isolation is derivable only from machine actions, as in MDE.
    pub(super) fn add_machines(
        &mut self,
        config: &SimulatorConfig,
        machines: impl IntoIterator<Item = SeedMachine>,
        now: OffsetDateTime,
    ) {
        let day_ago = now - Duration::from_secs(86_400);
        for m in machines {
            if m.isolated {
                let comment = "Isolated during incident response".to_owned();
                let mut isolation =
                    ActionRecord::new(config, &m, ActionType::Isolate, m.isolated_by.clone(), comment, day_ago);
                isolation.scope = Some("Full".into());
                isolation.phases = (config.pending_for, config.in_progress_for);
                isolation.outcome = ActionStatus::Succeeded;
                self.actions.push(isolation);
            }
            self.machines.push(m);
        }
    }

    /// A machine by device id or computer DNS name (as `GET /machines/{id}` accepts both).
    pub(super) fn machine(&self, id_or_name: &str) -> Option<&SeedMachine> {
        let wanted = id_or_name.to_ascii_lowercase();
        self.machines.iter().find(|m| m.id == wanted || m.computer_dns_name.eq_ignore_ascii_case(id_or_name))
    }

    /// Takes one use of the first queued fault for `kind`.
    pub(super) fn take_fault(&mut self, kind: RouteKind) -> Option<FaultAction> {
        let index = self.faults.iter().position(|f| f.kind == kind)?;
        let fault = &mut self.faults[index];
        let action = fault.action.clone();
        fault.times = fault.times.saturating_sub(1);
        if fault.times == 0 {
            self.faults.remove(index);
        }
        Some(action)
    }

    /// The Isolate/Unisolate action of `machine_id` still running at `now`, if any.
    pub(super) fn active_action(&self, machine_id: &str, now: OffsetDateTime) -> Option<&ActionRecord> {
        self.actions.iter().rev().find(|a| {
            a.machine_id == machine_id
                && matches!(a.action_type, ActionType::Isolate | ActionType::Unisolate)
                && a.status_at(now).0.is_active()
        })
    }

    /// Whether the newest Succeeded Isolate/Unisolate action of the machine is an Isolate.
    pub(super) fn is_isolated(&self, machine_id: &str, now: OffsetDateTime) -> bool {
        self.actions
            .iter()
            .rev()
            .filter(|a| a.machine_id == machine_id)
            .filter(|a| a.status_at(now).0 == ActionStatus::Succeeded)
            .find_map(|a| match a.action_type {
                ActionType::Isolate => Some(true),
                ActionType::Unisolate => Some(false),
                ActionType::Other(_) => None,
            })
            .unwrap_or(false)
    }
}
