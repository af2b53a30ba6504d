//! The RFC 6962 / RFC 9162 §2.1 Merkle tree, computed from stored complete subtrees.
//!
//! The log stores one hash per complete (perfect) subtree: node `(level L, index k)` is the
//! tree hash of leaves `[k·2^L, (k+1)·2^L)`, written once, when its last leaf is appended, and
//! never changed. Any other hash (a root, a proof's node on the tree's right edge) is folded
//! from the O(log n) complete subtrees inside it. Reading stored nodes is the caller's I/O, so
//! each computation is a `*_plan` (the nodes it needs, in order) and a finish taking those
//! hashes in the same order. This follows golang.org/x/mod/sumdb/tlog.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, an interior node or a tree root.
pub(crate) type Hash = [u8; 32];

/// The root of the empty tree, SHA-256 of the empty string (RFC 6962 §2.1).
pub(crate) const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41,
    0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The hash of a leaf holding `data`: SHA-256(0x00 ‖ data).
pub(crate) fn leaf_hash(data: &[u8]) -> Hash {
    Sha256::new().chain_update([0x00]).chain_update(data).finalize().into()
}

/// The hash of an interior node: SHA-256(0x01 ‖ left ‖ right).
pub(crate) fn node_hash(left: &Hash, right: &Hash) -> Hash {
    Sha256::new().chain_update([0x01]).chain_update(left).chain_update(right).finalize().into()
}

/// A stored complete subtree: the hash of leaves `[index·2^level, (index+1)·2^level)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NodeId {
    pub(crate) level: u8,
    pub(crate) index: u64,
}

/// A request the tree cannot answer; nothing here depends on the hashes' values.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TreeError {
    #[error("leaf {index} is not in a tree of {size} leaves")]
    IndexOutOfRange { index: u64, size: u64 },
    #[error("the older tree size {m} is larger than the newer tree size {n}")]
    SizesOutOfOrder { m: u64, n: u64 },
    #[error("{given} stored hashes were given where the plan names {expected}")]
    WrongHashCount { expected: usize, given: usize },
    #[error("the log is full: a tree of 2^64 leaves has no size a u64 can hold")]
    LogFull,
}

/// The stored nodes needed to append leaf number `n` to a tree of `n` leaves: the left sibling
/// of each subtree the new leaf completes, bottom up (one per trailing 1 bit of `n`).
pub(crate) fn append_plan(n: u64) -> Vec<NodeId> {
    (0..n.trailing_ones()).map(|level| NodeId { level: level as u8, index: (n >> level) - 1 }).collect()
}

/// The nodes to store for leaf `n`, given `leaf` (its hash) and the hashes of `append_plan(n)`:
/// `(0, n)` itself, then every subtree it completes, bottom up.
pub(crate) fn append(n: u64, leaf: Hash, needed: &[Hash]) -> Result<Vec<(NodeId, Hash)>, TreeError> {
    if n == u64::MAX {
        return Err(TreeError::LogFull);
    }
    let expected = n.trailing_ones() as usize;
    if needed.len() != expected {
        return Err(TreeError::WrongHashCount { expected, given: needed.len() });
    }
    let mut nodes = vec![(NodeId { level: 0, index: n }, leaf)];
    let mut hash = leaf;
    for (level, left) in (1..).zip(needed) {
        hash = node_hash(left, &hash);
        nodes.push((NodeId { level, index: n >> level }, hash));
    }
    Ok(nodes)
}

/// The stored nodes whose hashes give the root of the tree of `size` leaves (at most 64).
pub(crate) fn root_plan(size: u64) -> Vec<NodeId> {
    plan_of(&[(0, size)])
}

/// The root of the tree of `size` leaves from the hashes of `root_plan(size)`; `EMPTY_ROOT`
/// for size 0.
pub(crate) fn root(size: u64, hashes: &[Hash]) -> Result<Hash, TreeError> {
    if size == 0 {
        check_count(0, hashes)?;
        return Ok(EMPTY_ROOT);
    }
    Ok(hashes_of(&[(0, size)], hashes)?[0])
}

/// The stored nodes needed for the inclusion proof of leaf `index` in the tree of `size`.
pub(crate) fn inclusion_plan(index: u64, size: u64) -> Result<Vec<NodeId>, TreeError> {
    Ok(plan_of(&inclusion_ranges(index, size)?))
}

/// The inclusion proof (RFC 9162 §2.1.3.1 audit path, bottom up) of leaf `index` in the tree
/// of `size`, from the hashes of `inclusion_plan(index, size)`.
pub(crate) fn inclusion_proof(index: u64, size: u64, hashes: &[Hash]) -> Result<Vec<Hash>, TreeError> {
    hashes_of(&inclusion_ranges(index, size)?, hashes)
}

/// The stored nodes needed for the consistency proof from the tree of `m` leaves to that of `n`.
pub(crate) fn consistency_plan(m: u64, n: u64) -> Result<Vec<NodeId>, TreeError> {
    Ok(plan_of(&consistency_ranges(m, n)?))
}

/// The consistency proof (RFC 9162 §2.1.4.1) from the tree of `m` leaves to that of `n`, from
/// the hashes of `consistency_plan(m, n)`; empty when `m == n` or `m == 0`.
pub(crate) fn consistency_proof(m: u64, n: u64, hashes: &[Hash]) -> Result<Vec<Hash>, TreeError> {
    hashes_of(&consistency_ranges(m, n)?, hashes)
}

/// Leaves `[lo, hi)` of the tree; every range here is a subtree of the RFC's recursive split,
/// so `lo` is a multiple of the largest power of two not above `hi - lo`.
type Range = (u64, u64);

/// The largest power of two smaller than `n` (n >= 2): RFC 6962's split point `k`.
fn split(n: u64) -> u64 {
    1 << (63 - (n - 1).leading_zeros())
}

/// RFC 6962 §2.1.1 PATH(index, D[0:size]) as the ranges whose hashes form it, bottom up.
fn inclusion_ranges(index: u64, size: u64) -> Result<Vec<Range>, TreeError> {
    if index >= size {
        return Err(TreeError::IndexOutOfRange { index, size });
    }
    let (mut lo, mut hi, mut ranges) = (0, size, Vec::new());
    while hi - lo > 1 {
        let k = split(hi - lo);
        if index < lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
        }
    }
    ranges.reverse();
    Ok(ranges)
}

/// RFC 6962 §2.1.2 PROOF(m, D[0:n]) as the ranges whose hashes form it, bottom up.
fn consistency_ranges(m: u64, n: u64) -> Result<Vec<Range>, TreeError> {
    if m > n {
        return Err(TreeError::SizesOutOfOrder { m, n });
    }
    if m == 0 {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[lo:hi], whole): `whole` while [lo, hi) still starts at leaf 0, so that
    // reaching m == hi means the verifier already knows the subtree: it is the old root.
    let (mut lo, mut hi, mut whole, mut ranges) = (0, n, true, Vec::new());
    while m != hi {
        let k = split(hi - lo);
        if m <= lo + k {
            ranges.push((lo + k, hi));
            hi = lo + k;
        } else {
            ranges.push((lo, lo + k));
            lo += k;
            whole = false;
        }
    }
    if !whole {
        ranges.push((lo, hi));
    }
    ranges.reverse();
    Ok(ranges)
}

/// The complete subtrees making up `[lo, hi)`, left to right (largest first).
fn subtrees(lo: u64, hi: u64) -> impl Iterator<Item = NodeId> {
    let mut lo = lo;
    std::iter::from_fn(move || {
        if lo >= hi {
            return None;
        }
        let size = hi - lo;
        let level = 63 - size.leading_zeros();
        let node = NodeId { level: level as u8, index: lo >> level };
        lo += 1 << level;
        Some(node)
    })
}

fn plan_of(ranges: &[Range]) -> Vec<NodeId> {
    ranges.iter().flat_map(|&(lo, hi)| subtrees(lo, hi)).collect()
}

fn check_count(expected: usize, hashes: &[Hash]) -> Result<(), TreeError> {
    if hashes.len() != expected {
        return Err(TreeError::WrongHashCount { expected, given: hashes.len() });
    }
    Ok(())
}

/// The hash of each range, folding its complete subtrees (taken from `hashes` in plan order)
/// right to left, as RFC 6962's MTH splits them.
fn hashes_of(ranges: &[Range], hashes: &[Hash]) -> Result<Vec<Hash>, TreeError> {
    let counts: Vec<usize> = ranges.iter().map(|&(lo, hi)| subtrees(lo, hi).count()).collect();
    check_count(counts.iter().sum(), hashes)?;
    let mut rest = hashes;
    let mut out = Vec::with_capacity(ranges.len());
    for count in counts {
        let (mine, after) = rest.split_at(count);
        rest = after;
        let (last, before) = mine.split_last().expect("every range in a plan is non-empty");
        out.push(before.iter().rev().fold(*last, |right, left| node_hash(left, &right)));
    }
    Ok(out)
}

/// Builds the tree from its leaf hashes in order, keeping only the roots of the complete
/// subtrees of the current tree (one per 1 bit of its size): O(log n) memory.
#[derive(Debug, Clone, Default)]
pub(crate) struct TreeBuilder {
    size: u64,
    /// Complete subtree roots, left to right (largest first).
    stack: Vec<Hash>,
}

impl TreeBuilder {
    /// An empty tree.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Appends `leaf` and returns the nodes it stores, exactly as `append` would.
    ///
    /// Panics on the 2^64th leaf, whose tree has no `u64` size.
    pub(crate) fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let completes = self.size.trailing_ones() as usize;
        let keep = self.stack.len() - completes;
        let needed: Vec<Hash> = self.stack[keep..].iter().rev().copied().collect();
        let nodes = append(self.size, leaf, &needed).expect("a TreeBuilder holds fewer than 2^64 - 1 leaves");
        self.stack.truncate(keep);
        self.stack.push(nodes.last().expect("append stores the leaf itself").1);
        self.size += 1;
        nodes
    }

    /// The number of leaves pushed.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// The root of the tree of the leaves pushed so far; `EMPTY_ROOT` before the first.
    pub(crate) fn root(&self) -> Hash {
        match self.stack.split_last() {
            None => EMPTY_ROOT,
            Some((last, before)) => before.iter().rev().fold(*last, |right, left| node_hash(left, &right)),
        }
    }
}
