//! The plan/finish tree against a naive RFC 6962 §2.1 implementation (MTH, PATH, PROOF written
//! from the RFC's definitions over the list of leaves), with the stored nodes that `append`
//! produces kept in a map, as the database keeps them.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use super::{
    EMPTY_ROOT, Hash, NodeId, TreeBuilder, TreeError, append, append_plan, consistency_plan, consistency_proof,
    inclusion_plan, inclusion_proof, leaf_hash, node_hash, root, root_plan,
};

/// The largest tree the exhaustive comparisons build.
pub(super) const MAX: u64 = 70;

pub(super) fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(format!("leaf {i}").as_bytes())).collect()
}

/// RFC 6962's k: the largest power of two smaller than n (n > 1).
fn k_of(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]).
pub(super) fn mth(d: &[Hash]) -> Hash {
    match d.len() {
        0 => EMPTY_ROOT,
        1 => d[0],
        n => node_hash(&mth(&d[..k_of(n)]), &mth(&d[k_of(n)..])),
    }
}

/// PATH(m, D[n]).
fn path(m: usize, d: &[Hash]) -> Vec<Hash> {
    if d.len() <= 1 {
        return Vec::new();
    }
    let k = k_of(d.len());
    let (mut p, sibling) = if m < k { (path(m, &d[..k]), mth(&d[k..])) } else { (path(m - k, &d[k..]), mth(&d[..k])) };
    p.push(sibling);
    p
}

/// SUBPROOF(m, D[n], b); PROOF(m, D[n]) is SUBPROOF(m, D[n], true).
fn subproof(m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    if m == d.len() {
        return if b { Vec::new() } else { vec![mth(d)] };
    }
    let k = k_of(d.len());
    let (mut p, sibling) =
        if m <= k { (subproof(m, &d[..k], b), mth(&d[k..])) } else { (subproof(m - k, &d[k..], false), mth(&d[..k])) };
    p.push(sibling);
    p
}

/// Every node `append` stores for `leaves`, each read back through `append_plan`.
pub(super) fn stored(leaves: &[Hash]) -> HashMap<NodeId, Hash> {
    let mut store = HashMap::new();
    for (n, leaf) in (0..).zip(leaves) {
        let needed: Vec<Hash> = append_plan(n).iter().map(|id| store[id]).collect();
        for (id, hash) in append(n, *leaf, &needed).unwrap() {
            assert!(store.insert(id, hash).is_none(), "{id:?} stored twice");
        }
    }
    store
}

/// The hashes a plan names, checking it names only nodes complete within `size` leaves.
pub(super) fn read(store: &HashMap<NodeId, Hash>, plan: &[NodeId], size: u64) -> Vec<Hash> {
    for id in plan {
        assert!((id.index + 1) << id.level <= size, "{id:?} is not complete in a tree of {size}");
    }
    plan.iter().map(|id| store[id]).collect()
}

fn bit_len(x: u64) -> usize {
    (64 - x.leading_zeros()) as usize
}

#[test]
fn append_stores_each_complete_subtree_once_with_its_rfc_6962_hash() {
    let d = leaves(MAX);
    let store = stored(&d);
    let expected: u64 = (0..7).map(|level| MAX >> level).sum();
    assert_eq!(store.len() as u64, expected);
    for (id, hash) in &store {
        let lo = (id.index << id.level) as usize;
        assert_eq!(*hash, mth(&d[lo..lo + (1 << id.level)]), "{id:?}");
    }
}

#[test]
fn roots_from_stored_nodes_equal_mth_for_every_size_up_to_70() {
    let d = leaves(MAX);
    let store = stored(&d);
    for size in 0..=MAX {
        let plan = root_plan(size);
        assert_eq!(plan.len(), size.count_ones() as usize, "size {size}");
        assert_eq!(root(size, &read(&store, &plan, size)), Ok(mth(&d[..size as usize])), "size {size}");
    }
}

#[test]
fn inclusion_proofs_equal_rfc_6962_path_for_every_leaf_of_every_size_up_to_70() {
    let d = leaves(MAX);
    let store = stored(&d);
    for size in 1..=MAX {
        for index in 0..size {
            let plan = inclusion_plan(index, size).unwrap();
            assert!(plan.len() <= 2 * bit_len(size), "plan for {index} in {size} has {} nodes", plan.len());
            let proof = inclusion_proof(index, size, &read(&store, &plan, size)).unwrap();
            assert_eq!(proof, path(index as usize, &d[..size as usize]), "leaf {index} in {size}");
        }
    }
}

#[test]
fn consistency_proofs_equal_rfc_6962_proof_for_every_pair_of_sizes_up_to_70() {
    let d = leaves(MAX);
    let store = stored(&d);
    for n in 1..=MAX {
        for m in 0..=n {
            let plan = consistency_plan(m, n).unwrap();
            assert!(plan.len() <= 2 * bit_len(n), "plan for {m} to {n} has {} nodes", plan.len());
            let proof = consistency_proof(m, n, &read(&store, &plan, n)).unwrap();
            let want = if m == 0 { Vec::new() } else { subproof(m as usize, &d[..n as usize], true) };
            assert_eq!(proof, want, "{m} to {n}");
        }
    }
}

#[test]
fn the_tree_builder_stores_what_append_stores_and_has_the_mth_root() {
    let d = leaves(MAX);
    let store = stored(&d);
    let mut builder = TreeBuilder::new();
    assert_eq!((builder.size(), builder.root()), (0, EMPTY_ROOT));
    for (n, leaf) in (0..).zip(&d) {
        let needed: Vec<Hash> = append_plan(n).iter().map(|id| store[id]).collect();
        assert_eq!(builder.push(*leaf), append(n, *leaf, &needed).unwrap(), "leaf {n}");
        assert_eq!(builder.size(), n + 1);
        assert_eq!(builder.root(), mth(&d[..=n as usize]), "root after leaf {n}");
    }
}

#[test]
fn the_empty_root_and_the_certificate_transparency_leaves_have_their_published_hashes() {
    assert_eq!(EMPTY_ROOT, <[u8; 32]>::from(Sha256::digest(b"")));
    let leaves = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"];
    let mut builder = TreeBuilder::new();
    for leaf in leaves {
        builder.push(leaf_hash(&hex::decode(leaf).unwrap()));
    }
    assert_eq!(STANDARD.encode(leaf_hash(b"")), "bjQLnP+zepicpUTmu3gKLHiQHT+zNzh2hRGjBhevoB0=");
    assert_eq!(STANDARD.encode(builder.root()), "XcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=");
}

#[test]
fn requests_outside_the_tree_or_with_the_wrong_hashes_are_refused() {
    let h = leaf_hash(b"x");
    assert_eq!(inclusion_plan(5, 5), Err(TreeError::IndexOutOfRange { index: 5, size: 5 }));
    assert_eq!(inclusion_proof(0, 0, &[]), Err(TreeError::IndexOutOfRange { index: 0, size: 0 }));
    assert_eq!(consistency_plan(6, 5), Err(TreeError::SizesOutOfOrder { m: 6, n: 5 }));
    assert_eq!(consistency_proof(6, 5, &[]), Err(TreeError::SizesOutOfOrder { m: 6, n: 5 }));
    assert_eq!(root(5, &[h]), Err(TreeError::WrongHashCount { expected: 2, given: 1 }));
    assert_eq!(root(0, &[h]), Err(TreeError::WrongHashCount { expected: 0, given: 1 }));
    assert_eq!(inclusion_proof(0, 2, &[h, h]), Err(TreeError::WrongHashCount { expected: 1, given: 2 }));
    assert_eq!(consistency_proof(3, 4, &[h]), Err(TreeError::WrongHashCount { expected: 3, given: 1 }));
    assert_eq!(append(3, h, &[h]), Err(TreeError::WrongHashCount { expected: 2, given: 1 }));
    assert_eq!(append(u64::MAX, h, &[h; 64]), Err(TreeError::LogFull));
}

#[test]
fn plans_for_the_largest_trees_stay_logarithmic_without_overflow() {
    let big = u64::MAX;
    assert_eq!(root_plan(big).len(), 64);
    assert_eq!(append_plan(big - 1).len(), 0);
    assert_eq!(append_plan(big).len(), 64);
    for index in [0, 1, big / 2, big - 2, big - 1] {
        assert!(inclusion_plan(index, big).unwrap().len() <= 128, "leaf {index}");
    }
    for m in [1, 2, 3, big / 2, big - 1, big] {
        assert!(consistency_plan(m, big).unwrap().len() <= 128, "{m} to {big}");
    }
    assert_eq!(inclusion_plan(big - 1, big).unwrap().last(), Some(&NodeId { level: 63, index: 0 }));
}
