//! `[compat]`: answering other products' APIs, so that callers written for them go through
//! dualkey unchanged.

use crate::lenient::lenient_bool;
use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompatSettings {
    /// Serve Defender for Endpoint's own routes (`POST /api/machines/{id}/unisolate`,
    /// `GET /api/machineactions[/{id}]`) in MDE's shapes; off: those paths are 404 `not_found`.
    #[serde(deserialize_with = "lenient_bool")]
    pub mde_routes: bool,
}

#[cfg(test)]
mod tests {
    use crate::settings::{EMBEDDED_DEFAULT, load_from_str};

    #[test]
    fn the_mde_routes_are_off_unless_asked_for() {
        let off = load_from_str(EMBEDDED_DEFAULT, "test", []).unwrap();
        assert!(!off.compat.mde_routes);
        let on = load_from_str(EMBEDDED_DEFAULT, "test", [("DUALKEY_COMPAT__MDE_ROUTES".into(), "true".into())]);
        assert!(on.unwrap().compat.mde_routes);
    }
}
