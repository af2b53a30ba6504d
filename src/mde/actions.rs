//! Reading a machine's actions. MDE promises no order for a list of actions, and the Machine
//! entity carries no isolation state (MDE_API.md section 5): both are derived here, once.

use super::types::{ActionStatus, ActionType, MachineAction};

/// The newest of `actions` by `creationDateTimeUtc`; one without a readable time counts as the
/// oldest.
pub fn latest<'a>(actions: impl IntoIterator<Item = &'a MachineAction>) -> Option<&'a MachineAction> {
    actions.into_iter().max_by_key(|a| a.created_at())
}

impl MachineAction {
    /// Who made the action: `dualkey release <id>` when its comment carries a release's marker
    /// (MDE's `requestor` is then only dualkey's app), else MDE's `requestor`.
    pub fn made_by(&self) -> String {
        match self.marked_release() {
            Some(id) => format!("dualkey release {id}"),
            None => self.requestor.clone().unwrap_or_else(|| "an unnamed requestor".into()),
        }
    }
}

/// What a machine's Isolate and Unisolate actions say about it now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Isolation<'a> {
    /// No Isolate or Unisolate has succeeded.
    NeverIsolated,
    /// Isolated by this Isolate action.
    Isolated(&'a MachineAction),
    /// Released by this Unisolate action.
    Released(&'a MachineAction),
}

/// The isolation `actions` (of any type, in any order) leave the machine in: the newest Isolate
/// or Unisolate that `Succeeded` decides, as MDE_API.md section 5 describes. One still `Pending`
/// or `InProgress` has not changed the device yet (and may still fail); one that ended
/// `Failed`, `TimeOut` or `Cancelled` never changed it.
pub fn isolation<'a>(actions: impl IntoIterator<Item = &'a MachineAction>) -> Isolation<'a> {
    let succeeded = actions.into_iter().filter(|a| {
        matches!(a.action_type, Some(ActionType::Isolate | ActionType::Unisolate))
            && a.status == Some(ActionStatus::Succeeded)
    });
    match latest(succeeded) {
        None => Isolation::NeverIsolated,
        Some(a) if a.is(&ActionType::Isolate) => Isolation::Isolated(a),
        Some(a) => Isolation::Released(a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(id: &str, kind: &str, status: &str, created: &str) -> MachineAction {
        serde_json::from_value(serde_json::json!({
            "id": id, "type": kind, "status": status, "creationDateTimeUtc": created,
        }))
        .unwrap()
    }

    #[test]
    fn the_latest_action_is_the_newest_by_time_not_by_position_or_text() {
        // Seven fraction digits against three: compared as text, the older one would win.
        let older = action("older", "Isolate", "Succeeded", "2024-10-21T11:25:48.9000000Z");
        let newer = action("newer", "Isolate", "Succeeded", "2024-10-21T11:25:49.1Z");
        let undated: MachineAction = serde_json::from_value(serde_json::json!({"id": "undated"})).unwrap();
        let list = [newer.clone(), undated, older];
        assert_eq!(latest(&list).map(|a| a.id.as_str()), Some("newer"));
        assert_eq!(latest(&list[1..]).map(|a| a.id.as_str()), Some("older"));
        assert_eq!(latest(&[]), None);
    }

    #[test]
    fn isolation_is_decided_by_the_newest_isolate_or_unisolate_that_succeeded() {
        let isolate = action("i", "Isolate", "Succeeded", "2024-01-01T10:00:00Z");
        let release = action("u", "Unisolate", "Succeeded", "2024-01-01T11:00:00Z");
        let failed_release = action("uf", "Unisolate", "Failed", "2024-01-01T12:00:00Z");
        let scan = action("s", "RunAntiVirusScan", "Succeeded", "2024-01-01T13:00:00Z");
        let pending_isolate = action("ip", "Isolate", "Pending", "2024-01-01T14:00:00Z");
        let cancelled_release = action("uc", "Unisolate", "Cancelled", "2024-01-01T15:00:00Z");
        let running_release = action("ur", "Unisolate", "InProgress", "2024-01-01T16:00:00Z");
        let again = action("i2", "Isolate", "Succeeded", "2024-01-01T17:00:00Z");
        let cases: [(&str, Vec<&MachineAction>, Isolation); 8] = [
            ("no actions", vec![], Isolation::NeverIsolated),
            ("only a scan", vec![&scan], Isolation::NeverIsolated),
            ("an isolation still pending", vec![&pending_isolate], Isolation::NeverIsolated),
            ("isolated", vec![&isolate, &scan], Isolation::Isolated(&isolate)),
            ("released after, listed first", vec![&release, &isolate], Isolation::Released(&release)),
            (
                "failed, cancelled and running releases change nothing yet",
                vec![&isolate, &failed_release, &cancelled_release, &running_release],
                Isolation::Isolated(&isolate),
            ),
            (
                "released; isolating again is still pending",
                vec![&isolate, &release, &pending_isolate],
                Isolation::Released(&release),
            ),
            ("isolated again", vec![&isolate, &release, &again], Isolation::Isolated(&again)),
        ];
        for (name, actions, want) in cases {
            assert_eq!(isolation(actions), want, "{name}");
        }
    }

    #[test]
    fn an_action_carrying_a_release_marker_is_made_by_that_release_not_by_dualkeys_app() {
        let id = crate::domain::ReleaseId::new();
        let mut a = action("u", "Unisolate", "Succeeded", "2024-01-01T10:00:00Z");
        a.requestor = Some("dualkey release worker".into());
        assert_eq!(a.made_by(), "dualkey release worker");
        a.requestor_comment = Some(format!("{} Released by dualkey two-person rule.", id.marker()));
        assert_eq!(a.made_by(), format!("dualkey release {id}"));
    }
}
