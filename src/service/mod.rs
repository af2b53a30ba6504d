//! Use cases: each one is a single write transaction holding the change and its audit entry.
//! Handlers call these; these call `policy` for decisions and `db` for SQL.

pub mod device;
pub mod expiry;
pub mod policy;
pub mod releases;
pub mod request;
pub mod storage;
pub mod transition;
