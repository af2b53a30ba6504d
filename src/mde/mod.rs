//! The Defender for Endpoint client and simulator.
