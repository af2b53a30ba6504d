//! Evidence an auditor checks offline: `dualkey evidence get|verify` and `dualkey audit
//! export|verify --file`, and every kind of tampering each must catch, naming it.

use crate::evidence_support::*;
use crate::helpers::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

struct Signed {
    mde: MdeApp,
    key: PathBuf,
    verifier: String,
    dir: tempfile::TempDir,
}

async fn signed(key: Option<(PathBuf, String)>, db_dir: Option<&Path>) -> Signed {
    let dir = tempfile::tempdir().unwrap();
    let (key, verifier) = key.unwrap_or_else(|| keygen(dir.path(), "dualkey-test"));
    let k = key.clone();
    let clock = dualkey::clock::ManualClock::new();
    let sim = start_simulator(test_simulator(), &clock).await;
    let app = spawn_on_in(sim, &clock, db_dir, move |s| {
        s.audit.signing_key_file = Some(k);
        s.audit.origin = Some("dualkey/test".into());
        s.audit.checkpoint_every = 5;
    })
    .await;
    let worker = app.worker.clone().unwrap();
    Signed { mde: MdeApp { sim: app.sim.clone(), app, worker }, key, verifier, dir }
}

impl Signed {
    fn app(&self) -> &TestApp {
        &self.mde.app
    }

    /// A release of `machine(n)` requested by alice, approved by bob, released through MDE.
    async fn released(&self, n: u32) -> Value {
        let id = self.mde.approved(&machine(n)).await;
        self.mde.drive_until(&id, "succeeded").await
    }

    /// `dualkey evidence get` as an auditor; the bundle's path.
    async fn evidence_get(&self, id: &str, kept: Option<&Path>) -> PathBuf {
        let out = self.dir.path().join(format!("{id}.json"));
        let mut args: Vec<String> =
            ["evidence", "get", id, "--server", &self.app().base, "--out"].map(String::from).into();
        args.push(out.to_str().unwrap().into());
        if let Some(k) = kept {
            args.extend(["--checkpoint".into(), k.to_str().unwrap().into()]);
        }
        let envs = [
            ("DUALKEY_TOKEN".to_string(), self.app().auditor()),
            ("XDG_CONFIG_HOME".into(), self.dir.path().to_str().unwrap().into()),
        ];
        // The daemon answers on this test's runtime: the command runs off it.
        let (ok, _, stderr) = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            run(&args, &envs)
        })
        .await
        .unwrap();
        assert!(ok, "{stderr}");
        out
    }

    /// Keeps the latest checkpoint in a file, as an auditor would.
    async fn keep_checkpoint(&self, name: &str) -> PathBuf {
        let (status, note) = self.app().get_text("/api/v1/audit/checkpoint", &self.app().auditor()).await;
        assert_eq!(status, StatusCode::OK, "{note}");
        let path = self.dir.path().join(name);
        std::fs::write(&path, note).unwrap();
        path
    }
}

fn verify(file: &Path, key: &str, kept: Option<&Path>) -> (bool, String, String) {
    let mut args = vec!["evidence", "verify", file.to_str().unwrap(), "--key", key];
    let kept = kept.map(|p| p.to_str().unwrap().to_string());
    if let Some(k) = &kept {
        args.extend(["--checkpoint", k.as_str()]);
    }
    run(&args, &[])
}

fn edit(file: &Path, f: impl FnOnce(&mut Value)) -> PathBuf {
    let mut b: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    f(&mut b);
    let out = file.with_extension("edited.json");
    std::fs::write(&out, serde_json::to_string(&b).unwrap()).unwrap();
    out
}

fn assert_fails(result: (bool, String, String), what: &str) {
    let (ok, stdout, stderr) = result;
    assert!(!ok, "verification must fail ({what}); stdout: {stdout}");
    assert!(stderr.contains(what), "the failure names {what}: {stderr}");
}

#[tokio::test]
async fn a_releases_evidence_verifies_offline_with_only_the_binary_and_the_key_and_tells_who_did_what() {
    let s = signed(None, None).await;
    let release = s.released(1).await;
    let id = release["id"].as_str().unwrap();
    let file = s.evidence_get(id, None).await;
    let bundle: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(bundle["format"], "dualkey-evidence/1");
    assert_eq!(bundle["release"]["id"], id);
    let entries = bundle["entries"].as_array().unwrap();
    let actions: Vec<String> = entries
        .iter()
        .map(|l| serde_json::from_str::<Value>(l.as_str().unwrap()).unwrap()["action"].as_str().unwrap().to_string())
        .collect();
    for a in ["release_requested", "approval_recorded", "release_approved", "unisolate_accepted", "release_succeeded"] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
    // The checkpoint covers every entry, and each proof leads to its root (checked here
    // independently of dualkey).
    let cp = open_note(bundle["checkpoint"].as_str().unwrap(), &s.verifier);
    for line in entries {
        let line = line.as_str().unwrap();
        let seq = serde_json::from_str::<Value>(line).unwrap()["seq"].as_u64().unwrap();
        let all = s.app().leaf_lines().await;
        let leaves: Vec<H> = all.iter().map(|l| leaf(l.as_bytes())).collect();
        assert_eq!(all[seq as usize - 1], line, "the bundle's line is the log's leaf");
        assert_eq!(
            bundle["proofs"][seq.to_string()],
            json!(b64s(&path(seq as usize - 1, &leaves[..cp.size as usize])))
        );
    }
    assert!(bundle["policy"]["document"].is_object(), "{}", bundle["policy"]);
    assert_eq!(bundle["policy"]["hash"].as_str().unwrap().len(), 64);

    // Offline: a fresh process with no configuration and no database.
    let (ok, stdout, stderr) = verify(&file, &s.verifier, None);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("requested by alice"), "{stdout}");
    assert!(stdout.contains("approved by bob"), "{stdout}");
    assert!(stdout.contains("rule `default`"), "{stdout}");
    let action = release["mde_action_id"].as_str().unwrap();
    assert!(stdout.contains("MDE accepted the unisolate") && stdout.contains(action), "{stdout}");
    assert!(stdout.contains("the document matches its hash"), "{stdout}");
    // The key may also be given as a file.
    let key_file = s.dir.path().join("verifier.pub");
    std::fs::write(&key_file, &s.verifier).unwrap();
    assert!(verify(&file, key_file.to_str().unwrap(), None).0);
}

#[tokio::test]
async fn an_edited_leaf_a_removed_entry_an_altered_proof_or_another_keys_checkpoint_each_fail_by_name() {
    let s = signed(None, None).await;
    let id = s.released(1).await["id"].as_str().unwrap().to_string();
    let file = s.evidence_get(&id, None).await;

    let edited = edit(&file, |b| {
        let line = b["entries"][0].as_str().unwrap().replace("reimaged and scanned clean", "reimaged, trust me");
        b["entries"][0] = Value::String(line);
    });
    assert_fails(verify(&edited, &s.verifier, None), "leaf_content");

    let removed = edit(&file, |b| {
        b["entries"].as_array_mut().unwrap().remove(1);
    });
    assert_fails(verify(&removed, &s.verifier, None), "entry_missing");

    let first_removed = edit(&file, |b| {
        b["entries"].as_array_mut().unwrap().remove(0);
    });
    assert_fails(verify(&first_removed, &s.verifier, None), "entry_missing");

    let altered = edit(&file, |b| {
        let seq = serde_json::from_str::<Value>(b["entries"][1].as_str().unwrap()).unwrap()["seq"].to_string();
        let proof = b["proofs"][&seq].as_array_mut().unwrap();
        proof[0] = Value::String(b64s(&[[7u8; 32]])[0].clone());
    });
    assert_fails(verify(&altered, &s.verifier, None), "inclusion_proof");

    // A checkpoint signed by another key: the bundle of another daemon, checked with ours; and
    // ours with theirs.
    let other = signed(None, None).await;
    let theirs = other.evidence_get(other.released(1).await["id"].as_str().unwrap(), None).await;
    assert_fails(verify(&theirs, &s.verifier, None), "checkpoint_signature");
    assert_fails(verify(&file, &other.verifier, None), "checkpoint_signature");
    let swapped = edit(&file, |b| {
        let t: Value = serde_json::from_str(&std::fs::read_to_string(&theirs).unwrap()).unwrap();
        b["checkpoint"] = t["checkpoint"].clone();
    });
    assert_fails(verify(&swapped, &s.verifier, None), "checkpoint_signature");

    let policy = edit(&file, |b| {
        b["policy"]["document"]["min_comment_len"] = json!(1);
    });
    assert_fails(verify(&policy, &s.verifier, None), "policy");
}

#[tokio::test]
async fn a_kept_checkpoint_proves_the_log_only_grew_and_catches_a_rewritten_history() {
    let s = signed(None, None).await;
    s.released(1).await;
    let kept = s.keep_checkpoint("kept.note").await;
    let id = s.released(2).await["id"].as_str().unwrap().to_string();
    let file = s.evidence_get(&id, Some(&kept)).await;
    let (ok, stdout, stderr) = verify(&file, &s.verifier, Some(&kept));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("the log only grew"), "{stdout}");
    // A bundle fetched without --checkpoint cannot show it, and says how to get the proof.
    let plain = s.evidence_get(&id, None).await;
    assert_fails(verify(&plain, &s.verifier, Some(&kept)), "consistency");

    // A rewritten history: another log under the same key and origin (the host's key signs
    // whatever the host holds). Its bundle verifies alone but not against the kept checkpoint.
    let rewritten = signed(Some((s.key.clone(), s.verifier.clone())), None).await;
    for n in 1..=3 {
        rewritten.released(n).await;
    }
    let id = rewritten.released(4).await["id"].as_str().unwrap().to_string();
    let forged = rewritten.evidence_get(&id, Some(&kept)).await;
    assert!(verify(&forged, &s.verifier, None).0, "alone it verifies: the signature is the host's");
    assert_fails(verify(&forged, &s.verifier, Some(&kept)), "consistency");
}

#[tokio::test]
async fn a_log_truncated_and_regrown_past_a_kept_checkpoint_fails_consistency() {
    let db_dir = tempfile::tempdir().unwrap();
    let s = signed(None, Some(db_dir.path())).await;
    s.released(1).await;
    // The host's copy of the log as it was here ...
    let snapshot = tempfile::tempdir().unwrap();
    let copy = snapshot.path().join("dualkey.db");
    sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM INTO '{}'", copy.display())))
        .execute(&s.app().raw_db().await)
        .await
        .unwrap();
    // ... then it grew, and the auditor kept a checkpoint.
    s.released(2).await;
    s.released(3).await;
    let kept = s.keep_checkpoint("kept.note").await;
    // Whoever controls the host puts the old copy back and lets it grow past the kept size.
    let regrown = signed(Some((s.key.clone(), s.verifier.clone())), Some(snapshot.path())).await;
    // The copy holds the first daemon's lease on the scan: it lapses after `mde.lease`.
    regrown.app().clock.advance(std::time::Duration::from_secs(31));
    for n in 4..=8 {
        regrown.released(n).await;
    }
    let id = regrown.released(9).await["id"].as_str().unwrap().to_string();
    let forged = regrown.evidence_get(&id, Some(&kept)).await;
    assert_fails(verify(&forged, &s.verifier, Some(&kept)), "consistency");
    // Truncated and not yet regrown past it: the server cannot even make the proof.
    let cut = signed(Some((s.key.clone(), s.verifier.clone())), None).await;
    let id = cut.released(1).await["id"].as_str().unwrap().to_string();
    let r =
        cut.app().get(&format!("/api/v1/releases/{id}/evidence?consistency_from=100000"), &cut.app().auditor()).await;
    assert_eq!(error_code(r).await, (StatusCode::UNPROCESSABLE_ENTITY, "consistency_from_beyond_log".into()));
}
