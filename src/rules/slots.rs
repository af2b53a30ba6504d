//! Filling a rule's slots with approvals: the assignment that fills the most seats counts.
//!
//! A slot `{ role, count }` has `count` seats. Each approver fills at most one seat, only of a
//! slot whose role they hold; the requester fills none. The best assignment is a maximum
//! bipartite matching between approvers and seats, found with augmenting paths (Kuhn's
//! algorithm; at most 20 seats, so its cost does not matter).

use crate::person::{PersonKey, same_person};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// `count` distinct approvers holding `role`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub role: String,
    pub count: u32,
}

/// Seats in all: how many distinct approvers `slots` take.
pub(super) fn seats(slots: &[Slot]) -> u32 {
    slots.iter().map(|s| s.count).sum()
}

/// A slot and who fills it, in approval order; shown on the release so approvers see what is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SlotState {
    pub role: String,
    pub count: u32,
    pub filled_by: Vec<String>,
}

impl SlotState {
    /// Seats of this slot still open.
    pub fn open(&self) -> u32 {
        self.count.saturating_sub(self.filled_by.len() as u32)
    }
}

/// A person who approved (or wants to), with the roles they held when approving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approver {
    pub id: String,
    pub roles: BTreeSet<String>,
}

impl Approver {
    pub fn new(id: impl Into<String>, roles: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { id: id.into(), roles: roles.into_iter().map(Into::into).collect() }
    }
}

/// Why a new approval would not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SeatRefusal {
    #[error("the requester cannot fill a slot of their own release")]
    Requester,
    #[error("this person has already approved")]
    AlreadyApproved,
    #[error("every slot is already filled")]
    Complete,
    #[error("no open slot needs any role this person holds")]
    NoOpenSeat,
}

/// The best assignment of approvers to slots. Deterministic: among assignments filling the
/// same number of seats, earlier approvers are kept over later ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quorum {
    slots: Vec<Slot>,
    requester: String,
    approvers: Vec<Approver>,
    state: Vec<SlotState>,
    unused: Vec<String>,
}

impl Quorum {
    /// Assigns `approvers` (in approval order) to `slots`. Identities compare as people
    /// ([`same_person`]): repeated people count once (the first); the requester and anyone holding no needed role fill nothing and appear in [`Quorum::unused`].
    pub fn compute(slots: &[Slot], requester: &str, approvers: &[Approver]) -> Quorum {
        let mut seen: Vec<PersonKey> = Vec::new();
        let approvers: Vec<Approver> = approvers
            .iter()
            .filter(|a| {
                let key = PersonKey::of(&a.id);
                let new = !seen.iter().any(|k| k.same_as(&key));
                seen.push(key);
                new
            })
            .cloned()
            .collect();
        let seats: Vec<usize> =
            slots.iter().enumerate().flat_map(|(i, s)| std::iter::repeat_n(i, s.count as usize)).collect();
        let mut owner: Vec<Option<usize>> = vec![None; seats.len()];
        let graph = Graph { slots, seats: &seats, approvers: &approvers };
        for (a, approver) in approvers.iter().enumerate() {
            if !same_person(&approver.id, requester) {
                graph.augment(a, &mut owner, &mut vec![false; seats.len()]);
            }
        }
        let mut seated: Vec<Vec<usize>> = vec![Vec::new(); slots.len()];
        for (seat, who) in owner.iter().enumerate() {
            if let Some(a) = who {
                seated[seats[seat]].push(*a);
            }
        }
        let state = slots
            .iter()
            .zip(seated)
            .map(|(slot, mut who)| {
                who.sort_unstable();
                let filled_by = who.into_iter().map(|a| approvers[a].id.clone()).collect();
                SlotState { role: slot.role.clone(), count: slot.count, filled_by }
            })
            .collect();
        let unused =
            (0..approvers.len()).filter(|a| !owner.contains(&Some(*a))).map(|a| approvers[a].id.clone()).collect();
        Quorum { slots: slots.to_vec(), requester: requester.to_string(), approvers, state, unused }
    }

    /// Each slot with who fills it.
    pub fn slots(&self) -> &[SlotState] {
        &self.state
    }

    /// Ids of approvals that fill no seat, in approval order.
    pub fn unused(&self) -> &[String] {
        &self.unused
    }

    /// Seats filled across all slots.
    pub fn filled(&self) -> u32 {
        self.state.iter().map(|s| s.filled_by.len() as u32).sum()
    }

    /// True when every seat is filled. False when there are no slots at all: an empty
    /// requirement (a deny rule has none) never approves anything.
    pub fn is_complete(&self) -> bool {
        !self.state.is_empty() && self.state.iter().all(|s| s.open() == 0)
    }

    /// The slots with open seats, `count` being how many more approvers each needs.
    pub fn missing(&self) -> Vec<Slot> {
        self.state.iter().filter(|s| s.open() > 0).map(|s| Slot { role: s.role.clone(), count: s.open() }).collect()
    }

    /// Would `approver` fill one more seat? (Possibly by moving an earlier approver who holds
    /// several roles to another slot.)
    pub fn check_add(&self, approver: &Approver) -> Result<(), SeatRefusal> {
        if same_person(&approver.id, &self.requester) {
            return Err(SeatRefusal::Requester);
        }
        if self.approvers.iter().any(|a| same_person(&a.id, &approver.id)) {
            return Err(SeatRefusal::AlreadyApproved);
        }
        if self.is_complete() {
            return Err(SeatRefusal::Complete);
        }
        let mut more = self.approvers.clone();
        more.push(approver.clone());
        if Quorum::compute(&self.slots, &self.requester, &more).filled() > self.filled() {
            Ok(())
        } else {
            Err(SeatRefusal::NoOpenSeat)
        }
    }

    /// [`Quorum::check_add`] as a yes or no.
    pub fn can_add(&self, approver: &Approver) -> bool {
        self.check_add(approver).is_ok()
    }
}

struct Graph<'a> {
    slots: &'a [Slot],
    seats: &'a [usize],
    approvers: &'a [Approver],
}

impl Graph<'_> {
    /// Finds a seat for approver `a`, moving seated approvers along an augmenting path if needed.
    /// A seated approver is never unseated, only moved, which is why earlier approvers win ties.
    fn augment(&self, a: usize, owner: &mut [Option<usize>], visited: &mut [bool]) -> bool {
        for seat in 0..self.seats.len() {
            if visited[seat] || !self.approvers[a].roles.contains(&self.slots[self.seats[seat]].role) {
                continue;
            }
            visited[seat] = true;
            if owner[seat].is_none_or(|b| self.augment(b, owner, visited)) {
                owner[seat] = Some(a);
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
#[path = "slots_tests.rs"]
mod tests;
