//! The transparency log's pure parts: the RFC 6962 Merkle tree over stored complete subtrees
//! (plans of the nodes to read, and the hashes they give), proof verification, and checkpoints
//! signed as C2SP notes with Ed25519. No I/O: the caller reads and writes the stored nodes.

mod checkpoint;
mod merkle;
mod note;
mod verify;

#[cfg(test)]
mod merkle_tests;
#[cfg(test)]
mod verify_tests;

pub(crate) use checkpoint::{Checkpoint, CheckpointError};
pub(crate) use merkle::{
    EMPTY_ROOT, Hash, NodeId, TreeBuilder, TreeError, append, append_plan, consistency_plan, consistency_proof,
    inclusion_plan, inclusion_proof, leaf_hash, node_hash, root, root_plan,
};
pub(crate) use note::{NoteError, NoteVerifier, Signer};
pub(crate) use verify::{ProofError, verify_consistency, verify_inclusion};
