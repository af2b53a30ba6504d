//! `dualkey bench`, the signed log: entries appended per second with the tree maintained, and
//! at a log of `--log-entries` (default 1,000,000): the time to build a checkpoint, to build an
//! inclusion proof, and to verify a whole export offline.

use crate::audit::signing::LogSigner;
use crate::audit::{self, Actor, AuditEvent, Subject, checkpoint, tree};
use crate::clock::{Clock, SystemClock};
use crate::db::Db;
use crate::settings::DatabaseSettings;
use std::sync::Arc;
use std::time::{Duration, Instant};

const ONE_PER_COMMIT: u64 = 2000;
const BULK_PER_COMMIT: u64 = 10_000;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], *v.last().unwrap_or(&Duration::ZERO))
}

async fn append(db: &Db, n: u64, per_commit: u64) -> anyhow::Result<()> {
    let event = AuditEvent::ReleaseCancelled;
    let mut left = n;
    while left > 0 {
        let mut tx = db.begin().await?;
        for _ in 0..per_commit.min(left) {
            audit::record(&mut tx, SystemClock.now(), Actor::System, Subject::default(), &event).await?;
        }
        tx.commit().await?;
        left = left.saturating_sub(per_commit);
    }
    Ok(())
}

/// Runs the log measurements; false when the export did not verify.
pub(crate) async fn run(dir: &std::path::Path, entries: u64) -> anyhow::Result<bool> {
    let url = format!("sqlite://{}?mode=rwc", dir.join("log.db").display());
    let db = Db::connect(&DatabaseSettings { url, ..Default::default() }).await?;
    db.migrate().await?;
    let signer = crate::tlog::Signer::generate("dualkey-bench")?;
    let verifier = crate::tlog::NoteVerifier::parse(&signer.verifier_key())?;
    let log = Arc::new(LogSigner::new(signer, "dualkey/bench".into(), 100));
    db.sign_log(log.clone());

    let t = Instant::now();
    let singles = ONE_PER_COMMIT.min(entries);
    append(&db, singles, 1).await?;
    let one = singles as f64 / t.elapsed().as_secs_f64();
    println!("log append, one entry per commit:  {one:>9.0} entries/s (tree maintained, a checkpoint every 100)");
    let t = Instant::now();
    let bulk_n = entries.saturating_sub(singles);
    append(&db, bulk_n, BULK_PER_COMMIT).await?;
    println!(
        "log append, {BULK_PER_COMMIT} per commit:       {:>9.0} entries/s (to fill the log to {entries})",
        bulk_n as f64 / t.elapsed().as_secs_f64()
    );

    let mut conn = db.reader().await?;
    let size = crate::db::tree::size(&mut conn).await?;
    let mut builds = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        let root = tree::root(&mut conn, size).await?;
        log.sign(size, root)?;
        builds.push(t.elapsed());
    }
    let (p50, max) = median(builds);
    println!(
        "checkpoint at {size}: build {:.3} ms p50, {:.3} ms max (root from stored nodes + Ed25519 signature; goal <= 50 ms)",
        ms(p50),
        ms(max)
    );
    let mut writes = Vec::new();
    for _ in 0..20 {
        let mut tx = db.begin().await?;
        audit::record(&mut tx, SystemClock.now(), Actor::System, Subject::default(), &AuditEvent::ReleaseCancelled)
            .await?;
        let t = Instant::now();
        checkpoint::write(&mut tx, SystemClock.now(), &log).await?;
        tx.commit().await?;
        writes.push(t.elapsed());
    }
    let (p50, max) = median(writes);
    println!(
        "checkpoint at {size}: build, store and record it, committed: {:.3} ms p50, {:.3} ms max",
        ms(p50),
        ms(max)
    );
    let size = crate::db::tree::size(&mut conn).await?;
    let mut proofs = Vec::new();
    for i in 0..2000u64 {
        let index = (i.wrapping_mul(2_654_435_761)) % size;
        let t = Instant::now();
        tree::inclusion(&mut conn, index, size).await?;
        proofs.push(t.elapsed());
    }
    let (p50, max) = median(proofs);
    println!("inclusion proof at {size}: {:.3} ms p50, {:.3} ms max (n=2000; goal <= 1 ms)", ms(p50), ms(max));
    drop(conn);

    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4096);
    let t = Instant::now();
    let exporting = {
        let (db, log) = (db.clone(), log.clone());
        tokio::spawn(async move { crate::service::export::export(&db, &log, Default::default(), tx).await })
    };
    let mut text = String::new();
    while let Some(line) = rx.recv().await {
        text.push_str(&line);
        text.push('\n');
    }
    exporting.await?.map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message))?;
    println!("export of {size} entries: {:.2} s ({} MB)", t.elapsed().as_secs_f64(), text.len() / 1_000_000);
    let t = Instant::now();
    let verified = crate::offline::verify_export(&text, &verifier, None);
    println!(
        "offline verify of the {size}-entry export: {:.2} s (every leaf hashed, every chain link and content hash checked, root rebuilt; goal <= 2 s){}",
        t.elapsed().as_secs_f64(),
        match &verified {
            Ok(_) => String::new(),
            Err(e) => format!(" FAILED: {e}"),
        }
    );
    db.close().await;
    Ok(verified.is_ok())
}
