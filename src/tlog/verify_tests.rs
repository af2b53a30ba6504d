//! The verifier against transparency-dev/merkle's proof vectors, and against every proof this
//! tree generates up to 70 leaves, intact and tampered with.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::merkle_tests::{MAX, leaves, mth, read, stored};
use super::{
    EMPTY_ROOT, Hash, ProofError, consistency_plan, consistency_proof, inclusion_plan, inclusion_proof,
    verify_consistency, verify_inclusion,
};

const VECTORS: &str = include_str!("../../tests/fixtures/tlog/transparency-dev-merkle-proofs.json");

fn bytes(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap()).unwrap()
}

/// A leaf hash: 32 bytes, or refused (`None`) as Go's verifier refuses a leaf hash of any
/// other length ("wrong leaf", "empty leaf").
fn leaf(v: &Value) -> Option<Hash> {
    bytes(v).try_into().ok()
}

/// A root or proof node. Go takes these as opaque byte strings, and some vectors use values
/// that are not 32 bytes (`""` as garbage in a proof, "don't care 1" as a root); such a value
/// stands in as a hash of its bytes under a tag, so equal values stay equal, every other
/// comparison fails and a garbage node still makes the proof too long.
fn hash(v: &Value) -> Hash {
    let b = bytes(v);
    b.clone()
        .try_into()
        .unwrap_or_else(|_| Sha256::new().chain_update(b"not a node: ").chain_update(&b).finalize().into())
}

fn proof(case: &Value) -> Vec<Hash> {
    case["proof"].as_array().map_or(Vec::new(), |p| p.iter().map(hash).collect())
}

fn cases(kind: &str) -> Vec<Value> {
    let all: Value = serde_json::from_str(VECTORS).unwrap();
    all[kind].as_array().unwrap().clone()
}

#[test]
fn inclusion_vectors_verify_or_fail_exactly_as_transparency_dev_merkle_says() {
    let cases = cases("inclusion");
    assert_eq!(cases.len(), 98);
    for case in &cases {
        let (index, size) = (case["leafIdx"].as_u64().unwrap(), case["treeSize"].as_u64().unwrap());
        let outcome = leaf(&case["leafHash"])
            .is_some_and(|leaf| verify_inclusion(index, size, &leaf, &proof(case), &hash(&case["root"])).is_ok());
        assert_eq!(outcome, !case["wantErr"].as_bool().unwrap(), "{}", case["file"]);
    }
}

#[test]
fn consistency_vectors_verify_or_fail_exactly_as_transparency_dev_merkle_says() {
    let cases = cases("consistency");
    assert_eq!(cases.len(), 98);
    for case in &cases {
        let (m, n) = (case["size1"].as_u64().unwrap(), case["size2"].as_u64().unwrap());
        let (root_m, root_n) = (hash(&case["root1"]), hash(&case["root2"]));
        let outcome = verify_consistency(m, n, &root_m, &root_n, &proof(case)).is_ok();
        assert_eq!(outcome, !case["wantErr"].as_bool().unwrap(), "{}", case["file"]);
    }
}

fn flipped(proof: &[Hash], at: usize) -> Vec<Hash> {
    let mut proof = proof.to_vec();
    proof[at][at % 32] ^= 0x01;
    proof
}

#[test]
fn every_generated_inclusion_proof_verifies_and_no_tampered_one_does() {
    let d = leaves(MAX);
    let store = stored(&d);
    let roots: Vec<Hash> = (0..=MAX as usize).map(|n| mth(&d[..n])).collect();
    for size in 1..=MAX {
        let root = &roots[size as usize];
        for index in 0..size {
            let proof =
                inclusion_proof(index, size, &read(&store, &inclusion_plan(index, size).unwrap(), size)).unwrap();
            let leaf = &d[index as usize];
            assert_eq!(verify_inclusion(index, size, leaf, &proof, root), Ok(()), "leaf {index} in {size}");
            for at in 0..proof.len() {
                let bad = flipped(&proof, at);
                assert_eq!(verify_inclusion(index, size, leaf, &bad, root), Err(ProofError::InclusionRootMismatch));
            }
            let other_leaf = d[(index as usize + 1) % d.len()];
            assert!(
                verify_inclusion(index, size, &other_leaf, &proof, root).is_err(),
                "another leaf, {index} in {size}"
            );
            for wrong in (0..size).filter(|&i| i != index) {
                assert!(
                    verify_inclusion(wrong, size, leaf, &proof, root).is_err(),
                    "leaf {index} as {wrong} in {size}"
                );
            }
            for wrong in (index + 1..=MAX).filter(|&s| s != size) {
                let r = &roots[wrong as usize];
                assert!(verify_inclusion(index, wrong, leaf, &proof, r).is_err(), "leaf {index} in {size} as {wrong}");
            }
            let mut longer = proof.clone();
            longer.push(EMPTY_ROOT);
            let expected = proof.len();
            let given = expected + 1;
            assert_eq!(
                verify_inclusion(index, size, leaf, &longer, root),
                Err(ProofError::WrongLength { expected, given })
            );
        }
    }
}

#[test]
fn every_generated_consistency_proof_verifies_and_no_tampered_one_does() {
    let d = leaves(MAX);
    let store = stored(&d);
    let roots: Vec<Hash> = (0..=MAX as usize).map(|n| mth(&d[..n])).collect();
    for n in 1..=MAX {
        for m in 1..=n {
            let proof = consistency_proof(m, n, &read(&store, &consistency_plan(m, n).unwrap(), n)).unwrap();
            let (root_m, root_n) = (&roots[m as usize], &roots[n as usize]);
            assert_eq!(verify_consistency(m, n, root_m, root_n, &proof), Ok(()), "{m} to {n}");
            for at in 0..proof.len() {
                let bad = flipped(&proof, at);
                assert!(verify_consistency(m, n, root_m, root_n, &bad).is_err(), "{m} to {n}, node {at} flipped");
            }
            assert!(verify_consistency(m, n, &roots[m as usize - 1], root_n, &proof).is_err(), "another old root");
            for wrong in (1..=n).filter(|&s| s != m) {
                let r = &roots[wrong as usize];
                assert!(verify_consistency(wrong, n, r, root_n, &proof).is_err(), "{m} to {n} as {wrong} to {n}");
            }
            for wrong in (m..=MAX).filter(|&s| s != n) {
                let r = &roots[wrong as usize];
                assert!(verify_consistency(m, wrong, root_m, r, &proof).is_err(), "{m} to {n} as {m} to {wrong}");
            }
        }
    }
}

#[test]
fn consistency_from_the_empty_tree_or_backwards_is_refused_and_equal_sizes_need_equal_roots() {
    let (a, b) = (leaf_hash_of("a"), leaf_hash_of("b"));
    assert_eq!(consistency_proof(0, 5, &[]), Ok(Vec::new()));
    assert_eq!(verify_consistency(0, 5, &EMPTY_ROOT, &a, &[]), Err(ProofError::FromEmptyTree));
    assert_eq!(verify_consistency(0, 0, &EMPTY_ROOT, &EMPTY_ROOT, &[]), Err(ProofError::FromEmptyTree));
    assert_eq!(verify_consistency(6, 5, &a, &b, &[]), Err(ProofError::SizesOutOfOrder { m: 6, n: 5 }));
    assert_eq!(verify_consistency(5, 5, &a, &a, &[]), Ok(()));
    assert_eq!(verify_consistency(5, 5, &a, &b, &[]), Err(ProofError::SameSizeDifferentRoots));
    assert_eq!(verify_consistency(5, 5, &a, &a, &[b]), Err(ProofError::WrongLength { expected: 0, given: 1 }));
    assert_eq!(verify_inclusion(3, 3, &a, &[], &a), Err(ProofError::IndexOutOfRange { index: 3, size: 3 }));
}

fn leaf_hash_of(s: &str) -> Hash {
    super::leaf_hash(s.as_bytes())
}

#[test]
fn proof_errors_say_in_plain_words_which_check_failed() {
    let cases = [
        (ProofError::InclusionRootMismatch, "the inclusion proof does not lead to the checkpoint's root"),
        (ProofError::OldRootMismatch, "the consistency proof does not lead to the older checkpoint's root"),
        (ProofError::NewRootMismatch, "the consistency proof does not lead to the newer checkpoint's root"),
        (
            ProofError::WrongLength { expected: 3, given: 2 },
            "the proof has 2 hashes, but a proof for these tree sizes has 3",
        ),
    ];
    for (error, message) in cases {
        assert_eq!(error.to_string(), message);
    }
}
