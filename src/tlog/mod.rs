//! The transparency log's pure parts: the RFC 6962 Merkle tree over stored complete subtrees
//! (plans of the nodes to read, and the hashes they give) and proof verification. No I/O: the
//! caller reads and writes the stored nodes.

mod merkle;
mod verify;

#[cfg(test)]
mod merkle_tests;
#[cfg(test)]
mod verify_tests;

pub(crate) use merkle::{
    EMPTY_ROOT, Hash, NodeId, TreeBuilder, TreeError, append, append_plan, consistency_plan, consistency_proof,
    inclusion_plan, inclusion_proof, leaf_hash, node_hash, root, root_plan,
};
pub(crate) use verify::{ProofError, verify_consistency, verify_inclusion};
