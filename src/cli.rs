//! The command line: `serve`, `migrate`, `token`, `audit verify`, `db copy`, `backup`, `restore`,
//! and the terminal client's `login`, `whoami`, `releases ...` (in [`crate::client`]).

use crate::clock::{Clock, SystemClock};
use crate::mde::simulator::SimulatorConfig;
use crate::settings::{self, Settings};
use crate::startup::{Application, shutdown_signal};
use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

pub(crate) mod audit;
pub(crate) mod backup;
pub(crate) mod db;

pub use audit::AuditCommand;
pub use db::DbCommand;

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
        /// Grow a signed log to this many entries and time a checkpoint, an inclusion proof and
        /// the offline verification of its whole export (0 skips it).
        #[arg(long, default_value_t = 1_000_000)]
        log_entries: u64,
        /// Instead of the figures above: release this many isolated devices (2 to 1000) as one
        /// batch approved once, and print MDE calls per device, the unisolate rate against the
        /// budget, 429s and the API's latency while it drains (about a minute).
        #[arg(long, default_value_t = 0)]
        mass: usize,
        /// Run on this PostgreSQL database (each phase in a fresh schema, dropped afterwards)
        /// instead of SQLite files in a temporary directory.
        #[arg(long, value_name = "URL")]
        database: Option<String>,
        /// Daemons serving the API load, all on the one database (clients round-robin).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
        replicas: u16,
    },
    /// Run the MDE simulator alone (for pointing a staging daemon at it).
    Simulator {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8089")]
        bind: String,
        /// Also serve this many generated isolated machines (ws-0001.contoso.com, ...).
        #[arg(long, default_value_t = 0, value_name = "N")]
        fleet: usize,
        /// Calls allowed per API in any rolling minute (MDE: 100).
        #[arg(long, value_name = "N")]
        rate_per_minute: Option<u32>,
        /// Calls allowed per API in any rolling hour (MDE: 1500).
        #[arg(long, value_name = "N")]
        rate_per_hour: Option<u32>,
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
    /// A consistent copy of the SQLite database, taken while the daemon runs: written beside
    /// FILE, synced, verified (audit chain and tree), then renamed to FILE. PostgreSQL: use pg_dump.
    Backup {
        #[command(flatten)]
        config: ConfigArg,
        /// Where to write the copy (a plain SQLite file, mode 0600).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Put a backup in place of the SQLite database `database.url` names, with no daemon
    /// running: refuses a copy whose audit chain or tree does not verify, refuses while a daemon
    /// holds the database, and replaces an existing one only with --force.
    Restore {
        #[command(flatten)]
        config: ConfigArg,
        /// The backup (`dualkey backup --out FILE`).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// Replace an existing (idle) database.
        #[arg(long)]
        force: bool,
    },
    /// Database tools.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
    /// The separation-of-duties report: one row per release requested in [--from, --to).
    Report {
        #[command(flatten)]
        config: ConfigArg,
        #[command(flatten)]
        args: crate::report::ReportArgs,
    },
    /// Notification tools.
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
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
pub enum NotifyCommand {
    /// Send a test message to a `[[notify.channels]]` channel; print the receiver's answer;
    /// exit 0 only when it was accepted.
    Test {
        #[command(flatten)]
        config: ConfigArg,
        /// The channel's name.
        channel: String,
    },
}

/// Loads the settings and installs logging as their `[log]` says (the first load wins).
pub(crate) fn load_settings(config: &ConfigArg) -> anyhow::Result<Settings> {
    let settings = settings::load(config.config.as_deref(), std::env::vars())?;
    crate::telemetry::init(&settings.log);
    Ok(settings)
}

/// Whether `command` reads the settings, and so installs logging from their `[log]`. The
/// others log with the defaults.
fn reads_settings(command: &Command) -> bool {
    match command {
        Command::Serve { .. }
        | Command::Migrate { .. }
        | Command::Token { .. }
        | Command::Policy { .. }
        | Command::Report { .. }
        | Command::Notify { .. }
        | Command::Backup { .. }
        | Command::Restore { .. } => true,
        Command::Audit { command } => audit::reads_settings(command),
        Command::Bench { .. } | Command::Simulator { .. } | Command::Db { .. } | Command::Client(_) => false,
    }
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if !reads_settings(&cli.command) {
        crate::telemetry::init_default();
    }
    match cli.command {
        Command::Serve { config, dev } => serve(load_settings(&config)?, config.config, dev).await,
        Command::Migrate { config } => {
            let settings = load_settings(&config)?;
            let db = crate::db::Db::connect(&settings.database).await.context("opening the database")?;
            db.migrate().await.context("applying migrations")?;
            db.close().await;
            println!("migrations applied to {}", settings.database.redacted_url());
            Ok(ExitCode::SUCCESS)
        }
        Command::Simulator { bind, fleet, rate_per_minute, rate_per_hour } => {
            run_simulator(&bind, fleet, rate_per_minute, rate_per_hour).await
        }
        Command::Client(command) => Ok(crate::client::run(command).await),
        Command::Policy { command: PolicyCommand::Check { config } } => {
            let settings = load_settings(&config)?;
            let policy = settings.policy.validate(&settings.auth.approver_role)?;
            println!("{}", policy.describe());
            println!("policy hash: {}", policy.hash());
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { releases, concurrency, latency_samples, duration, log_entries, mass, database, replicas } => {
            let opts = crate::bench::BenchOptions {
                releases: releases.max(1),
                concurrency: concurrency.max(1),
                latency_samples: latency_samples as usize,
                duration: duration.map(|d| d.get()),
                log_entries,
                mass,
                replicas: replicas as usize,
            };
            let sound = crate::bench::run(opts, database.as_deref()).await?;
            Ok(if sound { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Token { config, sub, roles, ttl } => {
            let settings = load_settings(&config)?;
            let token =
                crate::auth::mint_hs256(&settings.auth, &sub, &roles, ttl.get(), SystemClock.now().to_datetime())?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Notify { command: NotifyCommand::Test { config, channel } } => {
            let settings = load_settings(&config)?;
            let attempt = crate::notify::send_test(&settings, &channel).await?;
            println!("{}", attempt.status.map_or_else(|| "no answer".to_string(), |s| s.to_string()));
            if !attempt.response.is_empty() {
                println!("{}", attempt.response);
            }
            match attempt.outcome {
                crate::notify::Outcome::Delivered => Ok(ExitCode::SUCCESS),
                other => {
                    eprintln!("not accepted: {other:?}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Report { config, args } => crate::report::run(&load_settings(&config)?, args).await,
        Command::Audit { command } => audit::run(command).await,
        Command::Db { command } => db::run(command).await,
        Command::Backup { config, out, force } => backup::backup(&config, &out, force).await,
        Command::Restore { config, from, force } => backup::restore(&config, &from, force).await,
    }
}

async fn serve(mut settings: Settings, config: Option<PathBuf>, dev: bool) -> anyhow::Result<ExitCode> {
    // First: from here on a SIGHUP is a reload (held until the daemon runs), never a kill.
    let hangups = crate::startup::listen_for_hangups();
    if dev && settings.auth.hs256_secret.is_none() {
        // Only what --dev needs: a secret to sign the printed tokens with, for this run only.
        let bytes: [u8; 32] = rand::random();
        settings.auth.hs256_secret = Some(crate::secret::Secret::new(hex::encode(bytes)));
    }
    if settings.auth.hs256_secret.as_ref().is_some_and(|s| s.expose() == settings::WELL_KNOWN_DEV_SECRET) {
        tracing::warn!("auth.hs256_secret is the public development secret; anyone can mint tokens. Set your own.");
    }
    // The simulator lives as long as the daemon: dropping the handle stops it.
    let simulator = if dev { Some(crate::dev::start(&mut settings).await?) } else { None };
    let app = Application::build(settings, Arc::new(SystemClock)).await?.reload_policy_on_sighup(config, hangups);
    if let Some(sim) = &simulator {
        crate::dev::print_banner(&app, sim)?;
    }
    app.run_until_stopped(shutdown_signal()).await?;
    if let Some(sim) = simulator {
        sim.shutdown().await;
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_simulator(
    bind: &str,
    fleet: usize,
    rate_per_minute: Option<u32>,
    rate_per_hour: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(bind).await.with_context(|| format!("binding {bind}"))?;
    let base = format!("http://{}", listener.local_addr()?);
    let mut config = SimulatorConfig::default();
    let seeded = config.machines.len();
    config.machines.extend(crate::mde::simulator::fleet(fleet));
    config.rate_per_minute = rate_per_minute.unwrap_or(config.rate_per_minute);
    config.rate_per_hour = rate_per_hour.unwrap_or(config.rate_per_hour);
    let client = config.client_config(&base).context("the simulator has no client secret")?;
    println!("MDE simulator on {base}. Point a daemon at it with:");
    println!("  DUALKEY_MDE__API_BASE={}", client.api_base);
    println!("  DUALKEY_MDE__TOKEN_URL={}", client.token_url);
    println!("  DUALKEY_MDE__SCOPE={}", client.scope);
    println!("  DUALKEY_MDE__CLIENT_ID={}", client.client_id);
    println!("  DUALKEY_MDE__CLIENT_SECRET={}", crate::mde::simulator::DEV_CLIENT_SECRET);
    // config/default.toml turns the worker off; without this the daemon never releases anything.
    println!("  DUALKEY_MDE__WORKER_ENABLED=true");
    if rate_per_minute.is_some() || rate_per_hour.is_some() {
        // The daemon paces itself by its own limits: left at MDE's, it would draw 429s here.
        println!("  DUALKEY_MDE__RATE_PER_MINUTE={}", config.rate_per_minute);
        println!("  DUALKEY_MDE__RATE_PER_HOUR={}", config.rate_per_hour);
    }
    println!("Rate limits: {} calls per minute, {} per hour, per API", config.rate_per_minute, config.rate_per_hour);
    println!("Isolated machines:");
    for m in &config.machines[..seeded] {
        println!("  {}  {}", m.id, m.computer_dns_name);
    }
    if let (Some(first), Some(last)) = (config.machines.get(seeded), config.machines.last()) {
        println!(
            "  and a fleet of {fleet}: {} ({}) to {} ({})",
            first.computer_dns_name, first.id, last.computer_dns_name, last.id
        );
    }
    println!("Release one from the portal, past dualkey (no token needed):");
    println!(
        "  curl -X POST {base}/_simulator/machines/<id>/unisolate -H 'content-type: application/json' -d '{{\"requestor\":\"someone@contoso.com\"}}'"
    );
    let idp = &config.idp;
    println!("Development identity provider (OpenID Connect; not for production):");
    println!("  issuer:    {}", config.idp_issuer(&base));
    println!("  client id: {}", idp.client_id);
    println!("  API scope: {} (audience {})", idp.api_scope, idp.api_audience);
    println!("  users:     {}", idp.users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>().join(", "));
    crate::mde::simulator::run(config, listener).await.context("serving the simulator")?;
    Ok(ExitCode::SUCCESS)
}

/// Prints an offline check's findings on stdout, or what failed on stderr; 0 only when intact.
pub(crate) fn offline_outcome(result: Result<Vec<String>, crate::offline::Failure>, what: &str) -> ExitCode {
    match result {
        Ok(lines) => {
            for line in lines {
                println!("{line}");
            }
            eprintln!("{what} verified");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("{what} FAILED verification: {failure}");
            ExitCode::FAILURE
        }
    }
}
