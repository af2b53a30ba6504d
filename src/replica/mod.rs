//! What several replicas on one PostgreSQL database share beyond the rows themselves: the
//! wake-ups a commit sends the other replicas ([`wake`]) and who runs each periodic job
//! ([`jobs`]).

pub(crate) mod jobs;
pub(crate) mod wake;
