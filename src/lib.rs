//! dualkey: a two-person rule in front of releasing devices from isolation in
//! Microsoft Defender for Endpoint.

pub mod audit;
pub mod auth;
pub mod bench;
pub mod canonical;
pub mod cli;
pub mod clock;
pub mod db;
pub mod decide;
pub mod domain;
pub mod duration;
pub mod error;
pub mod lenient;
pub mod logsafe;
pub mod mde;
pub mod person;
pub mod routes;
pub mod rules;
pub mod secret;
pub mod server;
pub mod service;
pub mod settings;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod worker;

#[cfg(test)]
mod module_graph_tests;
