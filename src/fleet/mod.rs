//! One careful reader of MDE: the devices and their Isolate and Unisolate actions, read in bulk
//! (`GET /api/machines`, `GET /api/machineactions?$filter=type eq …`) and kept with the time
//! they were read, so requests, batches, the worker's re-check and its polling all use one
//! view and spend MDE's budget on unisolates.
//!
//! - A request uses facts no older than `[mde] device_max_age`; without them it reads the one
//!   device (two calls), waiting at most `[mde] request_wait` for the budget.
//! - A batch and the worker refresh the whole view when it is older than that (one call per
//!   page of each list), which serves every device at once.
//! - The worker's scan ([`crate::worker`]) reads the Unisolate list from its cursor every
//!   `poll_interval` while actions are in flight: that one call follows every dispatched
//!   release and shows every Unisolate in the tenant (bypass detection, [`bypass`]).

pub(crate) mod bypass;
pub(crate) mod view;

use crate::clock::{SharedClock, Timestamp};
use crate::mde::{ActionQuery, Cmp, MachineQuery, MdeClient, MdeError, Wait};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use view::{DeviceFacts, List, View};

/// How the view paces itself, from `[mde]`.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub device_max_age: Duration,
    pub request_wait: Duration,
}

impl FleetConfig {
    pub fn from_settings(s: &crate::settings::MdeSettings) -> Self {
        Self { device_max_age: s.device_max_age.get(), request_wait: s.request_wait.get() }
    }
}

/// The view of MDE shared by the API and the worker. Cheap to share behind an `Arc`.
pub struct Fleet {
    mde: Arc<MdeClient>,
    clock: SharedClock,
    config: FleetConfig,
    view: Mutex<View>,
    /// One bulk refresh at a time: who waits for it finds the view fresh afterwards.
    refreshing: tokio::sync::Mutex<()>,
}

impl Fleet {
    pub fn new(mde: Arc<MdeClient>, clock: SharedClock, config: FleetConfig) -> Self {
        Self { mde, clock, config, view: Mutex::new(View::default()), refreshing: tokio::sync::Mutex::new(()) }
    }

    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    fn view(&self) -> MutexGuard<'_, View> {
        // Every mutation is a whole insert or replace, so a poisoned lock is still sound.
        self.view.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One device's facts: from the view when fresh, else read alone (two calls: the device
    /// and its actions), each waiting for the budget as `wait` says.
    pub(crate) async fn device(&self, machine_id: &str, wait: Wait) -> Result<DeviceFacts, MdeError> {
        match self.cached(machine_id) {
            Some(facts) => Ok(facts),
            None => self.read_device(machine_id, wait).await,
        }
    }

    /// The device's facts if the view holds them no older than `device_max_age`.
    pub(crate) fn cached(&self, machine_id: &str) -> Option<DeviceFacts> {
        self.view().facts(machine_id, self.clock.now(), self.config.device_max_age)
    }

    /// Reads one device and its actions from MDE (two calls), whatever the view holds.
    pub(crate) async fn read_device(&self, machine_id: &str, wait: Wait) -> Result<DeviceFacts, MdeError> {
        let now = self.clock.now();
        let machine = match self.mde.get_machine_waiting(machine_id, wait).await {
            Ok(m) => Some(m),
            Err(e) if e.status() == Some(404) => None,
            Err(e) => return Err(e),
        };
        let actions = match &machine {
            Some(_) => self.mde.list_machine_actions_waiting(machine_id, wait).await?,
            None => vec![],
        };
        let mut view = self.view();
        view.took_device(machine_id, now, machine, actions);
        Ok(view.facts(machine_id, now, Duration::MAX).expect("just read"))
    }

    /// The facts of each of `ids`, the whole view refreshed first when it is older than
    /// `device_max_age`.
    pub(crate) async fn devices(&self, ids: &[&str], wait: Wait) -> Result<Vec<DeviceFacts>, MdeError> {
        self.refresh(wait).await?;
        let view = self.view();
        Ok(ids.iter().map(|id| view.facts(id, Timestamp::EPOCH, Duration::MAX).expect("no age limit")).collect())
    }

    /// Every device the view holds, after a refresh when it is older than `device_max_age`.
    pub(crate) async fn all_devices(&self, wait: Wait) -> Result<Vec<DeviceFacts>, MdeError> {
        self.refresh(wait).await?;
        Ok(self.view().all().collect())
    }

    /// Reads whatever part of the view is older than `device_max_age`: the device list and
    /// the actions, one call per page each.
    pub(crate) async fn refresh(&self, wait: Wait) -> Result<(), MdeError> {
        self.refresh_within(wait, self.config.device_max_age).await
    }

    /// Like [`Fleet::refresh`], with the actions no older than `actions_age` (the worker's
    /// re-check before a send asks for its `poll_interval`: a release or a new isolation of the
    /// device is seen as soon as a poll would see it).
    pub(crate) async fn refresh_within(&self, wait: Wait, actions_age: Duration) -> Result<(), MdeError> {
        let max_age = self.config.device_max_age;
        let stale = |v: &View, now| {
            let actions = !List::BOTH.iter().all(|l| v.list_fresh(*l, now, actions_age.min(max_age)));
            (!v.machines_fresh(now, max_age), actions)
        };
        if stale(&self.view(), self.clock.now()) == (false, false) {
            return Ok(());
        }
        let _turn = self.refreshing.lock().await;
        let now = self.clock.now();
        let (machines, actions) = stale(&self.view(), now);
        if machines {
            let list = self.mde.list_machines(&MachineQuery::default(), wait).await?;
            self.view().took_machines(now, list);
        }
        if actions {
            self.read_actions_now(wait).await?;
        }
        Ok(())
    }

    /// Reads the tenant's actions into the view: the first time the whole Isolate and
    /// Unisolate lists (one call per page each), then every action created since the view's
    /// cursor in one call (`$filter=creationDateTimeUtc ge …`), which keeps both lists fresh.
    pub(crate) async fn read_actions(&self, wait: Wait) -> Result<(), MdeError> {
        // After a refresh another task made, the cursor is where it left off: a short read.
        let _turn = self.refreshing.lock().await;
        self.read_actions_now(wait).await
    }

    async fn read_actions_now(&self, wait: Wait) -> Result<(), MdeError> {
        let started = self.clock.now();
        let cursor = self.view().actions_cursor();
        match cursor {
            Some(from) => {
                let query = ActionQuery { created: Some((Cmp::Ge, from)), ..Default::default() };
                let actions = self.mde.query_actions(&query, wait).await?;
                self.view().took_actions(started, actions);
            }
            None => {
                for list in List::BOTH {
                    let query = ActionQuery { action_type: Some(list.action_type()), ..Default::default() };
                    let actions = self.mde.query_actions(&query, wait).await?;
                    self.view().took_list(list, started, actions);
                }
            }
        }
        Ok(())
    }

    /// When the actions were last read, if ever.
    pub(crate) fn actions_read_at(&self) -> Option<Timestamp> {
        self.view().actions_read_at()
    }

    /// Puts Unisolates back for the next review.
    pub(crate) fn requeue_unisolates(&self, actions: Vec<crate::mde::MachineAction>) {
        self.view().requeue_unisolates(actions);
    }

    /// The Unisolates new or changed since the last call, for the bypass review.
    pub(crate) fn take_changed_unisolates(&self) -> Vec<crate::mde::MachineAction> {
        self.view().take_changed_unisolates()
    }

    /// Takes in an action dualkey just created on `machine_id`.
    pub(crate) fn observe(&self, machine_id: &str, action: crate::mde::MachineAction) {
        self.view().observe(machine_id, action);
    }

    /// The action with this id as last read, if the view holds it.
    pub(crate) fn action(&self, action_id: &str) -> Option<crate::mde::MachineAction> {
        self.view().action(action_id).cloned()
    }

    /// True while some Unisolate the view holds has not ended.
    pub(crate) fn unisolate_running(&self) -> bool {
        self.view().unisolate_running()
    }
}
