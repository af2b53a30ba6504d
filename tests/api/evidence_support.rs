//! For the signed-log tests: keys made by the real `dualkey audit keygen`, and an independent
//! RFC 6962 tree and C2SP note check written from the RFC and the spec, sharing no code with
//! dualkey's.

use crate::helpers::*;
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub type H = [u8; 32];

pub fn leaf(data: &[u8]) -> H {
    Sha256::new().chain_update([0u8]).chain_update(data).finalize().into()
}

fn node(l: &H, r: &H) -> H {
    Sha256::new().chain_update([1u8]).chain_update(l).chain_update(r).finalize().into()
}

/// The largest power of two smaller than n (RFC 6962 §2.1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]).
pub fn mth(d: &[H]) -> H {
    match d.len() {
        0 => Sha256::digest([]).into(),
        1 => d[0],
        n => {
            let k = split(n);
            node(&mth(&d[..k]), &mth(&d[k..]))
        }
    }
}

/// PATH(m, D[n]): the audit path of leaf m.
pub fn path(m: usize, d: &[H]) -> Vec<H> {
    if d.len() <= 1 {
        return vec![];
    }
    let k = split(d.len());
    if m < k {
        let mut p = path(m, &d[..k]);
        p.push(mth(&d[k..]));
        p
    } else {
        let mut p = path(m - k, &d[k..]);
        p.push(mth(&d[..k]));
        p
    }
}

/// PROOF(m, D[n]) = SUBPROOF(m, D[n], true).
pub fn proof(m: usize, d: &[H]) -> Vec<H> {
    fn sub(m: usize, d: &[H], b: bool) -> Vec<H> {
        let n = d.len();
        if m == n {
            return if b { vec![] } else { vec![mth(d)] };
        }
        let k = split(n);
        if m <= k {
            let mut p = sub(m, &d[..k], b);
            p.push(mth(&d[k..]));
            p
        } else {
            let mut p = sub(m - k, &d[k..], false);
            p.push(mth(&d[..k]));
            p
        }
    }
    sub(m, d, true)
}

pub fn b64s(hashes: &[H]) -> Vec<String> {
    hashes.iter().map(|h| B64.encode(h)).collect()
}

/// A key made by `dualkey audit keygen`: the private key file and the printed verifier key.
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let file = dir.join(format!("{name}.key"));
    let out = dualkey_command().args(["audit", "keygen", "--name", name, "--out"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    (file, String::from_utf8(out.stdout).unwrap().trim().to_string())
}

/// A checkpoint opened by hand: the signed-note signature checked with the verifier key, then
/// origin, size and root read from the text.
pub struct Opened {
    pub origin: String,
    pub size: u64,
    pub root: H,
}

pub fn open_note(note: &str, verifier: &str) -> Opened {
    let mut parts = verifier.splitn(3, '+');
    let (name, id_hex, key) = (parts.next().unwrap(), parts.next().unwrap(), parts.next().unwrap());
    let key = B64.decode(key).unwrap();
    assert_eq!(key[0], 0x01, "an Ed25519 verifier key starts with 0x01");
    let id: [u8; 4] =
        Sha256::new().chain_update(name).chain_update([b'\n']).chain_update(&key).finalize()[..4].try_into().unwrap();
    assert_eq!(hex::encode(id), id_hex, "key id = first 4 bytes of SHA-256(name ‖ \\n ‖ 0x01 ‖ key)");
    let (text, sigs) = note.split_once("\n\n").expect("a note has a blank line before its signatures");
    let text = format!("{text}\n");
    let line = sigs.lines().find(|l| l.starts_with(&format!("\u{2014} {name} "))).expect("a signature by the key");
    let sig = B64.decode(line.rsplit(' ').next().unwrap()).unwrap();
    assert_eq!(&sig[..4], &id, "the signature names the key id");
    UnparsedPublicKey::new(&ED25519, &key[1..]).verify(text.as_bytes(), &sig[4..]).expect("the signature verifies");
    let lines: Vec<&str> = text.lines().collect();
    Opened {
        origin: lines[0].to_string(),
        size: lines[1].parse().unwrap(),
        root: B64.decode(lines[2]).unwrap().try_into().unwrap(),
    }
}

/// The leaf lines of an export (all lines but the trailer) and its trailer.
pub fn split_export(text: &str) -> (Vec<String>, Value) {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let trailer = serde_json::from_str(&lines.pop().unwrap()).unwrap();
    (lines, trailer)
}

impl TestApp {
    pub async fn get_text(&self, path: &str, token: &str) -> (reqwest::StatusCode, String) {
        let r = self.get(path, token).await;
        (r.status(), r.text().await.unwrap())
    }

    /// The whole log as leaf lines, read through the export.
    pub async fn leaf_lines(&self) -> Vec<String> {
        let (status, text) = self.get_text("/api/v1/audit/export", &self.auditor()).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{text}");
        split_export(&text).0
    }
}

/// `dualkey` run with these arguments; (success, stdout, stderr).
pub fn run(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let mut c = dualkey_command();
    c.args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}
