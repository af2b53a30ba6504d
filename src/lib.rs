//! dualkey: a two-person rule in front of releasing devices from isolation in
//! Microsoft Defender for Endpoint.
//!
//! The public modules are what the binary and the integration tests use; everything else is
//! crate-private, and `unreachable_pub` keeps `pub` for what is really exported.

#![warn(unreachable_pub)]

pub mod audit;
mod auth;
mod bench;
pub mod canonical;
pub mod cli;
pub mod client;
pub mod clock;
mod db;
mod decide;
mod dev;
pub mod domain;
mod duration;
mod error;
pub mod fleet;
mod forward;
mod html;
mod jcs;
mod lenient;
pub mod logsafe;
pub mod mde;
mod metrics;
mod net;
mod notify;
mod offline;
mod person;
mod replica;
mod report;
mod request_id;
mod routes;
pub mod rules;
pub mod secret;
mod server;
mod service;
pub mod settings;
pub mod startup;
mod state;
mod tasks;
pub mod telemetry;
mod tlog;
mod views;
pub mod worker;

#[cfg(test)]
mod module_graph_tests;
