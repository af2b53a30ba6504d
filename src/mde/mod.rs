//! The Defender for Endpoint client and simulator.
//!
//! Built from the facts in MDE_API.md: the client speaks to the real API (and to the
//! simulator, which reproduces its routes, bodies, limits and faults over real HTTP).

pub mod actions;
pub mod client;
mod config;
pub mod error;
pub mod ledger;
mod limiter;
mod query;
pub mod rate;
pub mod simulator;
mod stats;
pub mod token;
pub mod types;

pub use actions::{Isolation, isolation, latest};
pub use client::{MdeClient, MdeClientConfig};
pub use error::{MdeError, TransportKind};
pub use ledger::{Crowding, Ledger, LedgerError, Outlook, Reservation};
pub use limiter::{NotTaken, RateLimiter};
pub use query::{ActionQuery, Cmp, MachineQuery, Wait};
/// How MDE writes a date-time (`2024-10-21T11:25:48.3308187Z`) and a query value, for answers
/// in its shape.
pub(crate) use query::{odata_datetime, percent_encode};
pub use rate::{Api, Limits, RollingWindow, Share};
pub use stats::{CallCode, CallStats, Reachability};
pub use token::{MdeCredential, TokenHealth};
pub use types::{ActionStatus, ActionType, IsolationType, Machine, MachineAction, MdeErrorBody};
