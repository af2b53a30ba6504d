//! A release's evidence bundle: the release, its audit entries as leaf lines, an inclusion
//! proof for each against one signed checkpoint, that checkpoint, and the policy document it
//! was decided under. `dualkey evidence verify` checks it offline (see `crate::evidence`).

use crate::audit::signing::LogSigner;
use crate::audit::{checkpoint, leaf_line, tree};
use crate::db::{self, Db};
use crate::domain::ReleaseId;
use crate::error::ApiError;
use serde_json::{Map, Value, json};

/// The bundle's `format`: what `evidence verify` reads.
pub(crate) const FORMAT: &str = "dualkey-evidence/1";

const PAGE: i64 = 1000;

/// Builds the bundle of release `id`, whose API view is `release`. With `consistency_from`
/// (the size of an older checkpoint the auditor kept), the bundle's checkpoint covers at least
/// that many entries and a consistency proof from it is included.
pub(crate) async fn bundle(
    database: &Db,
    log: &LogSigner,
    id: ReleaseId,
    release: Value,
    consistency_from: Option<u64>,
) -> Result<Value, ApiError> {
    let mut conn = database.reader().await?;
    let rid = id.to_string();
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let page = db::audit::list(&mut conn, after, PAGE, Some(&rid)).await?;
        let full = page.len() as i64 == PAGE;
        after = page.last().map_or(after, |e| e.seq);
        entries.extend(page);
        if !full {
            break;
        }
    }
    let newest = entries.last().map_or(0, |e| e.seq as u64);
    let have = db::tree::size(&mut conn).await?;
    if let Some(m) = consistency_from
        && (m == 0 || m > have)
    {
        return Err(ApiError::unprocessable(
            "consistency_from_beyond_log",
            format!(
                "the log has {have} entries, fewer than the checkpoint you kept ({m}): if that checkpoint is \
                 dualkey's, the log was cut"
            ),
        )
        .with("log_size", have));
    }
    let (size, note) = checkpoint::covering(&mut conn, log, newest.max(consistency_from.unwrap_or(0)).max(1)).await?;
    let mut proofs = Map::new();
    for e in &entries {
        let proof = tree::inclusion(&mut conn, (e.seq - 1) as u64, size).await?;
        proofs.insert(e.seq.to_string(), json!(tree::to_b64(&proof)));
    }
    let policy = match crate::audit::policy_named(&entries) {
        Some(hash) => {
            let document = db::checkpoints::policy(&mut conn, &hash).await?;
            let document = document.and_then(|d| serde_json::from_str::<Value>(&d).ok());
            json!({ "hash": hash, "document": document })
        }
        None => Value::Null,
    };
    let mut bundle = json!({
        "format": FORMAT,
        "release": release,
        "entries": entries.iter().map(leaf_line).collect::<Vec<_>>(),
        "checkpoint": note,
        "proofs": proofs,
        "policy": policy,
    });
    if let Some(m) = consistency_from {
        let hashes = tree::consistency(&mut conn, m, size).await?;
        bundle["consistency"] = json!({ "from": m, "hashes": tree::to_b64(&hashes) });
    }
    Ok(bundle)
}
