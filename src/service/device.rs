//! Reading a device from MDE when a release is requested: what the policy matches on, whether
//! it is isolated at all, and who isolated it. Called outside any transaction (it is a network
//! call).

use crate::domain::MachineId;
use crate::error::ApiError;
use crate::fleet::{Fleet, view};
use crate::mde::{ActionStatus, ActionType, Isolation, MdeError, Wait, isolation, latest};
use crate::rules::DeviceSnapshot;
use crate::state::AppState;

/// An isolated device as MDE describes it, and the requestor of the Isolate that isolated it.
#[derive(Debug, Clone)]
pub(crate) struct DeviceFacts {
    pub device: DeviceSnapshot,
    pub isolated_by: Option<String>,
}

/// What reading the device found.
#[derive(Debug, Clone)]
pub(crate) enum Device {
    /// Isolated: a release may be requested.
    Isolated(DeviceFacts),
    /// Not isolated, so there is nothing to release; the text says why, for the requester.
    NotIsolated(String),
}

fn unavailable(e: MdeError) -> ApiError {
    // The read could not be counted in the budget the replicas share: the database failed, not MDE.
    if matches!(e, MdeError::Unaccounted { .. }) {
        return ApiError::unavailable(
            "storage_unavailable",
            "the database cannot be reached or written now, so the device cannot be read within the shared MDE \
             budget; nothing was stored; try again later",
            e,
        );
    }
    // Spent budget (ours or MDE's 429): say when to come back instead of making the caller wait.
    if matches!(e, MdeError::Busy { .. }) || e.status() == Some(429) {
        let secs = e.retry_after().map_or(60, |d| d.as_secs_f64().ceil().max(1.0) as u64);
        return ApiError::unavailable(
            "mde_busy",
            format!(
                "Defender for Endpoint's rate budget for reading devices is spent; try again in {secs} s (nothing was stored)"
            ),
            e,
        )
        .with_retry_after(secs);
    }
    ApiError::unavailable(
        "mde_unavailable",
        "Defender for Endpoint could not be asked about this device; try again (nothing was stored)",
        e,
    )
}

fn fleet(state: &AppState) -> Result<&Fleet, ApiError> {
    state.fleet.as_deref().ok_or_else(|| {
        ApiError::unavailable(
            "mde_not_configured",
            "this dualkey has no Defender for Endpoint connection ([mde]), so it cannot check the device",
            anyhow::anyhow!("[mde] is not configured"),
        )
    })
}

/// How long an API request may wait for MDE's budget.
fn request_wait(fleet: &Fleet) -> Wait {
    Wait::AtMost(fleet.config().request_wait)
}

/// Reads the device and its actions: from the view when its facts are no older than
/// `[mde] device_max_age`, else from MDE (two calls, waiting at most `[mde] request_wait` for
/// the budget). An unknown machine is 422 `unknown_machine`; a spent budget is 503 `mde_busy`
/// with `Retry-After`; any other failure is 503 `mde_unavailable`, never a guess from missing
/// data. Whether it is isolated is what its newest Isolate or Unisolate says
/// ([`crate::mde::isolation`]).
///
/// Cached facts are trusted only to let a request through (the worker re-checks before it
/// sends): ones that would refuse it (not isolated, unknown) are read again from MDE, so a
/// device isolated a moment ago is never refused on a stale view.
pub(crate) async fn read(state: &AppState, machine: &MachineId) -> Result<Device, ApiError> {
    let fleet = fleet(state)?;
    if let Some(Some(device @ Device::Isolated(_))) = fleet.cached(machine.as_str()).map(|f| judge(machine, f)) {
        return Ok(device);
    }
    let facts = fleet.read_device(machine.as_str(), request_wait(fleet)).await.map_err(unavailable)?;
    judge(machine, facts).ok_or_else(|| unknown(machine))
}

fn unknown(machine: &MachineId) -> ApiError {
    ApiError::unprocessable("unknown_machine", format!("Defender for Endpoint has no machine {machine}"))
}

/// What the view's facts say of the device; `None` when MDE has no such machine.
fn judge(machine: &MachineId, facts: view::DeviceFacts) -> Option<Device> {
    let m = facts.machine?;
    let actions = facts.actions;
    let released = match isolation(&actions) {
        Isolation::Isolated(i) => {
            let facts = DeviceFacts { device: m.snapshot(machine), isolated_by: i.requestor.clone() };
            return Some(Device::Isolated(facts));
        }
        Isolation::NeverIsolated => "Defender for Endpoint shows no isolation of it".to_string(),
        Isolation::Released(u) => format!(
            "it was released by {} at {} (MDE action {})",
            u.made_by(),
            u.creation_date_time_utc.as_deref().unwrap_or("an unknown time"),
            u.id
        ),
    };
    let running = latest(
        actions.iter().filter(|a| a.is(&ActionType::Isolate) && a.status.as_ref().is_some_and(ActionStatus::is_active)),
    );
    let next = match running {
        Some(i) => format!(
            "; an Isolate by {} is still running (MDE action {}): ask again once it has finished",
            i.made_by(),
            i.id
        ),
        None => ", so there is nothing to release".to_string(),
    };
    Some(Device::NotIsolated(format!("machine {machine} is not isolated: {released}{next}")))
}

/// What dualkey knows of one device asked for in a batch.
#[derive(Debug, Clone)]
pub(crate) enum Known {
    /// MDE has no such machine.
    Unknown,
    /// The device as read (isolated or not).
    Device(Device),
}

/// A batch selector: every device currently isolated whose RBAC group (by name, as in policy
/// rules) or any of whose tags is listed. Any listed value under any key matches, as in a
/// policy rule's `match`; values compare without case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selector {
    pub rbac_groups: Vec<String>,
    pub tags: Vec<String>,
}

/// What MDE says of each of `ids`, in the order given (duplicates are the caller's to drop),
/// from the view, refreshed in bulk first when it is older than `[mde] device_max_age` (one
/// call per page of each list, whatever the number of ids). Network calls, outside any
/// transaction. A spent budget is 503 `mde_busy`, another failure 503 `mde_unavailable`, and
/// then nothing may be stored.
pub(crate) async fn read_many(state: &AppState, ids: &[MachineId]) -> Result<Vec<(MachineId, Known)>, ApiError> {
    let names: Vec<&str> = ids.iter().map(MachineId::as_str).collect();
    let fleet = fleet(state)?;
    let facts = fleet.devices(&names, request_wait(fleet)).await.map_err(unavailable)?;
    Ok(ids
        .iter()
        .zip(facts)
        .map(|(id, f)| {
            let known = judge(id, f).map_or(Known::Unknown, Known::Device);
            (id.clone(), known)
        })
        .collect())
}

/// Every device MDE shows isolated now that `selector` matches, with its facts, in the order
/// of MDE's device list: group names and tags compare without case, any listed value under any
/// key matches.
pub(crate) async fn isolated_matching(
    state: &AppState,
    selector: &Selector,
) -> Result<Vec<(MachineId, DeviceFacts)>, ApiError> {
    let fleet = fleet(state)?;
    let all = fleet.all_devices(request_wait(fleet)).await.map_err(unavailable)?;
    let wanted = |list: &[String], v: &str| list.iter().any(|w| w.trim().eq_ignore_ascii_case(v.trim()));
    let mut out = Vec::new();
    for f in all {
        let Some(m) = &f.machine else { continue };
        let group = m.rbac_group_name.as_deref().is_some_and(|g| wanted(&selector.rbac_groups, g));
        let tag = m.machine_tags.iter().flatten().any(|t| wanted(&selector.tags, t));
        if !(group || tag) {
            continue;
        }
        // Ids MDE lists are 40 hex characters; anything else is skipped rather than guessed at.
        let Ok(id) = MachineId::parse(&m.id) else { continue };
        if let Some(Device::Isolated(facts)) = judge(&id, f) {
            out.push((id, facts));
        }
    }
    Ok(out)
}
