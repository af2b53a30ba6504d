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

pub(crate) use checkpoint::Checkpoint;
pub(crate) use merkle::{
    Hash, NodeId, TreeBuilder, TreeError, append, append_plan, consistency_plan, consistency_proof, inclusion_plan,
    inclusion_proof, leaf_hash, root, root_plan,
};
pub(crate) use note::{NoteVerifier, Signer};
pub(crate) use verify::{verify_consistency, verify_inclusion};

// What only the tests name from outside their module.
#[cfg(test)]
pub(crate) use merkle::{EMPTY_ROOT, node_hash};
#[cfg(test)]
pub(crate) use note::NoteError;
#[cfg(test)]
pub(crate) use verify::ProofError;
