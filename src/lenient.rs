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
pub(crate) fn lenient_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    lenient_opt_u32(d)?.ok_or_else(|| de::Error::custom("a whole number is required"))
}

/// Like [`lenient_u32`]; an empty string is `None`.
pub(crate) fn lenient_opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
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
pub(crate) fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct Values {
        #[serde(deserialize_with = "lenient_u32")]
        n: u32,
        #[serde(deserialize_with = "lenient_opt_u32")]
        limit: Option<u32>,
        #[serde(deserialize_with = "lenient_bool")]
        on: bool,
    }

    fn read(text: &str) -> Result<Values, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_and_booleans_are_read_from_toml_values_or_from_strings() {
        let v = read("n = 3\nlimit = 5\non = true").unwrap();
        assert_eq!((v.n, v.limit, v.on), (3, Some(5), true));
        let v = read("n = \" 3 \"\nlimit = \"\"\non = \"no\"").unwrap();
        assert_eq!((v.n, v.limit, v.on), (3, None, false));
        for (bad, says) in [
            ("n = -1\nlimit = 1\non = true", "out of range"),
            ("n = \"three\"\nlimit = 1\non = true", "not a whole number"),
            ("n = true\nlimit = 1\non = true", "not a whole number"),
            ("n = \"\"\nlimit = 1\non = true", "a whole number is required"),
            ("n = 1\nlimit = 1\non = \"maybe\"", "not true or false"),
        ] {
            let err = read(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
