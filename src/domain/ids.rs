//! Identifiers: MDE machine ids, dualkey release ids and release batch ids.

use super::ParseError;
use std::fmt;

/// An MDE machine id: exactly 40 hexadecimal characters, stored lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MachineId(String);

impl MachineId {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if raw.len() == 40 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(raw.to_ascii_lowercase()))
        } else {
            Err(ParseError::new("invalid_machine_id", "machine_id must be 40 hexadecimal characters"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MachineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A release id: a UUID (v7 when dualkey makes it, so ids sort by creation time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReleaseId(uuid::Uuid);

impl ReleaseId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        // Only the hyphenated form: one spelling per id keeps audit and URLs unambiguous.
        if raw.len() != 36 {
            return Err(ParseError::new("invalid_release_id", "release id must be a UUID"));
        }
        uuid::Uuid::try_parse(raw)
            .map(Self)
            .map_err(|_| ParseError::new("invalid_release_id", "release id must be a UUID"))
    }

    /// `[dualkey:<id>]`: how the comment of an MDE action dualkey made names its release.
    pub fn marker(&self) -> String {
        format!("{MARKER_START}{self}]")
    }

    /// The release named by the first marker in `text` (an MDE action's comment), if any.
    pub fn from_marker(text: &str) -> Option<Self> {
        let start = text.find(MARKER_START)? + MARKER_START.len();
        let len = text[start..].find(']')?;
        Self::parse(&text[start..start + len]).ok()
    }
}

const MARKER_START: &str = "[dualkey:";

impl Default for ReleaseId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for ReleaseId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

/// A release batch id: a UUID (v7 when dualkey makes it), in the same one spelling as a
/// [`ReleaseId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BatchId(uuid::Uuid);

impl BatchId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if raw.len() != 36 {
            return Err(ParseError::new("invalid_batch_id", "batch id must be a UUID"));
        }
        uuid::Uuid::try_parse(raw).map(Self).map_err(|_| ParseError::new("invalid_batch_id", "batch id must be a UUID"))
    }
}

impl Default for BatchId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_ids_are_40_hex_characters_stored_lower_case() {
        let id = MachineId::parse("1E5BC9D7E413DDD7902C2932E418702B84D0CC07").unwrap();
        assert_eq!(id.as_str(), "1e5bc9d7e413ddd7902c2932e418702b84d0cc07");
        for bad in
            ["", "1e5bc9d7", "1e5bc9d7e413ddd7902c2932e418702b84d0cc0g", "1e5bc9d7e413ddd7902c2932e418702b84d0cc071"]
        {
            assert_eq!(MachineId::parse(bad).unwrap_err().code, "invalid_machine_id");
        }
    }

    #[test]
    fn release_ids_are_hyphenated_uuids() {
        let id = ReleaseId::new();
        assert_eq!(ReleaseId::parse(&id.to_string()).unwrap(), id);
        assert!(ReleaseId::parse("not-a-uuid").is_err());
        assert!(ReleaseId::parse(&id.to_string().replace('-', "")).is_err());
    }

    #[test]
    fn batch_ids_are_hyphenated_uuids() {
        let id = BatchId::new();
        assert_eq!(BatchId::parse(&id.to_string()).unwrap(), id);
        assert_eq!(BatchId::parse("not-a-uuid").unwrap_err().code, "invalid_batch_id");
        assert!(BatchId::parse(&id.to_string().replace('-', "")).is_err());
    }

    #[test]
    fn a_release_id_is_read_back_from_its_marker_in_a_comment() {
        let id = ReleaseId::new();
        assert_eq!(id.marker(), format!("[dualkey:{id}]"));
        assert_eq!(ReleaseId::from_marker(&format!("{} Released by dualkey", id.marker())), Some(id));
        for none in ["released by hand", "[dualkey:not-an-id] x", "[dualkey:", "[dualkey:0192f0c4]"] {
            assert_eq!(ReleaseId::from_marker(none), None, "{none}");
        }
    }
}
