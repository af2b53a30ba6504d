//! Checking inclusion and consistency proofs against tree roots, as a client of the log does:
//! RFC 9162 §2.1.3.2 and §2.1.4.2, in the form of transparency-dev/merkle's verifier, whose
//! test vectors these functions pass (including its refusal of consistency from size 0).

use super::merkle::{Hash, node_hash};

/// Why a proof was refused. Every variant means "do not trust this checkpoint pair".
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ProofError {
    #[error("leaf {index} is not in a tree of {size} leaves")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("the proof has {given} hashes, but a proof for these tree sizes has {expected}")]
    WrongLength { expected: usize, given: usize },
    #[error("the inclusion proof does not lead to the checkpoint's root")]
    InclusionRootMismatch,
    #[error("the older tree size {m} is larger than the newer tree size {n}")]
    SizesOutOfOrder { m: u64, n: u64 },
    #[error("a consistency proof from the empty tree proves nothing; every tree extends it")]
    FromEmptyTree,
    #[error("two checkpoints of the same size have different roots")]
    SameSizeDifferentRoots,
    #[error("the consistency proof does not lead to the older checkpoint's root")]
    OldRootMismatch,
    #[error("the consistency proof does not lead to the newer checkpoint's root")]
    NewRootMismatch,
}

/// Succeeds only if `proof` shows that the leaf with hash `leaf` is number `index` in the tree
/// of `size` leaves whose root is `root`.
pub(crate) fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // The proof splits where the paths to `index` and to the last leaf part: below, siblings
    // on either side (`inner`); above, only left siblings along the right edge (`border`).
    let inner = bit_len(index ^ (size - 1));
    let border = (index >> inner).count_ones() as usize;
    check_length(inner + border, proof)?;
    let hash = chain_inner(*leaf, &proof[..inner], index);
    let hash = chain_border(hash, &proof[inner..]);
    if hash != *root {
        return Err(ProofError::InclusionRootMismatch);
    }
    Ok(())
}

/// Succeeds only if `proof` shows that the tree of `m` leaves with root `root_m` is a prefix of
/// the tree of `n` leaves with root `root_n`. Equal sizes need an empty proof and equal roots.
/// Size 0 is refused ([`ProofError::FromEmptyTree`]): there is nothing to prove, and a caller
/// whose previous checkpoint was empty has no root to hold the log to.
pub(crate) fn verify_consistency(
    m: u64,
    n: u64,
    root_m: &Hash,
    root_n: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if m > n {
        return Err(ProofError::SizesOutOfOrder { m, n });
    }
    if m == 0 {
        return Err(ProofError::FromEmptyTree);
    }
    if m == n {
        check_length(0, proof)?;
        if root_m != root_n {
            return Err(ProofError::SameSizeDifferentRoots);
        }
        return Ok(());
    }
    // The proof starts at the largest complete subtree ending at leaf m - 1 (height `shift`);
    // when that subtree is the whole old tree, the verifier knows it already: it is `root_m`.
    let shift = m.trailing_zeros() as usize;
    let fork = bit_len((m - 1) ^ (n - 1));
    let inner = fork - shift;
    let border = ((m - 1) >> fork).count_ones() as usize;
    let start = usize::from(!m.is_power_of_two());
    check_length(start + inner + border, proof)?;
    let (seed, rest) = if start == 0 { (*root_m, proof) } else { (proof[0], &proof[1..]) };
    let mask = (m - 1) >> shift;
    let old = chain_border(chain_inner_left(seed, &rest[..inner], mask), &rest[inner..]);
    if old != *root_m {
        return Err(ProofError::OldRootMismatch);
    }
    let new = chain_border(chain_inner(seed, &rest[..inner], mask), &rest[inner..]);
    if new != *root_n {
        return Err(ProofError::NewRootMismatch);
    }
    Ok(())
}

fn bit_len(x: u64) -> usize {
    (64 - x.leading_zeros()) as usize
}

fn check_length(expected: usize, proof: &[Hash]) -> Result<(), ProofError> {
    if proof.len() != expected {
        return Err(ProofError::WrongLength { expected, given: proof.len() });
    }
    Ok(())
}

/// Hashes `seed` up through `proof`, bottom up; bit i of `index` says whether level i's node
/// is a right child (its sibling from the proof goes on the left).
fn chain_inner(seed: Hash, proof: &[Hash], index: u64) -> Hash {
    proof.iter().enumerate().fold(seed, |hash, (i, sibling)| {
        if (index >> i) & 1 == 0 { node_hash(&hash, sibling) } else { node_hash(sibling, &hash) }
    })
}

/// Like `chain_inner`, but keeps only the left siblings: the same path in the older tree, which
/// ends where the new leaves begin.
fn chain_inner_left(seed: Hash, proof: &[Hash], index: u64) -> Hash {
    proof.iter().enumerate().fold(
        seed,
        |hash, (i, sibling)| {
            if (index >> i) & 1 == 1 { node_hash(sibling, &hash) } else { hash }
        },
    )
}

/// Hashes `seed` up the tree's right edge, where every sibling is on the left.
fn chain_border(seed: Hash, proof: &[Hash]) -> Hash {
    proof.iter().fold(seed, |hash, sibling| node_hash(sibling, &hash))
}
