//! Reading a device from MDE when a release is requested: what the policy matches on, whether
//! it is isolated at all, and who isolated it. Called outside any transaction (it is a network
//! call).

use crate::domain::MachineId;
use crate::error::ApiError;
use crate::mde::{ActionStatus, ActionType, Isolation, MdeClient, MdeError, isolation, latest};
use crate::rules::DeviceSnapshot;

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
    ApiError::unavailable(
        "mde_unavailable",
        "Defender for Endpoint could not be asked about this device; try again (nothing was stored)",
        e,
    )
}

/// Reads the device and its actions (two MDE calls). An unknown machine is 422
/// `unknown_machine`; any other failure is 503 `mde_unavailable`, never a guess from missing
/// data. Whether it is isolated is what its newest Isolate or Unisolate says
/// ([`crate::mde::isolation`]).
pub(crate) async fn read(mde: Option<&MdeClient>, machine: &MachineId) -> Result<Device, ApiError> {
    let mde = mde.ok_or_else(|| {
        ApiError::unavailable(
            "mde_not_configured",
            "this dualkey has no Defender for Endpoint connection ([mde]), so it cannot check the device",
            anyhow::anyhow!("[mde] is not configured"),
        )
    })?;
    let m = match mde.get_machine(machine.as_str()).await {
        Ok(m) => m,
        Err(e) if e.status() == Some(404) => {
            return Err(ApiError::unprocessable(
                "unknown_machine",
                format!("Defender for Endpoint has no machine {machine}"),
            ));
        }
        Err(e) => return Err(unavailable(e)),
    };
    let actions = mde.list_machine_actions(machine.as_str()).await.map_err(unavailable)?;
    let released = match isolation(&actions) {
        Isolation::Isolated(i) => {
            let facts = DeviceFacts { device: m.snapshot(machine), isolated_by: i.requestor.clone() };
            return Ok(Device::Isolated(facts));
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
    Ok(Device::NotIsolated(format!("machine {machine} is not isolated: {released}{next}")))
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

/// What MDE says of each of `ids`, in the order given (duplicates are the caller's to drop).
/// Network calls, outside any transaction. An MDE that cannot be asked is 503
/// `mde_unavailable` (or `mde_busy` when its budget would make the caller wait), and then
/// nothing may be stored.
///
/// INTERFACE STUB: one device read per id; replaced by the device cache (bulk reads).
pub(crate) async fn read_many(
    state: &crate::state::AppState,
    ids: &[MachineId],
) -> Result<Vec<(MachineId, Known)>, ApiError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let known = match read(state.mde.as_deref(), id).await {
            Ok(d) => Known::Device(d),
            Err(e) if e.code == "unknown_machine" => Known::Unknown,
            Err(e) => return Err(e),
        };
        out.push((id.clone(), known));
    }
    Ok(out)
}

/// Every device MDE shows isolated now that `selector` matches, with its facts.
///
/// INTERFACE STUB: needs the device cache; refuses until it exists.
pub(crate) async fn isolated_matching(
    _state: &crate::state::AppState,
    _selector: &Selector,
) -> Result<Vec<(MachineId, DeviceFacts)>, ApiError> {
    Err(ApiError::unavailable(
        "mde_unavailable",
        "selecting devices needs the device cache",
        anyhow::anyhow!("device cache not built yet"),
    ))
}
