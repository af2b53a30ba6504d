//! Text that came with a request, made safe for the log. Anything a client chose (a token's
//! `kid` or claims, principal ids, headers, path ids, refusal reasons quoting them) is written
//! through [`untrusted`]: quoted, with control, format and bidirectional characters escaped, so
//! it can neither start a forged line nor send terminal escapes nor fake a `key=value` field,
//! and cut to [`MAX_CHARS`] characters with a marker saying how many were left out, so it cannot
//! fill the disk. Lines that anyone can cause without a token are also counted against a
//! [`LogLimiter`].

use crate::clock::Timestamp;
use crate::domain::is_hidden_control;
use std::fmt::{self, Write};
use std::sync::Mutex;
use std::time::Duration;

/// How much of one value taken from a request is logged.
pub const MAX_CHARS: usize = 64;

/// How much of a message that quotes request text (e.g. a refusal reason) is logged.
pub const MAX_MESSAGE_CHARS: usize = 128;

/// Request-derived text, displayed quoted, escaped and truncated.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted<'a> {
    text: &'a str,
    max_chars: usize,
}

/// `text` for a log field: at most [`MAX_CHARS`] characters, escaped.
pub fn untrusted(text: &str) -> Untrusted<'_> {
    Untrusted { text, max_chars: MAX_CHARS }
}

impl Untrusted<'_> {
    /// The same text, cut at `max_chars` characters instead.
    pub fn max_chars(self, max_chars: usize) -> Self {
        Self { max_chars, ..self }
    }
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.text.chars();
        f.write_char('"')?;
        for c in chars.by_ref().take(self.max_chars) {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if is_hidden_control(c) || (c.is_whitespace() && c != ' ') => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')?;
        let cut = chars.count();
        if cut > 0 {
            write!(f, "…[{cut} more characters]")?;
        }
        Ok(())
    }
}

/// Whether a line may be written now, and how many were held back before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Write the line; first, when `suppressed` is not zero, say that many were not written.
    Log { suppressed: u64 },
    /// The budget of this window is spent: count it, write nothing.
    Suppress,
}

/// At most `per_window` lines in each window of `window`; the lines held back are reported by
/// the first line admitted in a later window. Time is passed in.
#[derive(Debug, Clone)]
pub struct LogBudget {
    per_window: u32,
    window_ms: i64,
    window_start: Option<Timestamp>,
    used: u32,
    suppressed: u64,
}

impl LogBudget {
    pub fn new(per_window: u32, window: Duration) -> Self {
        Self { per_window, window_ms: window.as_millis() as i64, window_start: None, used: 0, suppressed: 0 }
    }

    /// Decides for one line at `now`.
    pub fn admit(&mut self, now: Timestamp) -> Admit {
        let new_window = self.window_start.is_none_or(|start| now.unix_ms() - start.unix_ms() >= self.window_ms);
        if new_window {
            self.window_start = Some(now);
            self.used = 0;
        }
        if self.used < self.per_window {
            self.used += 1;
            Admit::Log { suppressed: std::mem::take(&mut self.suppressed) }
        } else {
            self.suppressed += 1;
            Admit::Suppress
        }
    }
}

/// Lines about refused tokens that may be written per [`REFUSAL_LOG_WINDOW`].
pub const REFUSAL_LOG_LINES: u32 = 20;
/// The window of [`REFUSAL_LOG_LINES`].
pub const REFUSAL_LOG_WINDOW: Duration = Duration::from_secs(60);

/// A [`LogBudget`] shared by the request handlers.
#[derive(Debug)]
pub struct LogLimiter(Mutex<LogBudget>);

impl LogLimiter {
    pub fn new(per_window: u32, window: Duration) -> Self {
        Self(Mutex::new(LogBudget::new(per_window, window)))
    }

    /// The budget for token refusals: [`REFUSAL_LOG_LINES`] per [`REFUSAL_LOG_WINDOW`].
    pub fn for_refusals() -> Self {
        Self::new(REFUSAL_LOG_LINES, REFUSAL_LOG_WINDOW)
    }

    pub fn admit(&self, now: Timestamp) -> Admit {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).admit(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_escapes_and_quotes_are_escaped() {
        let forged = "k1\n2026-01-01T00:00:00Z  INFO dualkey: release approved\u{1b}[31m \"x\" \\ \u{202e}\u{2028}";
        let shown = untrusted(forged).max_chars(1000).to_string();
        assert_eq!(
            shown,
            r#""k1\n2026-01-01T00:00:00Z  INFO dualkey: release approved\u{1b}[31m \"x\" \\ \u{202e}\u{2028}""#
        );
        assert!(!shown.chars().any(|c| c.is_control()), "{shown}");
    }

    #[test]
    fn long_text_is_cut_with_a_marker_saying_how_much() {
        let kid = "A".repeat(60_000);
        let shown = untrusted(&kid).to_string();
        assert_eq!(shown, format!("\"{}\"…[59936 more characters]", "A".repeat(64)));
        assert_eq!(untrusted("short").to_string(), "\"short\"");
        assert_eq!(untrusted(&"é".repeat(64)).to_string(), format!("\"{}\"", "é".repeat(64)));
        assert!(untrusted(&"\n".repeat(100)).to_string().ends_with("…[36 more characters]"));
    }

    #[test]
    fn a_budget_admits_its_lines_then_reports_the_rest_in_the_next_window() {
        let mut budget = LogBudget::new(3, Duration::from_secs(60));
        let at = |s: i64| Timestamp::from_unix_ms(1_000_000 + s * 1000);
        let first: Vec<Admit> = (0..10).map(|_| budget.admit(at(0))).collect();
        assert_eq!(first.iter().filter(|a| matches!(a, Admit::Log { .. })).count(), 3);
        assert_eq!(budget.admit(at(59)), Admit::Suppress);
        assert_eq!(budget.admit(at(60)), Admit::Log { suppressed: 8 });
        assert_eq!(budget.admit(at(61)), Admit::Log { suppressed: 0 });
    }
}
