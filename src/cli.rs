//! The command line: `serve`, `migrate`, `token`, `audit verify`, and the terminal client's
//! `login`, `whoami`, `releases ...` (in [`crate::client`]).

use crate::clock::{Clock, SystemClock};
use crate::mde::MdeCredential;
use crate::mde::simulator::{Simulator, SimulatorConfig, SimulatorHandle};
use crate::settings::{self, Settings};
use crate::startup::{Application, shutdown_signal};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(
    name = "dualkey",
    version,
    about = "Two-person rule for releasing devices from isolation in Microsoft Defender for Endpoint"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct ConfigArg {
    /// TOML settings file (default: config/default.toml, or its embedded copy).
    #[arg(long, value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the daemon.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Development setup: prints ready-to-use tokens. Never use in production.
        #[arg(long)]
        dev: bool,
    },
    /// Apply database migrations and exit.
    Migrate {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Mint an HS256 token from the configured secret (development and scripts).
    Token {
        #[command(flatten)]
        config: ConfigArg,
        /// The principal (written to the configured principal claim).
        #[arg(long)]
        sub: String,
        /// A role to grant; repeat for several.
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// How long the token is valid.
        #[arg(long, default_value = "1h")]
        ttl: settings::HumanDuration,
    },
    /// Measure commit throughput and approval-to-MDE latency on this machine (prints figures).
    Bench {
        /// Releases created and approved through the API.
        #[arg(long, default_value_t = 2000)]
        releases: usize,
        /// Concurrent API clients.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Releases whose approval-to-MDE latency is measured (at most 100: MDE's minute limit).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=100))]
        latency_samples: u16,
        /// Run the API load for this long (e.g. `60s`) instead of a fixed count; `--releases`
        /// is then the most releases it may make (one isolated device each).
        #[arg(long)]
        duration: Option<settings::HumanDuration>,
    },
    /// Run the MDE simulator alone (for pointing a staging daemon at it).
    Simulator {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8089")]
        bind: String,
    },
    /// Release policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Audit trail tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    #[command(flatten)]
    Client(crate::client::ClientCommand),
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate `[policy]` and print its rules in plain words and its hash; exit 1 if invalid.
    Check {
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Recompute the hash chain; exit 0 when intact, 1 naming the first bad entry otherwise.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
    },
}

fn load_settings(config: &ConfigArg) -> anyhow::Result<Settings> {
    Ok(settings::load(config.config.as_deref(), std::env::vars())?)
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config, dev } => serve(load_settings(&config)?, config.config, dev).await,
        Command::Migrate { config } => {
            let settings = load_settings(&config)?;
            let db = crate::db::Db::connect(&settings.database).await.context("opening the database")?;
            db.migrate().await.context("applying migrations")?;
            db.close().await;
            println!("migrations applied to {}", settings.database.url);
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulator { bind } => run_simulator(&bind).await,
        Command::Client(command) => Ok(crate::client::run(command).await),
        Command::Policy { command: PolicyCommand::Check { config } } => {
            let settings = load_settings(&config)?;
            let policy = settings.policy.validate(&settings.auth.approver_role)?;
            println!("{}", policy.describe());
            println!("policy hash: {}", policy.hash());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { releases, concurrency, latency_samples, duration } => {
            let opts = crate::bench::BenchOptions {
                releases: releases.max(1),
                concurrency: concurrency.max(1),
                latency_samples: latency_samples as usize,
                duration: duration.map(|d| d.get()),
            };
            let sound = crate::bench::run(opts).await?;
            Ok(if sound { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Token { config, sub, roles, ttl } => {
            let settings = load_settings(&config)?;
            let token =
                crate::auth::mint_hs256(&settings.auth, &sub, &roles, ttl.get(), SystemClock.now().to_datetime())?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit { command: AuditCommand::Verify { config } } => {
            let settings = load_settings(&config)?;
            let db = crate::db::Db::connect(&settings.database).await.context("opening the database")?;
            let report = crate::audit::verify_db(&db).await.context("reading the audit log")?;
            db.close().await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            match report {
                crate::audit::VerifyReport::Intact { entries, head, .. } => {
                    eprintln!("audit chain intact: {entries} entries, head {head}");
                    Ok(ExitCode::SUCCESS)
                }
                crate::audit::VerifyReport::Broken { first_bad_seq, reason, message, .. } => {
                    eprintln!("audit chain BROKEN at entry {first_bad_seq} ({reason}): {message}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

async fn serve(mut settings: Settings, config: Option<PathBuf>, dev: bool) -> anyhow::Result<ExitCode> {
    if dev && settings.auth.hs256_secret.is_none() {
        // Only what --dev needs: a secret to sign the printed tokens with, for this run only.
        let bytes: [u8; 32] = rand::random();
        settings.auth.hs256_secret = Some(crate::secret::Secret::new(hex::encode(bytes)));
    }
    if settings.auth.hs256_secret.as_ref().is_some_and(|s| s.expose() == settings::WELL_KNOWN_DEV_SECRET) {
        tracing::warn!("auth.hs256_secret is the public development secret; anyone can mint tokens. Set your own.");
    }
    // The simulator lives as long as the daemon: dropping the handle stops it.
    let simulator = if dev { Some(start_dev_simulator(&mut settings).await?) } else { None };
    let app = Application::build(settings, Arc::new(SystemClock)).await?.reload_policy_on_sighup(config);
    if let Some(sim) = &simulator {
        print_dev_banner(&app, sim)?;
    }
    app.run_until_stopped(shutdown_signal()).await?;
    if let Some(sim) = simulator {
        sim.shutdown().await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts the MDE simulator on a free loopback port and points `[mde]` at it: the one thing
/// `--dev` must change for releases to go end to end on a laptop.
async fn start_dev_simulator(settings: &mut Settings) -> anyhow::Result<SimulatorHandle> {
    let config = SimulatorConfig {
        pending_for: std::time::Duration::from_secs(2),
        in_progress_for: std::time::Duration::from_secs(3),
        ..SimulatorConfig::default()
    };
    let sim = Simulator::start(config).await.context("starting the MDE simulator")?;
    let client = sim.client_config().context("the simulator has no client secret")?;
    let m = &mut settings.mde;
    m.cloud = None;
    m.tenant_id = None;
    m.api_base = Some(client.api_base);
    m.token_url = Some(client.token_url);
    m.scope = Some(client.scope);
    m.client_id = Some(client.client_id);
    m.client_secret = match client.credential {
        MdeCredential::ClientSecret(s) => Some(s),
        MdeCredential::Certificate { .. } => None,
    };
    (m.client_secret_file, m.certificate, m.certificate_file, m.private_key, m.private_key_file) =
        (None, None, None, None, None);
    m.worker_enabled = true;
    m.poll_interval = "1s".parse().map_err(anyhow::Error::msg)?;
    Ok(sim)
}

async fn run_simulator(bind: &str) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("binding {bind}"))?;
    let base = format!("http://{}", listener.local_addr()?);
    let config = SimulatorConfig::default();
    let client = config.client_config(&base).context("the simulator has no client secret")?;
    println!("MDE simulator on {base}. Point a daemon at it with:");
    println!("  DUALKEY_MDE__API_BASE={}", client.api_base);
    println!("  DUALKEY_MDE__TOKEN_URL={}", client.token_url);
    println!("  DUALKEY_MDE__SCOPE={}", client.scope);
    println!("  DUALKEY_MDE__CLIENT_ID={}", client.client_id);
    println!("  DUALKEY_MDE__CLIENT_SECRET={}", crate::mde::simulator::DEV_CLIENT_SECRET);
    // config/default.toml turns the worker off; without this the daemon never releases anything.
    println!("  DUALKEY_MDE__WORKER_ENABLED=true");
    println!("Isolated machines:");
    for m in &config.machines {
        println!("  {}  {}", m.id, m.computer_dns_name);
    }
    crate::mde::simulator::run(config, listener).await.context("serving the simulator")?;
    Ok(ExitCode::SUCCESS)
}

fn print_dev_banner(app: &Application, sim: &SimulatorHandle) -> anyhow::Result<()> {
    let s = &app.state().settings;
    let a = &s.auth;
    let ttl = std::time::Duration::from_secs(12 * 3600);
    let now = SystemClock.now().to_datetime();
    let mint = |sub: &str, role: &str| crate::auth::mint_hs256(a, sub, &[role.to_string()], ttl, now);
    let (requester, approver, auditor) =
        (mint("alice", &a.requester_role)?, mint("bob", &a.approver_role)?, mint("audrey", &a.auditor_role)?);
    let machines: String =
        sim.config().machines.iter().map(|m| format!("    {}  {}\n", m.id, m.computer_dns_name)).collect();
    let line = "=".repeat(78);
    // One locked write; a closed stdout (the reader went away) must not take the daemon down.
    let _ = writeln!(
        std::io::stdout().lock(),
        "{line}\n  DEVELOPMENT SETUP -- NOT FOR PRODUCTION\n  dualkey is running with --dev: the tokens below are valid for 12 hours and\n  anyone holding them can request, approve and read releases.\n{line}\n\n  API:       http://{addr}/api/v1\n  Database:  {db}\n  MDE:       simulator at {mde} (no real tenant is touched)\n\n  Isolated machines in the simulator:\n{machines}\n  Requester (alice, {rr}):\n    export REQUESTER_TOKEN={requester}\n\n  Approver (bob, {ar}):\n    export APPROVER_TOKEN={approver}\n\n  Auditor (audrey, {au}):\n    export AUDITOR_TOKEN={auditor}\n\n{line}",
        addr = app.local_addr(),
        db = s.database.url,
        mde = sim.base_url(),
        rr = a.requester_role,
        ar = a.approver_role,
        au = a.auditor_role,
    );
    Ok(())
}
