//! Use cases: each one is a single write transaction holding the change and its audit entry.
//! Handlers call these; these call `decide` for decisions and `db` for SQL.

pub(crate) mod batch;
pub(crate) mod bypass;
pub(crate) mod checkpoint;
pub(crate) mod device;
pub(crate) mod evidence;
pub(crate) mod expiry;
pub(crate) mod export;
pub(crate) mod policy;
pub(crate) mod reading;
pub(crate) mod releases;
pub(crate) mod request;
pub(crate) mod storage;
pub(crate) mod transition;
mod velocity;
