//! The authenticated caller.

use crate::clock::Timestamp;
use serde::Serialize;
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
    /// Set when the caller is a console session: how and when they signed in, recorded with
    /// their decisions. `None` for bearer tokens.
    pub sign_in: Option<SignIn>,
}

/// A console sign-in, as the audit entries of the decisions made in it record it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignIn {
    /// When dualkey signed the person in (the session began).
    pub signed_in_at: Timestamp,
    /// When the identity provider authenticated them (`auth_time`, else `signed_in_at`).
    pub auth_time: Timestamp,
    /// How they authenticated (`amr`), when the provider said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
}

impl Principal {
    pub fn new(id: String, roles: Vec<String>, upn: Option<String>) -> Self {
        Self { id, roles: roles.into_iter().collect(), upn, sign_in: None }
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains(role)
    }

    pub fn roles_vec(&self) -> Vec<String> {
        self.roles.iter().cloned().collect()
    }
}
