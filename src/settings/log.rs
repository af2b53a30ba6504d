//! `[log]`: how dualkey writes its log lines, and how much of its own it writes.

use serde::Deserialize;

/// The shape of each log line on stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line: timestamp, level, target, fields (the message among them) and
    /// the fields of the spans it happened in (the request's id among them).
    Json,
}

/// The most detailed events dualkey writes of its own; dependencies stay at `warn`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The level as an `EnvFilter` directive names it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// `[log]`. `RUST_LOG`, when set, replaces `level` entirely (for dependencies too).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: LogLevel,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{EMBEDDED_DEFAULT, load_from_str};

    fn with(pairs: &[(&str, &str)]) -> Result<LogSettings, String> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        load_from_str(EMBEDDED_DEFAULT, "test", env).map(|s| s.log).map_err(|e| e.to_string())
    }

    #[test]
    fn logs_default_to_text_at_info() {
        let log = with(&[]).unwrap();
        assert_eq!((log.format, log.level), (LogFormat::Text, LogLevel::Info));
    }

    #[test]
    fn format_and_level_are_read_from_the_environment() {
        let log = with(&[("DUALKEY_LOG__FORMAT", "json"), ("DUALKEY_LOG__LEVEL", "debug")]).unwrap();
        assert_eq!((log.format, log.level), (LogFormat::Json, LogLevel::Debug));
    }

    #[test]
    fn an_unknown_format_or_level_stops_start_up_naming_the_key_and_the_choices() {
        let e = with(&[("DUALKEY_LOG__FORMAT", "xml")]).unwrap_err();
        assert!(e.contains("DUALKEY_LOG__FORMAT") && e.contains("log.format") && e.contains("json"), "{e}");
        let e = with(&[("DUALKEY_LOG__LEVEL", "verbose")]).unwrap_err();
        assert!(e.contains("log.level") && e.contains("debug"), "{e}");
    }
}
