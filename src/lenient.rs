//! Scalars in settings that may arrive as strings: environment overrides
//! (`DUALKEY_POLICY__APPROVALS_REQUIRED=2`) are text, so numbers and booleans accept both forms
//! everywhere in the settings tree and the `[policy]` document. A leaf: it knows only serde.

use serde::{Deserialize, Deserializer, de};

#[derive(Deserialize)]
#[serde(untagged)]
enum Lenient {
    Int(i64),
    Bool(bool),
    Str(String),
}

/// A `u32` written as a number in TOML or as a string in an environment variable.
pub fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    lenient_opt_u32(d)?.ok_or_else(|| de::Error::custom("a whole number is required"))
}

/// Like [`lenient_u32`]; an empty string is `None`.
pub fn lenient_opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let n = match Lenient::deserialize(d)? {
        Lenient::Int(n) => n,
        Lenient::Str(s) if s.trim().is_empty() => return Ok(None),
        Lenient::Str(s) => s.trim().parse().map_err(|_| de::Error::custom(format!("`{s}` is not a whole number")))?,
        Lenient::Bool(b) => return Err(de::Error::custom(format!("`{b}` is not a whole number"))),
    };
    u32::try_from(n).map(Some).map_err(|_| de::Error::custom(format!("{n} is out of range")))
}

/// A `bool` written as `true`/`false` in TOML, or as `true`/`false`/`1`/`0`/`yes`/`no` in an
/// environment variable.
pub fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Lenient::deserialize(d)? {
        Lenient::Bool(b) => Ok(b),
        Lenient::Str(s) => match s.trim() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            other => Err(de::Error::custom(format!("`{other}` is not true or false"))),
        },
        Lenient::Int(n) => Err(de::Error::custom(format!("`{n}` is not true or false"))),
    }
}
