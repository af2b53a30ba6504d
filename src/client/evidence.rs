//! `dualkey evidence get|verify`: fetch a release's evidence bundle over the API, and check one
//! offline with only the file and the log's verifier key.

use super::ClientError;
use super::args::{Connection, EvidenceCommand};
use super::session::Session;
use reqwest::Method;

fn other(e: impl std::fmt::Display) -> ClientError {
    ClientError::other(e.to_string())
}

pub(super) async fn run<'a>(
    _conn: &Connection,
    command: EvidenceCommand,
    session: impl FnOnce() -> Result<Session<'a>, ClientError>,
) -> Result<(), ClientError> {
    match command {
        EvidenceCommand::Get { id, checkpoint, out } => {
            let mut query = Vec::new();
            if let Some(path) = checkpoint {
                let note = crate::cli::audit::read_note(&path).map_err(|e| other(format!("{e:#}")))?;
                // Only its size goes to the server; `evidence verify --checkpoint` checks the rest.
                let cp = crate::tlog::Checkpoint::parse_unverified(&note)
                    .map_err(|e| ClientError::Usage(format!("{} is not a checkpoint: {e}", path.display())))?;
                query.push(("consistency_from", cp.size.to_string()));
            }
            let bundle = session()?.call(Method::GET, &["releases", &id, "evidence"], &query, None).await?;
            let text = serde_json::to_string_pretty(&bundle).map_err(other)?;
            std::fs::write(&out, format!("{text}\n")).map_err(|e| other(format!("writing {}: {e}", out.display())))?;
            eprintln!("wrote the evidence of release {id} to {}", out.display());
            Ok(())
        }
        EvidenceCommand::Verify { file, key, checkpoint } => {
            let key = crate::cli::audit::verifier_key(&key).map_err(|e| ClientError::Usage(format!("{e:#}")))?;
            let text = std::fs::read_to_string(&file).map_err(|e| other(format!("reading {}: {e}", file.display())))?;
            let kept = checkpoint
                .as_deref()
                .map(crate::cli::audit::read_note)
                .transpose()
                .map_err(|e| other(format!("{e:#}")))?;
            let lines = crate::offline::verify_bundle(&text, &key, kept.as_deref())
                .map_err(|f| ClientError::other(format!("evidence FAILED verification: {f}")))?;
            for line in lines {
                println!("{line}");
            }
            eprintln!("evidence verified");
            Ok(())
        }
    }
}
