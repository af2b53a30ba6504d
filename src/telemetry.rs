//! Logging on stderr, as `[log]` says: text (coloured only when stderr is a terminal and
//! `NO_COLOR` is unset, so a log file or a pipe gets plain text) or one JSON object per line;
//! dualkey's own events down to `[log] level`, every dependency's down to `warn`. `RUST_LOG`,
//! when set, replaces that filter entirely.
//!
//! The subscriber is installed once the settings are loaded (`cli::load_settings`); commands
//! that read no settings install [`init_default`].

use crate::settings::{LogFormat, LogSettings};
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// The filter `[log] level` stands for when `RUST_LOG` is unset: dualkey at that level, the
/// rest at `warn`.
pub fn default_directives(log: &LogSettings) -> String {
    format!("warn,dualkey={}", log.level.as_str())
}

fn filter(log: &LogSettings) -> EnvFilter {
    match std::env::var("RUST_LOG") {
        // Invalid directives are reported on stderr and skipped by `parse_lossy`.
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::builder().parse_lossy(directives),
        _ => EnvFilter::new(default_directives(log)),
    }
}

/// Installs the global subscriber for `log`. Safe to call more than once: the first call wins.
pub fn init(log: &LogSettings) {
    let builder = tracing_subscriber::fmt().with_env_filter(filter(log)).with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()))
            .try_init(),
        LogFormat::Json => builder.with_ansi(false).json().with_current_span(true).with_span_list(true).try_init(),
    };
}

/// Installs the subscriber for the default `[log]` (text, info), for commands that read no settings.
pub fn init_default() {
    init(&LogSettings::default());
}
