//! The terminal client: `dualkey login|logout|whoami` and `dualkey releases ...`, talking to a
//! dualkey server over its REST API with a token from the organisation's identity provider.
//!
//! - [`args`]: the command line.
//! - `credentials`: the 0600 file of sign-ins, keyed by server.
//! - `oidc` and `device`: `client-config`, discovery, the device code flow, refreshes.
//! - `session`: which server and bearer a command uses, and the one silent refresh.
//! - `commands`: what each subcommand does; `release`, `output` and `identity`: what people read.
//!
//! Stdout carries only the answer (an id, a table, or JSON with `--output json`); prompts,
//! progress and errors go to stderr. Tokens are never printed or logged.

mod args;
mod commands;
mod credentials;
mod device;
mod evidence;
mod identity;
mod oidc;
mod output;
mod release;
mod session;

pub use args::{ClientCommand, Connection, EvidenceCommand, Output, ReleasesCommand};

use crate::clock::Timestamp;
use std::process::ExitCode;

/// Runs one client command; prints what went wrong on stderr and returns the exit code: 0 on
/// success, 1 when the server, the identity provider or the credentials file refused, 2 for a
/// usage mistake (no server known, a malformed URL).
pub async fn run(command: ClientCommand) -> ExitCode {
    match commands::run(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

/// Why a client command failed. `Display` is what the person reads; it never holds a token.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum ClientError {
    /// The dualkey server answered with its error object.
    #[error("{code}: {message} (HTTP {status})")]
    Api { status: u16, code: String, message: String },
    /// The command line (or environment) does not say enough, or says it wrongly.
    #[error("{0}")]
    Usage(String),
    /// Anything else: the identity provider, the network, the credentials file.
    #[error("{0}")]
    Other(String),
}

impl ClientError {
    pub(crate) fn other(message: impl Into<String>) -> Self {
        Self::Other(message.into())
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Usage(_) => ExitCode::from(2),
            Self::Api { .. } | Self::Other(_) => ExitCode::FAILURE,
        }
    }
}

/// An RFC 3339 time as the API and the credentials file write it.
pub(crate) fn parse_time(text: &str) -> Option<Timestamp> {
    Timestamp::parse_rfc3339(text)
}
