//! What several replicas on one PostgreSQL database share beyond the rows themselves: the
//! wake-ups a commit sends the other replicas ([`wake`]).

pub(crate) mod budget;
pub(crate) mod wake;
