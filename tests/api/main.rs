//! Integration tests: the real daemon over real HTTP, with its own SQLite file and real JWTs.

mod approvals;
mod audit;
mod auth;
mod bad_input;
mod bodies;
mod break_glass;
mod cli;
mod concurrency;
mod connections;
mod console;
mod console_support;
mod crash;
mod devidp;
mod duties;
mod health;
mod helpers;
mod identities;
mod invisible_text;
mod isolation;
mod log_injection;
mod policy;
mod reading;
mod recheck;
mod releases;
mod storage;
mod worker;
