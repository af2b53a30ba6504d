//! RFC 8785 (JCS) canonical JSON. Placeholder until the full implementation lands: keys sorted
//! by UTF-8 bytes, which equals JCS for the ASCII keys and integer numbers dualkey writes.

pub(crate) fn jcs(value: &serde_json::Value) -> String {
    crate::canonical::canonical_json(value)
}
