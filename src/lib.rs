//! dualkey: a two-person rule in front of releasing devices from isolation in
//! Microsoft Defender for Endpoint.

pub mod mde;
pub mod secret;
