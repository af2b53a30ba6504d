//! `dualkey audit keygen|verify|export`.

use super::{ConfigArg, load_settings};
use crate::audit::signing::LogSigner;
use crate::tlog::{NoteVerifier, Signer};
use anyhow::Context;
use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// On the host: recompute the hash chain and the Merkle tree, and check every stored
    /// checkpoint's root and signature. With --file: check an export offline instead (no
    /// database, no configuration). Exit 0 when intact, 1 naming what failed.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        /// An export (`dualkey audit export`, `GET /api/v1/audit/export`) to check offline.
        #[arg(long, value_name = "EXPORT", requires = "key")]
        file: Option<PathBuf>,
        /// The log's verifier key (`NAME+id+key`), or a file holding it.
        #[arg(long, value_name = "VERIFIER_KEY")]
        key: Option<String>,
        /// An older checkpoint you kept: also check that the log only grew since.
        #[arg(long, value_name = "FILE", requires = "file")]
        checkpoint: Option<PathBuf>,
    },
    /// Create the log's Ed25519 signing key: writes the private key (mode 0600) and prints the
    /// verifier key to give auditors.
    Keygen {
        /// The key's name (no spaces, no `+`), e.g. `dualkey-prod`.
        #[arg(long)]
        name: String,
        /// Where to write the private key; never overwritten.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// On the host: JSON Lines of every entry in leaf form, then a trailer with a signed
    /// checkpoint (and inclusion proofs when --from is given).
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// Entries written at or after this time (RFC 3339 or a date). Default: from entry 1.
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Entries written before this time. Default: up to the newest.
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Where to write the export (default: stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// An older checkpoint you kept: the trailer adds a consistency proof from it.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
}

/// Whether `command` reads the settings (an offline check and key generation do not).
pub(super) fn reads_settings(command: &AuditCommand) -> bool {
    match command {
        AuditCommand::Verify { file, .. } => file.is_none(),
        AuditCommand::Keygen { .. } => false,
        AuditCommand::Export { .. } => true,
    }
}

/// A verifier key given on the command line, or the file holding it.
pub(crate) fn verifier_key(arg: &str) -> anyhow::Result<NoteVerifier> {
    if let Ok(key) = NoteVerifier::parse(arg.trim()) {
        return Ok(key);
    }
    let text = std::fs::read_to_string(arg)
        .with_context(|| format!("--key `{arg}` is neither a verifier key (NAME+id+key) nor a readable file"))?;
    NoteVerifier::parse(text.trim()).with_context(|| format!("{arg} does not hold a verifier key"))
}

/// A checkpoint note kept in a file.
pub(crate) fn read_note(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading the checkpoint {}", path.display()))
}

/// A time argument: RFC 3339, or a date meaning its midnight UTC (as `dualkey report` reads).
fn parse_time(arg: &str, what: &str) -> anyhow::Result<crate::clock::Timestamp> {
    crate::report::parse_time(arg).map_err(|e| anyhow::anyhow!("{what} `{arg}`: {e}"))
}

pub(super) async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Keygen { name, out } => keygen(&name, &out),
        AuditCommand::Verify { file: Some(file), key, checkpoint, .. } => {
            let key = verifier_key(key.as_deref().unwrap_or_default())?;
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let kept = checkpoint.as_deref().map(read_note).transpose()?;
            Ok(super::offline_outcome(crate::offline::verify_export(&text, &key, kept.as_deref()), "export"))
        }
        AuditCommand::Verify { config, key, .. } => verify_host(&config, key.as_deref()).await,
        AuditCommand::Export { config, from, to, out, checkpoint } => {
            let settings = load_settings(&config)?;
            let log = LogSigner::from_settings(&settings.audit)?
                .context("the log is unsigned: set [audit] signing_key_file to export with checkpoints")?;
            let consistency_from = match checkpoint.as_deref() {
                Some(p) => Some(kept_size(&read_note(p)?, &log)?),
                None => None,
            };
            let range = crate::service::export::ExportRange {
                from: from.as_deref().map(|t| parse_time(t, "--from")).transpose()?,
                to: to.as_deref().map(|t| parse_time(t, "--to")).transpose()?,
                consistency_from,
            };
            let db = crate::db::Db::connect(&settings.database).await.context("opening the database")?;
            let mut sink: Box<dyn Write + Send> = match &out {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout())),
            };
            let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(1024);
            let task = {
                let db = db.clone();
                tokio::spawn(async move { crate::service::export::export(&db, &log, range, tx).await })
            };
            let mut lines = 0u64;
            while let Some(line) = rx.recv().await {
                writeln!(sink, "{line}")?;
                lines += 1;
            }
            sink.flush()?;
            let result = task.await?;
            db.close().await;
            result.map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
            eprintln!("exported {} entries and the trailer", lines.saturating_sub(1));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The size of a kept checkpoint of this log (its signature checked with the host's key).
fn kept_size(note: &str, log: &LogSigner) -> anyhow::Result<u64> {
    let key = NoteVerifier::parse(&log.verifier_key())?;
    let cp = crate::tlog::Checkpoint::open(note, &key).context("the checkpoint you gave is not one of this log's")?;
    Ok(cp.size)
}

fn keygen(name: &str, out: &Path) -> anyhow::Result<ExitCode> {
    let signer = Signer::generate(name).context("--name")?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(out)
        .with_context(|| format!("creating {} (an existing file is never overwritten)", out.display()))?;
    writeln!(file, "{}", signer.private_key())?;
    file.sync_all()?;
    println!("{}", signer.verifier_key());
    eprintln!(
        "wrote the signing key to {} (mode 0600); set [audit] signing_key_file to it and give auditors the verifier key above",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn verify_host(config: &ConfigArg, key: Option<&str>) -> anyhow::Result<ExitCode> {
    let settings = load_settings(config)?;
    let key = match key {
        Some(k) => Some(verifier_key(k)?),
        None => {
            LogSigner::from_settings(&settings.audit)?.map(|l| NoteVerifier::parse(&l.verifier_key())).transpose()?
        }
    };
    let db = crate::db::Db::connect(&settings.database).await.context("opening the database")?;
    let report = crate::audit::verify_db(&db).await.context("reading the audit log")?;
    let tree = crate::audit::verify_tree(&db, key.as_ref()).await.context("reading the audit tree")?;
    db.close().await;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!("{}", serde_json::to_string_pretty(&tree)?);
    let mut ok = true;
    match report {
        crate::audit::VerifyReport::Intact { entries, head, .. } => {
            eprintln!("audit chain intact: {entries} entries, head {head}");
        }
        crate::audit::VerifyReport::Broken { first_bad_seq, reason, message, .. } => {
            eprintln!("audit chain BROKEN at entry {first_bad_seq} ({reason}): {message}");
            ok = false;
        }
    }
    match &tree.problem {
        None => eprintln!(
            "audit tree intact: {} entries, root {}, {} checkpoints checked{}",
            tree.entries,
            tree.root,
            tree.checkpoints_checked,
            if tree.signatures_checked { " with their signatures" } else { " (no key: signatures not checked)" }
        ),
        Some(problem) => {
            eprintln!("audit tree BROKEN: {problem}");
            ok = false;
        }
    }
    if !ok {
        return Ok(ExitCode::FAILURE);
    }
    if key.is_none() {
        bail_unsigned_note();
    }
    Ok(ExitCode::SUCCESS)
}

fn bail_unsigned_note() {
    eprintln!("note: the log is unsigned here (no [audit] signing_key_file and no --key)");
}
