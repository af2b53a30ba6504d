//! Reading a device from MDE when a release is requested: what the policy matches on, and who
//! isolated it. Called outside any transaction (it is a network call).

use crate::domain::MachineId;
use crate::error::ApiError;
use crate::mde::{ActionType, MdeClient, MdeError};
use crate::rules::DeviceSnapshot;

/// The device as MDE describes it, and the requestor of its latest Isolate action.
#[derive(Debug, Clone)]
pub struct DeviceFacts {
    pub device: DeviceSnapshot,
    pub isolated_by: Option<String>,
}

fn unavailable(e: MdeError) -> ApiError {
    ApiError::unavailable(
        "mde_unavailable",
        "Defender for Endpoint could not be asked about this device; try again (nothing was stored)",
        e,
    )
}

/// Reads the device and its latest Isolate action. An unknown machine is 422 `unknown_machine`;
/// any other failure is 503 `mde_unavailable`, never a guess from missing data.
pub async fn read(mde: Option<&MdeClient>, machine: &MachineId) -> Result<DeviceFacts, ApiError> {
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
    let isolations = mde.list_actions(machine.as_str(), &ActionType::Isolate).await.map_err(unavailable)?;
    let isolated_by =
        isolations.into_iter().max_by(|a, b| a.created_at().cmp(&b.created_at())).and_then(|a| a.requestor);
    Ok(DeviceFacts {
        device: DeviceSnapshot {
            id: machine.as_str().to_string(),
            computer_dns_name: m.computer_dns_name,
            rbac_group_name: m.rbac_group_name,
            machine_tags: m.machine_tags.unwrap_or_default(),
            risk_score: m.risk_score,
            health_status: m.health_status,
        },
        isolated_by,
    })
}
