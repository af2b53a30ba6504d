//! Whether two identities are the same person (a leaf: used by the domain and the rules), for every separation-of-duties comparison
//! (self-approval, distinct approvers, isolator exclusion, velocity counting).
//!
//! Identities are stored as the token gave them; only comparisons go through [`PersonKey`].
//! Two identities are the same person when their NFKC case-folded forms are equal (`ALICE`,
//! `ａｌｉｃｅ`) or their confusable skeletons (Unicode TS #39) are (`аlice` with a Cyrillic а).
//! Both forms also drop whitespace at the ends and invisible characters, so an identity stored
//! before such claims were refused still matches. The check errs toward "same person": a false
//! match refuses an approval someone else can give; a false distinction lets one person be two.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_security::confusable_detection::skeleton;

/// Control (Cc) and format (Cf) characters: invisible, so never part of who someone is.
fn invisible(c: char) -> bool {
    matches!(c.general_category(), GeneralCategory::Control | GeneralCategory::Format)
}

/// An identity's comparison forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonKey {
    /// NFKC, lower-cased, NFKC again; without invisible characters or surrounding whitespace.
    folded: String,
    /// The TS #39 skeleton of `folded`.
    skeleton: String,
}

impl PersonKey {
    pub fn of(id: &str) -> Self {
        let visible: String = id.nfkc().filter(|c| !invisible(*c)).collect();
        let folded: String = visible.trim().chars().flat_map(char::to_lowercase).nfkc().collect();
        let skeleton = skeleton(&folded).collect();
        Self { folded, skeleton }
    }

    /// The same person as `other`: either form equal.
    pub fn same_as(&self, other: &PersonKey) -> bool {
        self.folded == other.folded || self.skeleton == other.skeleton
    }
}

/// Whether identities `a` and `b` are the same person (see the module doc).
pub fn same_person(a: &str, b: &str) -> bool {
    a == b || PersonKey::of(a).same_as(&PersonKey::of(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_look_alike_of_alice_is_alice() {
        for other in
            ["alice", "alice ", " alice", "ALICE", "Alice", "alice\u{200b}", "\u{430}lice", "ａｌｉｃｅ", "al\u{131}ce"]
        {
            assert!(same_person("alice", other), "{other:?}");
        }
    }

    #[test]
    fn different_names_are_different_people() {
        for other in ["alicia", "alic", "bob", "alice2", ""] {
            assert!(!same_person("alice", other), "{other:?}");
        }
    }

    #[test]
    fn case_and_confusables_match_outside_ascii_too() {
        assert!(same_person("bob", "BOB"));
        assert!(same_person("isolator@contoso.com", "is\u{43e}lator@contoso.com"), "Cyrillic о");
        assert!(same_person("Isolator@Contoso.com", "isolator@contoso.com\u{200b}"));
    }
}
