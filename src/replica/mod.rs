//! What several replicas on one database share beyond the rows themselves: the MDE budget
//! ([`budget`]), the wake-ups a commit sends the other replicas ([`wake`]) and who runs each
//! periodic job ([`jobs`]).

pub(crate) mod budget;
pub(crate) mod jobs;
pub(crate) mod wake;
