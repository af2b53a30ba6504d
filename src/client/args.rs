//! The terminal client's command line: `login`, `logout`, `whoami` and `releases ...`, flattened
//! into the binary's own subcommands.

use clap::{Args, Subcommand, ValueEnum};

/// The client's subcommands, beside `serve` and the other daemon commands.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Sign in to a dualkey server with your organisation's account (device code flow) and
    /// store the tokens for later commands.
    Login {
        #[command(flatten)]
        conn: Connection,
    },
    /// Forget the stored sign-in for a server.
    Logout {
        #[command(flatten)]
        conn: Connection,
    },
    /// Show who you are signed in as on a server: principal, roles, when the token expires.
    Whoami {
        #[command(flatten)]
        conn: Connection,
    },
    /// Request, list, read, approve, reject and cancel releases on a dualkey server.
    Releases {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: ReleasesCommand,
    },
    /// Fetch a release's evidence bundle (auditor role), and verify one offline.
    Evidence {
        #[command(flatten)]
        conn: Connection,
        #[command(subcommand)]
        command: EvidenceCommand,
    },
}

/// `dualkey evidence ...`.
#[derive(Subcommand, Debug)]
pub enum EvidenceCommand {
    /// Fetch a release's evidence bundle: its audit entries, an inclusion proof for each, a
    /// signed checkpoint and the policy it was decided under.
    Get {
        /// The release id.
        id: String,
        /// An older checkpoint you kept: the bundle adds a consistency proof from it.
        #[arg(long, value_name = "OLD")]
        checkpoint: Option<std::path::PathBuf>,
        /// Where to write the bundle.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// Check a bundle offline (no server, no configuration) and tell the release's story;
    /// exit 1 naming what failed.
    Verify {
        /// The bundle.
        file: std::path::PathBuf,
        /// The log's verifier key (`NAME+id+key`), or a file holding it.
        #[arg(long, value_name = "VERIFIER_KEY")]
        key: String,
        /// An older checkpoint you kept: also check that the log only grew since.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<std::path::PathBuf>,
    },
}

/// Which server to talk to and how to print its answers; accepted before or after the
/// `releases` subcommand.
#[derive(Args, Debug, Clone)]
pub struct Connection {
    /// The dualkey server's URL, e.g. `https://dualkey.example.com` (default: the server of
    /// your latest `dualkey login`).
    #[arg(long, env = "DUALKEY_SERVER", value_name = "URL", global = true)]
    pub server: Option<String>,
    /// `table` for people, `json` for scripts (only the API's JSON on stdout).
    #[arg(long, value_enum, default_value_t = Output::Table, global = true)]
    pub output: Output,
}

/// How answers are printed on stdout.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A readable table or list.
    Table,
    /// The API's JSON, pretty-printed, and nothing else.
    Json,
}

/// `dualkey releases ...`.
#[derive(Subcommand, Debug)]
pub enum ReleasesCommand {
    /// List releases, newest first.
    List {
        /// Only releases with this status (pending, approved, succeeded, ...).
        #[arg(long, value_name = "S")]
        status: Option<String>,
        /// Only pending releases you may approve (or ratify) now.
        #[arg(long, conflicts_with_all = ["status", "mine"])]
        waiting_for_me: bool,
        /// Only releases you requested.
        #[arg(long)]
        mine: bool,
        /// At most this many (1..200).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=200))]
        limit: u16,
    },
    /// Show one release: device, rule and slots, approvals, MDE action.
    Show {
        /// The release id.
        id: String,
    },
    /// Ask for a device to be released from isolation; prints the new release's id.
    Request {
        /// The MDE machine id (40 hexadecimal characters).
        machine: String,
        /// Why the device may be released (reimaged, scanned clean, ...).
        #[arg(long)]
        comment: String,
        /// A ticket or incident reference.
        #[arg(long)]
        ticket: Option<String>,
        /// Release at once under the break-glass rule (needs its role; must be ratified later).
        #[arg(long)]
        break_glass: bool,
    },
    /// Approve a release someone else requested.
    Approve {
        /// The release id.
        id: String,
        /// An optional note recorded with the approval.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a release someone else requested (final).
    Reject {
        /// The release id.
        id: String,
        /// Why it is rejected (required).
        #[arg(long)]
        comment: String,
    },
    /// Cancel your own pending release.
    Cancel {
        /// The release id.
        id: String,
    },
}
