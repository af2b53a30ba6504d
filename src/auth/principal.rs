//! The authenticated caller.

use std::collections::BTreeSet;

/// Who is calling, as proven by a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The value of the configured principal claim (`sub` by default, `oid` for Entra users).
    pub id: String,
    /// App roles from the configured roles claim.
    pub roles: BTreeSet<String>,
    /// `upn` or `preferred_username`, for display and isolator matching; never for identity.
    pub upn: Option<String>,
}

impl Principal {
    pub fn new(id: String, roles: Vec<String>, upn: Option<String>) -> Self {
        Self { id, roles: roles.into_iter().collect(), upn }
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }

    pub fn roles_vec(&self) -> Vec<String> {
        self.roles.iter().cloned().collect()
    }
}
