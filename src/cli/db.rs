//! `dualkey db copy`: the command line of [`crate::db::copy`], and what may be printed of a
//! database URL.

use crate::db::Backend;
use anyhow::Context;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum DbCommand {
    /// Copy an installation into an EMPTY database (either backend), e.g. from SQLite to
    /// PostgreSQL: migrates the target, copies every row in one transaction, then verifies that
    /// the target's audit log has the source's head. Stop the daemon first. Passwords in the URLs
    /// are never printed.
    Copy {
        /// The installation's database (at this version's migrations: `dualkey migrate`), e.g.
        /// `sqlite:///var/lib/dualkey/dualkey.db`. Only read; never created.
        #[arg(long, value_name = "URL")]
        from: String,
        /// The empty database to fill, e.g. `postgres://dualkey@db.example.com:5432/dualkey`. A
        /// SQLite URL without `mode=` creates the file.
        #[arg(long, value_name = "URL")]
        to: String,
    },
}

pub(super) async fn run(command: DbCommand) -> anyhow::Result<ExitCode> {
    match command {
        DbCommand::Copy { from, to } => {
            let (shown_from, shown_to) = (redacted(&from), redacted(&to));
            let report = crate::db::copy::copy(&source_url(&from), &target_url(&to))
                .await
                .with_context(|| format!("copying {shown_from} to {shown_to}"))?;
            let rows: u64 = report.tables.iter().map(|t| t.1).sum();
            let seconds = report.elapsed.as_secs_f64();
            println!("copied {shown_from} to {shown_to}");
            for (table, n) in &report.tables {
                println!("  {table:<24} {n:>10} rows");
            }
            println!("  {:<24} {rows:>10} rows in {seconds:.2} s ({:.0} rows/s)", "total", rows as f64 / seconds);
            for (which, head) in [("source", &report.source), ("target", &report.target)] {
                println!("{which} audit head: seq {}, hash {}, tree root {}", head.seq, head.hash, head.root);
            }
            println!("the target's audit chain and tree verify, with the source's head");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The source is only read: a SQLite URL with `mode=rwc` (as `database.url` usually has) opens
/// it without creating a missing file.
fn source_url(url: &str) -> String {
    match Backend::of_url(url) {
        Backend::Sqlite => url.replace("mode=rwc", "mode=rw"),
        Backend::Postgres => url.to_string(),
    }
}

/// A SQLite target that names no `mode` is created when missing.
fn target_url(url: &str) -> String {
    match Backend::of_url(url) {
        Backend::Sqlite if !url.contains("mode=") => {
            format!("{url}{}mode=rwc", if url.contains('?') { '&' } else { '?' })
        }
        _ => url.to_string(),
    }
}

/// `url` with its password, if any, replaced by `***`: what may be printed of it.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => "<a URL that does not parse>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_shown_and_the_rest_of_the_url_is() {
        let shown = redacted("postgres://dualkey:s3cr%40t@db.example.com:5432/dualkey");
        assert_eq!(shown, "postgres://dualkey:***@db.example.com:5432/dualkey");
        assert_eq!(redacted("postgres://dualkey@db:5432/dk"), "postgres://dualkey@db:5432/dk");
        assert_eq!(
            redacted("sqlite:///var/lib/dualkey/dualkey.db?mode=rwc"),
            "sqlite:///var/lib/dualkey/dualkey.db?mode=rwc"
        );
        assert!(!redacted("postgres://u:pw@[bad").contains("pw"));
    }

    #[test]
    fn the_source_is_never_created_and_a_sqlite_target_is() {
        assert_eq!(source_url("sqlite://dk.db?mode=rwc"), "sqlite://dk.db?mode=rw");
        assert_eq!(target_url("sqlite://new.db"), "sqlite://new.db?mode=rwc");
        assert_eq!(target_url("sqlite://new.db?cache=shared"), "sqlite://new.db?cache=shared&mode=rwc");
        assert_eq!(target_url("sqlite://new.db?mode=rw"), "sqlite://new.db?mode=rw");
        assert_eq!(target_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
