//! The pure core of dualkey's view of MDE: the devices and the Isolate and Unisolate actions
//! read so far, when each part was read, and from where the next read of a list must start.
//! No I/O and no clock: every function takes `now`.

use crate::clock::Timestamp;
use crate::mde::{ActionType, Machine, MachineAction};
use std::collections::HashMap;
use std::time::Duration;
use time::OffsetDateTime;

/// How far before the previous read an incremental read of a list starts again: MDE's clock
/// and ours differ, and a new action can become visible a little after its creation time.
pub(crate) const LIST_OVERLAP: Duration = Duration::from_secs(60);

/// One of the two action lists the view keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum List {
    Isolate,
    Unisolate,
}

impl List {
    pub(crate) const BOTH: [List; 2] = [List::Isolate, List::Unisolate];

    pub(crate) fn action_type(self) -> ActionType {
        match self {
            List::Isolate => ActionType::Isolate,
            List::Unisolate => ActionType::Unisolate,
        }
    }

    fn of(action: &MachineAction) -> Option<List> {
        match action.action_type {
            Some(ActionType::Isolate) => Some(List::Isolate),
            Some(ActionType::Unisolate) => Some(List::Unisolate),
            _ => None,
        }
    }
}

/// When a list was last read, and the read's own start (the base of the next cursor).
#[derive(Debug, Clone, Copy, Default)]
struct ListRead {
    at: Option<Timestamp>,
}

/// What the view says of one device.
#[derive(Debug, Clone)]
pub(crate) struct DeviceFacts {
    /// `None`: MDE has no such machine.
    pub machine: Option<Machine>,
    /// Its Isolate and Unisolate actions, in no particular order.
    pub actions: Vec<MachineAction>,
}

/// The view: devices by id, their Isolate and Unisolate actions by id, and read times.
#[derive(Debug, Default)]
pub(crate) struct View {
    machines: HashMap<String, Machine>,
    machines_at: Option<Timestamp>,
    lists: HashMap<List, ListRead>,
    /// Isolate and Unisolate actions by machine (lower-case id), each held once by action id.
    actions: HashMap<String, Vec<MachineAction>>,
    /// Which machine each action belongs to (lower-case action id → lower-case machine id).
    machine_of: HashMap<String, String>,
    /// Devices read one by one (machine and actions), and when.
    single: HashMap<String, Timestamp>,
    /// Unisolates new or changed since the last [`View::take_changed_unisolates`], for the
    /// bypass review.
    changed: Vec<MachineAction>,
}

fn key(id: &str) -> String {
    id.to_ascii_lowercase()
}

impl View {
    /// True when the device list and both action lists were read after `now - max_age`.
    pub(crate) fn bulk_fresh(&self, now: Timestamp, max_age: Duration) -> bool {
        self.machines_fresh(now, max_age) && List::BOTH.iter().all(|l| self.list_fresh(*l, now, max_age))
    }

    pub(crate) fn machines_fresh(&self, now: Timestamp, max_age: Duration) -> bool {
        fresh(self.machines_at, now, max_age)
    }

    pub(crate) fn list_fresh(&self, list: List, now: Timestamp, max_age: Duration) -> bool {
        fresh(self.lists.get(&list).and_then(|r| r.at), now, max_age)
    }

    /// The device's facts when they are no older than `max_age` (from the bulk lists or from a
    /// read of the device alone); `None` when they must be read again.
    pub(crate) fn facts(&self, machine_id: &str, now: Timestamp, max_age: Duration) -> Option<DeviceFacts> {
        let k = key(machine_id);
        let single = fresh(self.single.get(&k).copied(), now, max_age);
        if !single && !self.bulk_fresh(now, max_age) {
            return None;
        }
        Some(self.facts_now(&k))
    }

    fn facts_now(&self, k: &str) -> DeviceFacts {
        DeviceFacts {
            machine: self.machines.get(k).cloned(),
            actions: self.actions.get(k).cloned().unwrap_or_default(),
        }
    }

    /// Every known device with its facts (for selectors), whatever their age.
    pub(crate) fn all(&self) -> impl Iterator<Item = DeviceFacts> + '_ {
        self.machines.keys().map(|k| self.facts_now(k))
    }

    /// Where the next read of `list` starts: `None` for the first read (everything), else the
    /// oldest action of that list still running, or the previous read less [`LIST_OVERLAP`],
    /// whichever is earlier. So an action is read until it ends, and nothing created between
    /// two reads is missed.
    pub(crate) fn cursor(&self, list: List) -> Option<OffsetDateTime> {
        let last = self.lists.get(&list).and_then(|r| r.at)?;
        let base = last.minus(LIST_OVERLAP).to_datetime();
        let oldest_running = self
            .actions
            .values()
            .flatten()
            .filter(|a| List::of(a) == Some(list) && !a.status.as_ref().is_some_and(|s| s.is_final()))
            .filter_map(MachineAction::created_at)
            .min();
        Some(oldest_running.map_or(base, |t| t.min(base)))
    }

    /// When both action lists were last read (the older of the two), if ever.
    pub(crate) fn actions_read_at(&self) -> Option<Timestamp> {
        let at = |l: List| self.lists.get(&l).and_then(|r| r.at);
        at(List::Isolate).zip(at(List::Unisolate)).map(|(i, u)| i.min(u))
    }

    /// Where a read of every action type starts (see [`View::cursor`]); `None` until both lists
    /// had their first, whole read.
    pub(crate) fn actions_cursor(&self) -> Option<OffsetDateTime> {
        self.actions_read_at()?;
        self.cursor(List::Isolate).zip(self.cursor(List::Unisolate)).map(|(i, u)| i.min(u))
    }

    /// Takes in a read of every action type since [`View::actions_cursor`], started at
    /// `started`: both lists are as fresh as it.
    pub(crate) fn took_actions(&mut self, started: Timestamp, actions: Vec<MachineAction>) {
        for a in actions {
            self.put(None, a);
        }
        for list in List::BOTH {
            self.lists.insert(list, ListRead { at: Some(started) });
        }
    }

    /// The Unisolates new or changed since the last call.
    pub(crate) fn take_changed_unisolates(&mut self) -> Vec<MachineAction> {
        std::mem::take(&mut self.changed)
    }

    /// Puts Unisolates back for the next review (their verdict had to wait).
    pub(crate) fn requeue_unisolates(&mut self, actions: Vec<MachineAction>) {
        for a in actions {
            if !self.changed.iter().any(|c| c.id.eq_ignore_ascii_case(&a.id)) {
                self.changed.push(a);
            }
        }
    }

    /// Takes in a read of `list` that started at `started`.
    pub(crate) fn took_list(&mut self, list: List, started: Timestamp, actions: Vec<MachineAction>) {
        for a in actions {
            self.put(None, a);
        }
        self.lists.insert(list, ListRead { at: Some(started) });
    }

    /// Takes in a read of every device that started at `started`: devices no longer listed are
    /// forgotten (MDE has removed them).
    pub(crate) fn took_machines(&mut self, started: Timestamp, machines: Vec<Machine>) {
        self.machines = machines.into_iter().map(|m| (key(&m.id), m)).collect();
        self.machines_at = Some(started);
    }

    /// Takes in a read of one device (`None`: MDE has no such machine) and its actions.
    pub(crate) fn took_device(
        &mut self,
        machine_id: &str,
        started: Timestamp,
        machine: Option<Machine>,
        actions: Vec<MachineAction>,
    ) {
        let k = key(machine_id);
        match machine {
            Some(m) => {
                self.machines.insert(k.clone(), m);
            }
            None => {
                self.machines.remove(&k);
            }
        }
        for a in actions {
            self.put(Some(&k), a);
        }
        self.single.insert(k, started);
    }

    /// Takes in one action dualkey created or saw (a create answer may lack `machineId`).
    pub(crate) fn observe(&mut self, machine_id: &str, action: MachineAction) {
        self.put(Some(&key(machine_id)), action);
    }

    /// The action with this id, if the view holds it.
    pub(crate) fn action(&self, action_id: &str) -> Option<&MachineAction> {
        let id = key(action_id);
        let machine = self.machine_of.get(&id)?;
        self.actions.get(machine)?.iter().find(|a| a.id.eq_ignore_ascii_case(&id))
    }

    /// True when some Unisolate the view holds has not ended.
    pub(crate) fn unisolate_running(&self) -> bool {
        self.actions
            .values()
            .flatten()
            .any(|a| List::of(a) == Some(List::Unisolate) && !a.status.as_ref().is_some_and(|s| s.is_final()))
    }

    fn put(&mut self, machine: Option<&str>, action: MachineAction) {
        if List::of(&action).is_none() {
            return;
        }
        let id = key(&action.id);
        let Some(machine) = machine.map(str::to_string).or_else(|| action.machine_id.as_deref().map(key)) else {
            return;
        };
        let list = self.actions.entry(machine.clone()).or_default();
        let changed = match list.iter_mut().find(|a| a.id.eq_ignore_ascii_case(&id)) {
            // A create answer has fewer fields than a list's: keep what is known.
            Some(old) => {
                let moved = old.status != action.status;
                *old = merge(old, action);
                moved.then(|| old.clone())
            }
            None => {
                list.push(action.clone());
                Some(action)
            }
        };
        if let Some(a) = changed.filter(|a| List::of(a) == Some(List::Unisolate)) {
            // Only the review reads these, and only the latest state of each matters.
            self.changed.retain(|c| !c.id.eq_ignore_ascii_case(&a.id));
            self.changed.push(a);
        }
        self.machine_of.insert(id, machine);
    }
}

/// `new` with the fields it lacks taken from `old`.
fn merge(old: &MachineAction, new: MachineAction) -> MachineAction {
    MachineAction {
        machine_id: new.machine_id.or_else(|| old.machine_id.clone()),
        requestor: new.requestor.or_else(|| old.requestor.clone()),
        requestor_comment: new.requestor_comment.or_else(|| old.requestor_comment.clone()),
        creation_date_time_utc: new.creation_date_time_utc.or_else(|| old.creation_date_time_utc.clone()),
        computer_dns_name: new.computer_dns_name.or_else(|| old.computer_dns_name.clone()),
        ..new
    }
}

fn fresh(at: Option<Timestamp>, now: Timestamp, max_age: Duration) -> bool {
    at.is_some_and(|t| now.minus(max_age) <= t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    fn action(id: &str, kind: &str, status: &str, machine: &str, created: &str) -> MachineAction {
        serde_json::from_value(json!({
            "id": id, "type": kind, "status": status, "machineId": machine, "creationDateTimeUtc": created,
        }))
        .unwrap()
    }

    fn machine(id: &str) -> Machine {
        serde_json::from_value(json!({ "id": id })).unwrap()
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn facts_are_fresh_only_while_every_bulk_read_is_younger_than_the_max_age() {
        let mut v = View::default();
        let t0 = at("2026-12-01T10:00:00Z");
        assert!(v.facts("AA", t0, MINUTE).is_none(), "nothing read yet");
        v.took_machines(t0, vec![machine("aa")]);
        v.took_list(List::Isolate, t0, vec![action("i1", "Isolate", "Succeeded", "aa", "2026-12-01T09:00:00Z")]);
        assert!(v.facts("aa", t0, MINUTE).is_none(), "the Unisolate list was never read");
        v.took_list(List::Unisolate, t0, vec![]);
        let f = v.facts("AA", t0.plus(MINUTE), MINUTE).unwrap();
        assert_eq!(f.machine.unwrap().id, "aa");
        assert_eq!(f.actions.len(), 1);
        assert!(v.facts("aa", t0.plus(MINUTE).plus(Duration::from_millis(1)), MINUTE).is_none(), "too old");
        let unknown = v.facts("bb", t0, MINUTE).unwrap();
        assert!(unknown.machine.is_none(), "a fresh list without it: MDE has no such machine");
    }

    #[test]
    fn a_device_read_alone_is_fresh_by_itself() {
        let mut v = View::default();
        let t0 = at("2026-12-01T10:00:00Z");
        v.took_device(
            "cc",
            t0,
            Some(machine("cc")),
            vec![action("u1", "Unisolate", "Pending", "cc", "2026-12-01T10:00:00Z")],
        );
        assert!(v.facts("cc", t0, MINUTE).is_some());
        assert!(v.facts("dd", t0, MINUTE).is_none());
        assert_eq!(v.action("U1").unwrap().id, "u1");
        assert!(v.unisolate_running());
    }

    #[test]
    fn the_cursor_starts_at_the_oldest_running_action_or_a_minute_before_the_last_read() {
        let mut v = View::default();
        let t0 = at("2026-12-01T10:00:00Z");
        assert_eq!(v.cursor(List::Unisolate), None, "the first read takes everything");
        v.took_list(List::Unisolate, t0, vec![action("u1", "Unisolate", "Succeeded", "aa", "2026-12-01T09:00:00Z")]);
        assert_eq!(v.cursor(List::Unisolate), Some(at("2026-12-01T09:59:00Z").to_datetime()));
        v.observe("bb", action("u2", "Unisolate", "Pending", "bb", "2026-12-01T09:30:00Z"));
        assert_eq!(v.cursor(List::Unisolate), Some(at("2026-12-01T09:30:00Z").to_datetime()), "u2 still runs");
        v.took_list(
            List::Unisolate,
            t0.plus(MINUTE),
            vec![action("u2", "Unisolate", "Succeeded", "bb", "2026-12-01T09:30:00Z")],
        );
        assert_eq!(v.cursor(List::Unisolate), Some(t0.to_datetime()));
        assert_eq!(v.cursor(List::Isolate), None, "each list has its own cursor");
        assert_eq!(v.actions_cursor(), None, "a read of every type waits for both first reads");
        v.took_list(List::Isolate, t0.plus(MINUTE), vec![]);
        assert_eq!(v.actions_cursor(), Some(t0.to_datetime()));
        v.took_actions(t0.plus(MINUTE).plus(MINUTE), vec![]);
        assert_eq!(v.actions_read_at(), Some(t0.plus(MINUTE).plus(MINUTE)));
        assert!(v.list_fresh(List::Isolate, t0.plus(MINUTE).plus(MINUTE), Duration::ZERO));
    }

    #[test]
    fn a_list_answer_updates_an_observed_action_without_losing_its_machine() {
        let mut v = View::default();
        let created: MachineAction = serde_json::from_value(json!({
            "id": "u9", "type": "Unisolate", "status": "Pending", "machineId": null, "requestorComment": "[dualkey:x]"
        }))
        .unwrap();
        v.observe("ee", created);
        let t0 = at("2026-12-01T10:00:00Z");
        v.took_list(List::Unisolate, t0, vec![action("u9", "Unisolate", "Succeeded", "ee", "2026-12-01T10:00:00Z")]);
        let a = v.action("u9").unwrap();
        assert_eq!(a.status.as_ref().map(|s| s.as_str()), Some("Succeeded"));
        assert_eq!(a.requestor_comment.as_deref(), Some("[dualkey:x]"), "kept from the create answer");
        assert!(!v.unisolate_running());
        let changed = v.take_changed_unisolates();
        assert_eq!(changed.len(), 1, "one entry per action, in its latest state");
        assert_eq!(changed[0].status.as_ref().map(|s| s.as_str()), Some("Succeeded"));
        assert!(v.take_changed_unisolates().is_empty());
        v.took_list(List::Unisolate, t0, vec![action("u9", "Unisolate", "Succeeded", "ee", "2026-12-01T10:00:00Z")]);
        assert!(v.take_changed_unisolates().is_empty(), "unchanged");
        let other = action("s1", "RunAntiVirusScan", "Pending", "ee", "2026-12-01T10:00:00Z");
        v.observe("ee", other);
        assert!(v.action("s1").is_none(), "only Isolate and Unisolate actions are kept");
    }
}
